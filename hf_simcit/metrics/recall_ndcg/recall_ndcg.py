"""Recall@K, NDCG@K and MRR for next-item recommendation with full ranking, as an ``evaluate`` metric.

A thin wrapper: the computation is :func:`hf_simcit.metrics.ranking.compute_metrics`, the package's one
implementation. ``evaluate.load`` of this folder imports ``hf_simcit`` as a library (it checks that library
imports are installed), which holds wherever the folder is loaded from: it ships inside the package.
"""

import datasets
import evaluate

from hf_simcit.metrics.ranking import compute_metrics

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
        return compute_metrics(predictions, references, k_values)
