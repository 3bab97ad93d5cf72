"""Exact scores of given SIDs after each prompt (teacher forcing), where beam search only scores what it keeps.

Why: to rank a known, small set of items exactly, e.g. items added after training (cold start), or to show a
new item's log-probability next to the recommended ones. Each prompt is run once; its KV cache is shared by
the ``m`` SIDs scored after it, so a batch costs one prefill plus ``m x (L - 1)`` one-token continuations.
"""

from __future__ import annotations

import torch

from ..errors import SimCITInputError
from .beam_search import _candidate_log_probs, _LogitsFunction, _model_device, prepare_prompts
from .trie import SIDTrie


@torch.no_grad()
def sid_log_probs(
    model: torch.nn.Module,
    input_ids: torch.Tensor | list[list[int]],
    item_token_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int | None = None,
    batch_size: int = 8,
) -> torch.Tensor:
    """Log-probability of every level of every given SID after every prompt.

    Args:
        model: a causal LM whose vocabulary holds the SID tokens (as for :func:`~hf_simcit.generation.recommend`).
        input_ids: the prompts, LongTensor ``(n, P)`` with ``attention_mask`` or a list of ``n`` token-id lists.
        item_token_ids: LongTensor ``(m, L)``, the SID token ids of the ``m`` items to score.
        pad_token_id: padding id for list input (default ``model.config.pad_token_id`` or 0).
        batch_size: prompts per forward pass. The continuation batch is ``batch_size * m`` rows of ``L - 1``
            whole-vocabulary logits: lower it for a large vocabulary or many SIDs.

    Returns:
        FloatTensor ``(n, m, L)`` on the CPU: ``[i, j, l]`` = log P(level ``l`` token of SID ``j`` | prompt ``i``
        and the SID's levels before ``l``), normalised over the whole vocabulary like ``recommend``'s default
        scores; ``.sum(-1)`` is the SID's log-probability. The model runs in eval mode (its previous mode is
        restored).
    """
    items = torch.as_tensor(item_token_ids, dtype=torch.long)
    if items.ndim != 2 or items.shape[0] == 0:
        raise SimCITInputError(f"item_token_ids must be a non-empty (items, levels) table; got shape {tuple(items.shape)}")
    if batch_size < 1:
        raise SimCITInputError(f"batch_size must be >= 1; got {batch_size}")
    if pad_token_id is None:
        pad_token_id = getattr(model.config, "pad_token_id", None) or 0
    device = _model_device(model)
    items = items.to(device)
    m, levels = items.shape
    # the search's model runner; the trie of the scored SIDs only checks them against the vocabulary
    logits_function = _LogitsFunction(model, SIDTrie(torch.unique(items, dim=0)), "full")
    input_ids, attention_mask = prepare_prompts(input_ids, attention_mask, pad_token_id=pad_token_id, device=device)
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, input_ids.shape[0], batch_size):
            ids, mask = input_ids[start:start + batch_size], attention_mask[start:start + batch_size]
            first_real = int(mask.any(0).nonzero()[0])
            ids, mask = ids[:, first_real:], mask[:, first_real:]
            b = ids.shape[0]
            logits, cache = logits_function(last_only=True, input_ids=ids, attention_mask=mask,
                                            position_ids=(mask.cumsum(-1) - 1).clamp(min=0))   # (b, 1, C)
            first = _candidate_log_probs(logits, items[:, 0].expand(b, 1, m))               # (b, 1, m)
            scores = [first.reshape(b, m, 1)]
            if levels > 1:
                cache.batch_repeat_interleave(m)
                steps = levels - 1
                positions = mask.sum(-1).repeat_interleave(m).unsqueeze(1) + torch.arange(steps, device=device)
                step_mask = torch.cat([mask.repeat_interleave(m, dim=0), mask.new_ones(b * m, steps)], dim=1)
                logits, _ = logits_function(last_only=False, cache=cache, input_ids=items[:, :-1].repeat(b, 1),
                                            attention_mask=step_mask, position_ids=positions)  # (b*m, L-1, C)
                rest = _candidate_log_probs(logits, items[:, 1:].repeat(b, 1).unsqueeze(-1))  # (b*m, L-1, 1)
                scores.append(rest.reshape(b, m, steps))
            out.append(torch.cat(scores, dim=-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)
