"""Recommendations for raw item ids: the library side of ``hf-simcit recommend``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import SimCITInputError
from .data import PromptTemplate, SIDPromptFormatter
from .modeling import Recommender


def template_of(rec: Recommender) -> PromptTemplate:
    """The prompt template the model was trained with (saved in its folder), else the plain default."""
    return PromptTemplate(**rec.template) if rec.template else PromptTemplate()


def item_indices(rec: Recommender, histories: Sequence[Sequence[str]]) -> list[list[int]]:
    """Raw item ids -> item indices; unknown ids raise one error naming them (and the history rows)."""
    if rec.item_ids is None:
        raise SimCITInputError("this recommender folder has no item_ids.json; pass item indices instead")
    index = {item: i for i, item in enumerate(rec.item_ids)}
    unknown = sorted({(row, str(item)) for row, history in enumerate(histories) for item in history
                      if str(item) not in index})
    if unknown:
        shown = ", ".join(f"{item!r} (history {row})" for row, item in unknown[:10])
        raise SimCITInputError(f"{len(unknown)} item id(s) the recommender does not know: {shown}")
    return [[index[str(item)] for item in history] for history in histories]


MIN_BEAMS = 20  # the default beam of evaluate and of training-time validation


def default_num_beams(rec: Recommender, k: int) -> int:
    """The beam when none is given: at least the training-time validation beam (``MIN_BEAMS`` for models that
    did not record one) and at least ``k``, so the top items do not depend on how many are asked for."""
    return max(k, rec.eval_num_beams or MIN_BEAMS, MIN_BEAMS)


def cut_histories(rec: Recommender, histories: Sequence[Sequence[str]]) -> tuple[list[list[str]], list[int]]:
    """Histories cut to their last ``rec.max_history`` items (the longest history the model saw in
    training), and the rows that were cut. A model without a recorded length keeps every history whole."""
    limit = rec.max_history
    cut = [row for row, history in enumerate(histories) if limit and len(history) > limit]
    return [list(h)[-limit:] if limit and len(h) > limit else list(h) for h in histories], cut


def context_length(rec: Recommender) -> int | None:
    """The model's position limit (``max_position_embeddings``), if it has one."""
    config = getattr(rec.model, "config", None)
    return getattr(config, "max_position_embeddings", None)


def check_new_items_request(new_items: Sequence[str] | None, new_item_slots: int) -> None:
    """New items and their reserved places go together (raises :class:`SimCITInputError` otherwise); the CLI asks
    before it loads a model."""
    if bool(new_items) != bool(new_item_slots):
        raise SimCITInputError("new items need both new_items (their ids; --new-items) and new_item_slots (how "
                               "many of the k places they get; --new-item-slots)")


@torch.no_grad()
def recommend_items(rec: Recommender, histories: Sequence[Sequence[str]], k: int = 10,
                    num_beams: int | None = None, batch_size: int = 32, new_items: Sequence[str] | None = None,
                    new_item_slots: int = 0, hybrid_weight: float | None = None) -> list[list[tuple[str, float]]]:
    """Top-``k`` ``(item_id, log-probability)`` per history of raw item ids (oldest first), best first.

    ``k`` larger than the catalogue returns the whole catalogue; ``num_beams`` defaults to
    :func:`default_num_beams` and must not be smaller than ``k``. Histories longer than the model's training
    history are cut to their most recent items (:func:`cut_histories`); a prompt that still exceeds the model's
    context, empty histories and unknown item ids raise :class:`SimCITInputError`. ``new_items`` (raw ids, e.g.
    items given SIDs after training with ``add_cold_start_items``) and ``new_item_slots``: the last
    ``new_item_slots`` of the ``k`` places go to the best new items: by their SID's log-probability
    (:func:`hf_simcit.generation.recommend`), or, for a recommender with a dense item head and its saved item
    embeddings, by the head's cosine (:func:`~hf_simcit.generation.with_best_new_items`, the score those places
    carry): a generator gives a SID path it never saw as a target almost no probability, while the head scores
    any item by its content (on Beauty's cold items 0.046 R@10 with 2 of 10 places, against 0.029 by the SIDs).
    ``hybrid_weight``: a recommender with a dense item head re-orders the beam's ``num_beams`` candidates by
    ``log P(SID) + hybrid_weight x`` the head's logit (:class:`~.dense.HybridRanking`; the scores are the sums);
    ``None``: the folder's own ``rec.hybrid_weight`` (0 unless training chose one, ``training.hybrid_weights``).
    With new items as well, the hybrid orders the ordinary places and the head fills the reserved ones.
    """
    from ..generation import SIDTrie, recommend, with_best_new_items
    from .dense import HybridRanking, dense_head_of, hybrid_ranking_of

    num_items = rec.item_token_ids.shape[0]
    if k < 1:
        raise SimCITInputError(f"k must be positive, got {k}")
    if num_beams is not None and num_beams < 1:
        raise SimCITInputError(f"num_beams must be positive, got {num_beams}")
    k = min(k, num_items)
    num_beams = min(default_num_beams(rec, k) if num_beams is None else num_beams, num_items)
    if num_beams < k:
        raise SimCITInputError(f"num_beams={num_beams} is smaller than k={k}; use num_beams >= k")
    if not histories:
        raise SimCITInputError("no histories to recommend for")
    histories, _ = cut_histories(rec, histories)
    formatter = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids, template_of(rec))
    indices = item_indices(rec, histories)
    prompts = [formatter.prompt_ids(h, where=f"history {row}") for row, h in enumerate(indices)]
    limit, levels = context_length(rec), rec.item_token_ids.shape[1]
    too_long = [row for row, prompt in enumerate(prompts) if limit and len(prompt) + levels > limit]
    if too_long:
        row = too_long[0]
        raise SimCITInputError(f"history {row}: {len(histories[row])} items make {len(prompts[row])} prompt tokens; "
                               f"with the {levels} generated ones that exceeds the model's context of {limit} "
                               f"positions (pass fewer items)")
    check_new_items_request(new_items, new_item_slots)
    hybrid = hybrid_ranking_of(rec, hybrid_weight)   # a hybrid needs the head and its embeddings: by_head below
    new = item_indices(rec, [list(new_items)])[0] if new_items else None
    # new items' places by the dense head where there is one (and the embeddings it ranks), else by their SIDs
    by_head = new is not None and dense_head_of(rec.model) is not None and rec.item_embeddings is not None
    head = hybrid or (HybridRanking(rec.item_embeddings, 0.0) if by_head else None)   # the cosines, once a batch
    device = next(rec.model.parameters()).device
    trie = SIDTrie(rec.item_token_ids.to(device))  # built once, shared by every batch
    out: list[list[tuple[str, float]]] = []
    for start in range(0, len(prompts), batch_size):   # recommend() left-pads each batch of token lists
        batch = prompts[start:start + batch_size]
        result = recommend(rec.model, batch, trie, k=num_beams if hybrid else k, num_beams=num_beams,
                           pad_token_id=rec.tokenizer.pad_token_id, new_items=None if by_head else new,
                           new_item_slots=0 if by_head else new_item_slots)
        cosines = head.cosines(rec.model, batch, rec.tokenizer.pad_token_id) if head is not None else None
        if hybrid is not None:   # the beam's candidates re-ordered, the best k kept
            result = hybrid.rerank(result, cosines, k)
        if by_head:
            result = with_best_new_items(result, cosines, new, k, new_item_slots, rec.item_token_ids)
        for items, scores in zip(result.item_indices.tolist(), result.scores.tolist()):
            out.append([(rec.item_ids[i], float(s)) for i, s in zip(items, scores)])
    return out


def load_histories(path: str) -> list[list[str]]:
    """Histories from a JSON-lines file (``{"history": [...]}`` per line) or a text file (ids per line)."""
    import json
    from pathlib import Path

    histories: list[list[str]] = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                record: Any = json.loads(line)
            except json.JSONDecodeError as err:
                raise SimCITInputError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict) or "history" not in record:
                raise SimCITInputError(f"{path}:{number}: no 'history' key")
            if not isinstance(record["history"], list):   # a string would be read letter by letter
                raise SimCITInputError(f"{path}:{number}: 'history' must be a list of item ids, got "
                                       f"{record['history']!r}")
            histories.append([str(i) for i in record["history"]])
        else:
            histories.append(line.replace(",", " ").split())
    if not histories:
        raise SimCITInputError(f"{path}: no histories (the file is empty or holds only blank lines)")
    return histories


@torch.no_grad()
def score_items(rec: Recommender, history: Sequence[str], item_token_ids: torch.Tensor) -> torch.Tensor:
    """Log-probability of each SID row of ``item_token_ids`` ``(m, L)`` after one history of raw item ids.

    Why: beam search only scores what it keeps; this scores given SIDs exactly (teacher forcing, normalised
    over the whole vocabulary like ``recommend_items``' scores, on the same cut history), e.g. a cold-start
    item that is not in the catalogue, to compare it with the recommended items.
    """
    from ..generation import sid_log_probs

    (history,), _ = cut_histories(rec, [history])
    formatter = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids, template_of(rec))
    prompt = formatter.prompt_ids(item_indices(rec, [history])[0])
    return sid_log_probs(rec.model, [prompt], item_token_ids, pad_token_id=rec.tokenizer.pad_token_id)[0].sum(-1)
