"""A prefix-trie ``LogitsProcessor`` for ``model.generate``: every generated SID is a real item.

Unlike ``prefix_allowed_tokens_fn`` (one Python call per beam per step), the mask for all rows is built with
a handful of tensor ops: walk the generated prefix down the trie tables (one gather per level already
generated), then scatter the allowed children into a boolean mask.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from ..errors import SimCITInputError
from .trie import SIDTrie


class SIDTrieLogitsProcessor(LogitsProcessor):
    """Restrict ``generate`` to the catalogue's SIDs.

    Use with ``max_new_tokens=trie.num_levels``; for beam search scores equal to the sum of the tokens'
    log-probabilities, also pass ``length_penalty=0.0`` and ``early_stopping=True``.

    Args:
        trie: the catalogue (moved to the scores' device on first use).
        prompt_length: length of the (left-padded) prompt batch, i.e. ``input_ids.shape[1]`` given to
            ``generate``; tokens after it are the SID being generated.
        eos_token_id: if set, the only token allowed once a full SID has been generated (lets ``generate`` run
            with a larger ``max_new_tokens``); if None, running past the SID is an error.

    Rows whose prefix is not in the trie (possible only for beams ``generate`` keeps with score ``-inf``)
    get every token masked.
    """

    def __init__(self, trie: SIDTrie, prompt_length: int, eos_token_id: int | None = None) -> None:
        self.trie = trie
        self.prompt_length = int(prompt_length)
        self.eos_token_id = eos_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """input_ids: ``(N, prompt_length + step)``; scores: ``(N, vocab_size)`` -> masked scores, same shape."""
        vocab_size = scores.shape[-1]
        if self.trie.device != scores.device:
            self.trie.to(scores.device)
        self.trie.check_vocab(vocab_size)
        step = input_ids.shape[1] - self.prompt_length
        if step < 0:
            raise SimCITInputError(
                f"SIDTrieLogitsProcessor got prompt_length={self.prompt_length} but generate's input has "
                f"{input_ids.shape[1]} tokens; pass prompt_length=input_ids.shape[1] of the padded prompt batch"
            )
        if step >= self.trie.num_levels:
            if self.eos_token_id is None:
                raise SimCITInputError(
                    f"generate went past the {self.trie.num_levels}-token SID; call it with "
                    f"max_new_tokens={self.trie.num_levels} (or give the processor an eos_token_id)"
                )
            allowed = torch.zeros_like(scores, dtype=torch.bool)
            allowed[:, self.eos_token_id] = True
            return scores.masked_fill(~allowed, float("-inf"))
        nodes = self.trie.lookup(input_ids[:, self.prompt_length :])
        allowed = self.trie.allowed_tokens_mask(step, nodes, vocab_size)
        return scores.masked_fill(~allowed, float("-inf"))
