"""Ranking metrics for leave-one-out evaluation with full ranking: Recall@K, NDCG@K, MRR.

The one implementation in the package, vectorised over examples: both entry points build a boolean hit
matrix ``(examples, ranked positions)`` and score it with :func:`_metrics_from_hits`.

- :func:`compute_metrics` checks its input strictly (complete, distinct lists; one or several relevant items)
  and is what the ``evaluate`` module ``recall_ndcg/recall_ndcg.py`` calls.
- :func:`ranking_metrics` scores what a decoder returned, broken or not (``-1`` empty slots, short lists,
  repeats), against one target per row: evaluation loops must report such lists, not fail on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import SimCITInputError


def compute_metrics(
    predictions: Sequence[Sequence[int]] | np.ndarray | Any,
    references: Sequence[int] | Sequence[Sequence[int]] | np.ndarray | Any,
    k_values: Sequence[int] = (5, 10),
) -> dict[str, float]:
    """Mean Recall@K, NDCG@K (for each K) and MRR over examples.

    Args:
        predictions: per example, the ranked item ids (best first, distinct), at least ``max(k_values)`` long:
            e.g. ``recommend(...).item_indices`` ``(n, K)`` (numpy arrays and torch tensors are accepted).
        references: per example, the target item id (leave-one-out) or a list of relevant item ids.
        k_values: the cut-offs.

    Returns:
        ``{"recall@K": ..., "ndcg@K": ..., "mrr": ..., "num_examples": n}``. Recall@K is the share of an
        example's relevant items in its top K (for one target: hit or miss); NDCG@K is DCG@K divided by the
        ideal DCG@K with binary relevance; MRR is the reciprocal rank of the first relevant item within the
        given list (0 if absent), i.e. MRR@len(list).
    """
    k_values = _check_ks(k_values)
    if len(predictions) != len(references):
        raise SimCITInputError(
            f"{len(predictions)} prediction lists but {len(references)} references; give one of each per example"
        )
    if len(predictions) == 0:
        raise SimCITInputError("no examples to evaluate (predictions is empty)")
    ranked, filled = _padded(predictions)
    relevant, is_relevant = _padded(references, scalars_as_rows=True)
    max_k = max(k_values)
    num_relevant = is_relevant.sum(axis=1)
    lengths = filled.sum(axis=1)
    for bad, message in (
        (num_relevant == 0, lambda i: f"example {i} has no relevant item (empty reference list)"),
        (lengths < max_k, lambda i: f"example {i} has {lengths[i]} predictions but k={max_k} was asked; "
                                    f"rank at least {max_k} items"),
        (_repeats(ranked, filled), lambda i: f"example {i} repeats an item in its ranked list "
                                             f"{ranked[i, :max_k].tolist()}"),
    ):
        if bad.any():
            raise SimCITInputError(message(int(np.flatnonzero(bad)[0])))
    hits = ((ranked[:, :, None] == relevant[:, None, :]) & is_relevant[:, None, :]).any(axis=2) & filled
    results = _metrics_from_hits(hits, num_relevant, k_values)
    return {**results, "num_examples": len(predictions)}


def ranking_metrics(ranked: Any, targets: Any, ks: Sequence[int] = (5, 10)) -> dict[str, float]:
    """Recall@K (= hit rate for one target), NDCG@K and MRR of decoded lists, without input checks.

    Args:
        ranked: ``(n, R)`` item indices, best first (``-1`` = empty slot; a repeat of the target counts once;
            ``R`` may be shorter than a K); numpy array or torch tensor.
        targets: ``(n,)`` the one relevant item per row.

    Returns:
        ``{"recall@K", "ndcg@K", "mrr"}``, all 0 for no rows.
    """
    ks = _check_ks(ks)
    ranked, targets = _as_array(ranked), _as_array(targets).reshape(-1)
    if ranked.shape[0] == 0:
        return {**{f"recall@{k}": 0.0 for k in ks}, **{f"ndcg@{k}": 0.0 for k in ks}, "mrr": 0.0}
    hits = ranked.reshape(len(ranked), -1) == targets[:, None]
    hits &= np.cumsum(hits, axis=1) == 1                        # first occurrence only
    return _metrics_from_hits(hits, np.ones(len(hits), dtype=np.int64), ks)


def _metrics_from_hits(hits: np.ndarray, num_relevant: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Mean Recall@K / NDCG@K for each K and MRR from ``hits`` ``(n, R)`` and relevant items per row ``(n,)``."""
    width = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, max(max(ks), width) + 2))
    gains = np.where(hits, discounts[:width], 0.0)
    ideal_dcg = np.cumsum(discounts)                 # ideal_dcg[m - 1]: DCG of m relevant items on top
    metrics: dict[str, float] = {}
    for k in ks:
        metrics[f"recall@{k}"] = float(np.mean(hits[:, :k].sum(axis=1) / num_relevant))
    for k in ks:
        ideal = ideal_dcg[np.minimum(num_relevant, k) - 1]
        metrics[f"ndcg@{k}"] = float(np.mean(gains[:, :k].sum(axis=1) / ideal))
    found = hits.any(axis=1)
    reciprocal = np.where(found, 1.0 / (hits.argmax(axis=1) + 1.0), 0.0)
    metrics["mrr"] = float(np.mean(reciprocal))
    return metrics


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise SimCITInputError(f"k_values must be positive integers; got {ks}")
    return ks


def _as_array(values: Any) -> np.ndarray:
    """A numpy view of an array-like; torch tensors (any device) without importing torch here."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _padded(rows: Any, scalars_as_rows: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(n, longest)`` int64 values and a mask of the real entries, from a 2-D array or ragged lists."""
    if hasattr(rows, "detach") or isinstance(rows, np.ndarray):
        array = _as_array(rows).astype(np.int64)
        if scalars_as_rows and array.ndim == 1:
            array = array[:, None]
        return array, np.ones(array.shape, dtype=bool)
    rows = [[row] if scalars_as_rows and np.ndim(row) == 0 else list(row) for row in rows]
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    mask = np.arange(max(int(lengths.max()), 1))[None, :] < lengths[:, None]
    values = np.zeros(mask.shape, dtype=np.int64)
    values[mask] = np.fromiter((int(item) for row in rows for item in row), dtype=np.int64, count=int(lengths.sum()))
    return values, mask


def _repeats(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per row, whether a real entry occurs twice (padding replaced by distinct values below every real one)."""
    if values.shape[1] < 2:
        return np.zeros(len(values), dtype=bool)
    floor = values[mask].min() if mask.any() else 0
    filler = floor - 1 - np.arange(values.shape[1])
    ordered = np.sort(np.where(mask, values, filler[None, :]), axis=1)
    return (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
