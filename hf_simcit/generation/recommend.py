"""``recommend()``: top-k distinct catalogue items for tokenised histories, with scores."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import SimCITInputError
from .beam_search import KVSharing, ScoreVocab, prepare_prompts, sid_beam_search
from .trie import SIDTrie


@dataclass
class Recommendations:
    """Top-k items per history, best first.

    Attributes:
        item_indices: LongTensor ``(n, k)``, rows of the catalogue (``item_index``), all distinct per row.
        scores: FloatTensor ``(n, k)``, log-probability of each item's SID under the model.
        sequences: LongTensor ``(n, k, num_levels)``, the SID token ids.
    """

    item_indices: torch.Tensor
    scores: torch.Tensor
    sequences: torch.Tensor


def recommend(
    model: torch.nn.Module,
    input_ids: torch.Tensor | list[list[int]],
    item_token_ids: torch.Tensor | SIDTrie,
    k: int = 10,
    num_beams: int | None = None,
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int | None = None,
    batch_size: int = 32,
    kv_sharing: KVSharing = "auto",
    show_progress: bool = False,
    score_vocab: ScoreVocab = "full",
    exclude_items: list[list[int]] | None = None,
) -> Recommendations:
    """Recommend ``k`` items per history by trie-constrained SID beam search.

    Args:
        model: a causal LM whose vocabulary contains the SID tokens (peft-wrapped models work too).
        input_ids: the tokenised prompts (history SIDs in the recommender's prompt template): LongTensor
            ``(n, P)`` with ``attention_mask`` (left or right padding), or a list of ``n`` token-id lists.
        item_token_ids: LongTensor ``(num_items, num_levels)`` = the LLM token id of each level of each item's
            SID (``SimCITTokenizer``'s hand-over), or a prebuilt :class:`SIDTrie` (reuse it across calls).
        k: items per history; at most the catalogue size.
        num_beams: beams per level, ``>= k`` (default ``k``). More beams = closer to the exact top-k.
        attention_mask: ``(n, P)``, 1 for real tokens (tensor input only).
        pad_token_id: padding id for list input (default ``model.config.pad_token_id`` or 0).
        batch_size: histories per forward pass.
        kv_sharing: ``"auto"``, ``"tree"`` or ``"repeat"`` (see :mod:`hf_simcit.generation.beam_search`).
        show_progress: tqdm bar over batches.
        score_vocab: ``"full"`` (default; scores = log-probabilities over the whole vocabulary, exactly those
            of ``generate``) or ``"sid"`` (normalised over the SID tokens; the output layer is evaluated for
            those rows only, several times faster when the base vocabulary is large).
        exclude_items: optional, one list of item indices per history that may not be recommended (e.g. the
            history's own items, for data without repeat consumption); see
            :func:`~hf_simcit.generation.sid_beam_search`.

    Returns:
        :class:`Recommendations`; every item is a real catalogue item and items are distinct per history
        (with ``exclude_items``, a slot is ``-1`` with score ``-inf`` only if the exclusions leave fewer than
        ``k`` items reachable by the beams). The model is run in eval mode (its previous mode is restored).
    """
    trie = item_token_ids if isinstance(item_token_ids, SIDTrie) else SIDTrie(item_token_ids)
    if not isinstance(k, int) or k < 1:
        raise SimCITInputError(f"k must be a positive integer; got {k!r}")
    if k > trie.num_items:
        raise SimCITInputError(
            f"k={k} is larger than the catalogue ({trie.num_items} items); ask for at most {trie.num_items}"
        )
    num_beams = k if num_beams is None else num_beams
    if num_beams < k:
        raise SimCITInputError(
            f"num_beams={num_beams} is smaller than k={k}: beam search returns at most num_beams items; "
            f"set num_beams >= {k}"
        )
    if pad_token_id is None:
        pad_token_id = getattr(model.config, "pad_token_id", None) or 0
    input_ids, attention_mask = prepare_prompts(input_ids, attention_mask, pad_token_id=pad_token_id)
    was_training = model.training
    model.eval()
    try:
        beams = sid_beam_search(
            model,
            input_ids,
            attention_mask,
            trie,
            num_beams=num_beams,
            kv_sharing=kv_sharing,
            batch_size=batch_size,
            show_progress=show_progress,
            score_vocab=score_vocab,
            exclude_items=exclude_items,
        )
    finally:
        model.train(was_training)
    items = beams.item_indices[:, :k]
    if exclude_items is None and bool((items < 0).any()):  # cannot happen when k <= num_items <= valid beams; guard against silent junk
        raise RuntimeError("SID beam search returned fewer than k valid items; please report this as a bug")
    return Recommendations(item_indices=items, scores=beams.scores[:, :k], sequences=beams.sequences[:, :k])
