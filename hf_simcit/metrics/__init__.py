"""Evaluation metrics: :func:`compute_metrics` (checked input), :func:`ranking_metrics` (decoder output, as is),
and an ``evaluate`` module loaded by path that wraps :func:`compute_metrics`.

Example:
    >>> import evaluate
    >>> from hf_simcit.metrics import RECALL_NDCG_PATH
    >>> metric = evaluate.load(RECALL_NDCG_PATH)  # offline: the module ships inside the package
    >>> metric.compute(predictions=[[3, 1, 2]], references=[1], k_values=[1, 3])["recall@3"]
    1.0
"""

from pathlib import Path

from .ranking import compute_metrics, ranking_metrics

RECALL_NDCG_PATH = str(Path(__file__).resolve().parent / "recall_ndcg")
"""Directory of the ``evaluate`` metric module (``evaluate.load(RECALL_NDCG_PATH)``)."""

__all__ = ["RECALL_NDCG_PATH", "compute_metrics", "ranking_metrics"]
