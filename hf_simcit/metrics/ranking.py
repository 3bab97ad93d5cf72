"""Ranking metrics for leave-one-out evaluation with full ranking: Recall@K, NDCG@K, MRR.

Plain numpy, for evaluation loops; ``recall_ndcg/recall_ndcg.py`` is the same computation as an
``evaluate`` metric module (self-contained, so it can be shared on its own) and the tests check they agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import SimCITInputError


def compute_metrics(
    predictions: Sequence[Sequence[int]] | np.ndarray,
    references: Sequence[int] | Sequence[Sequence[int]] | np.ndarray,
    k_values: Sequence[int] = (5, 10),
) -> dict[str, float]:
    """Mean Recall@K, NDCG@K (for each K) and MRR over examples.

    Args:
        predictions: per example, the ranked item ids (best first, distinct), at least ``max(k_values)`` long:
            e.g. ``recommend(...).item_indices`` ``(n, K)``.
        references: per example, the target item id (leave-one-out) or a list of relevant item ids.
        k_values: the cut-offs.

    Returns:
        ``{"recall@K": ..., "ndcg@K": ..., "mrr": ..., "num_examples": n}``. Recall@K is the share of an
        example's relevant items in its top K (for one target: hit or miss); NDCG@K is DCG@K divided by the
        ideal DCG@K with binary relevance; MRR is the reciprocal rank of the first relevant item within the
        given list (0 if absent), i.e. MRR@len(list).
    """
    k_values = [int(k) for k in k_values]
    if not k_values or min(k_values) < 1:
        raise SimCITInputError(f"k_values must be positive integers; got {k_values}")
    if len(predictions) != len(references):
        raise SimCITInputError(
            f"{len(predictions)} prediction lists but {len(references)} references; give one of each per example"
        )
    if len(predictions) == 0:
        raise SimCITInputError("no examples to evaluate (predictions is empty)")
    max_k = max(k_values)
    sums = {f"recall@{k}": 0.0 for k in k_values} | {f"ndcg@{k}": 0.0 for k in k_values} | {"mrr": 0.0}
    discounts = 1.0 / np.log2(np.arange(2, max(max_k, max(map(len, predictions))) + 2))
    for index, (ranked, relevant) in enumerate(zip(predictions, references)):
        ranked = [int(item) for item in ranked]
        relevant_set = {int(relevant)} if np.ndim(relevant) == 0 else {int(item) for item in relevant}
        if not relevant_set:
            raise SimCITInputError(f"example {index} has no relevant item (empty reference list)")
        if len(ranked) < max_k:
            raise SimCITInputError(
                f"example {index} has {len(ranked)} predictions but k={max_k} was asked; rank at least {max_k} items"
            )
        if len(set(ranked)) != len(ranked):
            raise SimCITInputError(f"example {index} repeats an item in its ranked list {ranked[:max_k]}")
        hits = np.fromiter((item in relevant_set for item in ranked), dtype=bool, count=len(ranked))
        for k in k_values:
            sums[f"recall@{k}"] += hits[:k].sum() / len(relevant_set)
            ideal = discounts[: min(len(relevant_set), k)].sum()
            sums[f"ndcg@{k}"] += discounts[:k][hits[:k]].sum() / ideal
        first = np.flatnonzero(hits)
        sums["mrr"] += 1.0 / (first[0] + 1) if len(first) else 0.0
    results = {name: float(total / len(predictions)) for name, total in sums.items()}
    results["num_examples"] = len(predictions)
    return results
