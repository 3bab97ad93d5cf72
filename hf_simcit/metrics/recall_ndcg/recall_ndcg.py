"""Recall@K, NDCG@K and MRR for next-item recommendation with full ranking, as an ``evaluate`` metric.

Self-contained (numpy only) so that it loads offline by path and can be shared as its own module.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Leave-one-out ranking metrics. For each example, `predictions` is the ranked list of item ids (best first,
distinct, at least max(k_values) long, e.g. the top-k of a full ranking over the catalogue) and `references`
is the target item id, or a list of relevant item ids.
Recall@K: share of the relevant items found in the top K (one target: hit rate).
NDCG@K: DCG@K / ideal DCG@K with binary relevance (one target: 1 / log2(rank + 1) if in the top K).
MRR: reciprocal rank of the first relevant item in the given list, 0 if absent (MRR@len(list)).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]`): ranked item ids per example.
    references (`list[int]` or `list[list[int]]`): target item id(s) per example.
    k_values (`list[int]`, defaults to `[5, 10]`): the cut-offs K.
Returns:
    `dict` with `recall@K`, `ndcg@K` for each K, `mrr` and `num_examples`.
Examples:
    >>> metric = evaluate.load("path/to/recall_ndcg")
    >>> metric.compute(predictions=[[3, 1, 2], [5, 6, 7]], references=[1, 9], k_values=[1, 3])
    {'recall@1': 0.0, 'recall@3': 0.5, 'ndcg@1': 0.0, 'ndcg@3': 0.31546487678572877, 'mrr': 0.25, 'num_examples': 2}
"""

_CITATION = ""


class RecallNdcg(evaluate.Metric):
    """Recall@K / NDCG@K / MRR over ranked item lists."""

    def _info(self):
        ranked = datasets.Sequence(datasets.Value("int64"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": ranked, "references": datasets.Value("int64")}),
                datasets.Features(
                    {"predictions": ranked, "references": datasets.Sequence(datasets.Value("int64"))}
                ),
            ],
        )

    def _compute(self, predictions, references, k_values=(5, 10)):
        k_values = [int(k) for k in k_values]
        if not k_values or min(k_values) < 1:
            raise ValueError(f"k_values must be positive integers; got {k_values}")
        if len(predictions) == 0:
            raise ValueError("no examples to evaluate (predictions is empty)")
        max_k = max(k_values)
        longest = max(max_k, max(len(ranked) for ranked in predictions))
        discounts = 1.0 / np.log2(np.arange(2, longest + 2))
        sums = {f"recall@{k}": 0.0 for k in k_values}
        sums.update({f"ndcg@{k}": 0.0 for k in k_values})
        sums["mrr"] = 0.0
        for index, (ranked, relevant) in enumerate(zip(predictions, references)):
            ranked = [int(item) for item in ranked]
            relevant_set = {int(relevant)} if np.ndim(relevant) == 0 else {int(item) for item in relevant}
            if not relevant_set:
                raise ValueError(f"example {index} has no relevant item (empty reference list)")
            if len(ranked) < max_k:
                raise ValueError(f"example {index} has {len(ranked)} predictions but k={max_k} was asked")
            if len(set(ranked)) != len(ranked):
                raise ValueError(f"example {index} repeats an item in its ranked list")
            hits = np.array([item in relevant_set for item in ranked], dtype=bool)
            for k in k_values:
                sums[f"recall@{k}"] += hits[:k].sum() / len(relevant_set)
                ideal = discounts[: min(len(relevant_set), k)].sum()
                sums[f"ndcg@{k}"] += discounts[:k][hits[:k]].sum() / ideal
            first = np.flatnonzero(hits)
            sums["mrr"] += 1.0 / (first[0] + 1) if len(first) else 0.0
        results = {name: float(total / len(predictions)) for name, total in sums.items()}
        results["num_examples"] = len(predictions)
        return results
