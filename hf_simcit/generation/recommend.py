"""``recommend()``: top-k distinct catalogue items for tokenised histories, with scores."""

from __future__ import annotations

from collections.abc import Sequence
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
    new_items: Sequence[int] | torch.Tensor | None = None,
    new_item_slots: int = 0,
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
        new_items, new_item_slots: reserve the last ``new_item_slots`` of the ``k`` places for the best of
            ``new_items`` (item indices, e.g. items added after training with ``add_cold_start_items``), ranked
            by the same model under a trie of those items alone; the other places are the ordinary search's
            best, new items included. Why: a generator trained on warm items gives a SID path it never saw as a
            target almost no probability, so new items never reach the top ``k`` on their own; TIGER reserves a
            share of the list for them in the same way.

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
    if new_item_slots:
        new = _new_item_index(new_items, new_item_slots, k, trie.num_items)
        common = dict(attention_mask=attention_mask, pad_token_id=pad_token_id, batch_size=batch_size,
                      kv_sharing=kv_sharing, show_progress=show_progress, score_vocab=score_vocab)
        ordinary = recommend(model, input_ids, trie, k=k, num_beams=num_beams, exclude_items=exclude_items,
                             **common)
        position = torch.full((trie.num_items,), -1, dtype=torch.long)
        position[new] = torch.arange(len(new))
        new_exclude = None if exclude_items is None else [
            [int(position[i]) for i in row if position[i] >= 0] for row in exclude_items]
        reserved = recommend(model, input_ids, trie.subset(new),
                             k=min(k, len(new)), num_beams=max(min(k, len(new)), min(num_beams, len(new))),
                             exclude_items=new_exclude, **common)
        reserved.item_indices = torch.where(reserved.item_indices >= 0,
                                            new[reserved.item_indices.clamp(min=0).cpu()].to(
                                                reserved.item_indices.device), -1)
        return with_reserved_places(ordinary, reserved, k, new_item_slots)
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


def _new_item_index(new_items: Sequence[int] | torch.Tensor | None, slots: int, k: int, num_items: int) -> torch.Tensor:
    """``new_items`` as a LongTensor of distinct catalogue rows, checked against ``slots`` and ``k``."""
    if not isinstance(slots, int) or not 0 < slots <= k:
        raise SimCITInputError(f"new_item_slots must be an integer in 1..k={k}; got {slots!r}")
    if new_items is None:
        raise SimCITInputError("new_item_slots needs new_items: the item indices the reserved places are for")
    new = torch.as_tensor(new_items, dtype=torch.long).flatten().cpu()
    if new.numel() < slots:
        raise SimCITInputError(f"new_item_slots={slots} but only {new.numel()} new item(s)")
    bad = new[(new < 0) | (new >= num_items)]
    if bad.numel():
        raise SimCITInputError(f"new_items {bad[:5].tolist()} outside 0..{num_items - 1}")
    if torch.unique(new).numel() != new.numel():
        raise SimCITInputError("new_items lists an item more than once")
    return new


def with_reserved_places(ordinary: Recommendations, reserved: Recommendations, k: int,
                         slots: int) -> Recommendations:
    """Per history: the ordinary search's first ``k - slots`` items (new items among them stay where they are),
    then the best ``slots`` new items not listed yet; places left empty (``-1`` in either search, under
    exclusions) are filled from the other list."""
    rows = []
    for r in range(ordinary.item_indices.shape[0]):
        ordinary_row = [int(i) for i in ordinary.item_indices[r]]
        reserved_row = [int(i) for i in reserved.item_indices[r]]
        kept = [j for j, item in enumerate(ordinary_row) if item >= 0][:k - slots]
        listed = {ordinary_row[j] for j in kept}
        chosen = [j for j, item in enumerate(reserved_row) if item >= 0 and item not in listed][:slots]
        listed |= {reserved_row[j] for j in chosen}
        if len(kept) + len(chosen) < k:   # too few new items reachable: the ordinary list fills the rest
            kept += [j for j, item in enumerate(ordinary_row)
                     if item >= 0 and item not in listed and j not in kept][:k - len(kept) - len(chosen)]
        rows.append((kept, chosen))

    def assemble(ordinary_part: torch.Tensor, reserved_part: torch.Tensor, fill) -> torch.Tensor:
        out = torch.full((ordinary_part.shape[0], k, *ordinary_part.shape[2:]), fill, dtype=ordinary_part.dtype,
                         device=ordinary_part.device)
        for r, (kept, chosen) in enumerate(rows):
            parts = [ordinary_part[r, kept], reserved_part[r, chosen].to(ordinary_part.device)]
            merged = torch.cat(parts)
            out[r, :merged.shape[0]] = merged
        return out

    return Recommendations(item_indices=assemble(ordinary.item_indices, reserved.item_indices, -1),
                           scores=assemble(ordinary.scores, reserved.scores, float("-inf")),
                           sequences=assemble(ordinary.sequences, reserved.sequences, -1))


def with_best_new_items(ranked: Recommendations, scores: torch.Tensor, new_items: Sequence[int] | torch.Tensor,
                        k: int, slots: int, item_token_ids: torch.Tensor | None = None) -> Recommendations:
    """``ranked`` with its last ``slots`` of ``k`` places given to the ``new_items`` that ``scores``
    ``(n, num_items)`` rank best (e.g. :func:`hf_simcit.recommender.dense.dense_item_scores` of a generator with a
    dense item head), assembled as :func:`with_reserved_places` does; ``new_items`` and ``slots`` are checked
    as :func:`recommend` checks them. Those places carry their ``scores`` and, given the ``(num_items, levels)``
    ``item_token_ids``, their SIDs as ``sequences`` (else the item index, for rankings without SIDs)."""
    new = _new_item_index(new_items, slots, k, scores.shape[1])
    best = scores[:, new].topk(min(k, len(new)))
    chosen = new[best.indices]
    sequences = chosen[..., None] if item_token_ids is None else item_token_ids.cpu()[chosen]
    return with_reserved_places(ranked, Recommendations(chosen, best.values, sequences), k, slots)


def rerank_with_item_scores(ranked: Recommendations, item_scores: torch.Tensor, weight: float = 1.0,
                            k: int | None = None) -> Recommendations:
    """The candidates of ``ranked`` re-ordered by their log-probability plus ``weight`` x ``item_scores``
    ``(n, num_items)`` (a second model's log-scores, e.g. the dense item head's logits), the best ``k`` kept.

    Why: a product of two experts over the beam's candidates. The SID beam proposes the items its trie search
    finds likely; a model that scores every item directly (LIGER's dense head) re-orders them. Items outside the
    beam cannot enter, so the list stays one of real, distinct catalogue items. Empty places (``-1``) stay last;
    ``scores`` of the result are the fused ones.
    """
    if item_scores.ndim != 2 or item_scores.shape[0] != ranked.item_indices.shape[0]:
        raise SimCITInputError(f"item_scores must be (histories, items) = ({ranked.item_indices.shape[0]}, ...), "
                               f"got {tuple(item_scores.shape)}")
    items = ranked.item_indices
    valid = items >= 0
    extra = item_scores.to(ranked.scores.device, ranked.scores.dtype).gather(1, items.clamp(min=0))
    fused = torch.where(valid, ranked.scores + weight * extra, torch.full_like(ranked.scores, float("-inf")))
    order = fused.argsort(dim=1, descending=True, stable=True)[:, :k or items.shape[1]]
    return Recommendations(item_indices=items.gather(1, order), scores=fused.gather(1, order),
                           sequences=ranked.sequences.gather(1, order[..., None].expand(-1, -1,
                                                                                         ranked.sequences.shape[2])))
