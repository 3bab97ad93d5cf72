"""Recall@K / NDCG@K / MRR: hand-computed values, the evaluate module loaded by path, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_simcit.errors import SimCITInputError
from hf_simcit.metrics import RECALL_NDCG_PATH, compute_metrics

PREDICTIONS = [[3, 1, 2, 8], [5, 6, 7, 4], [9, 0, 1, 2], [4, 3, 2, 1]]
TARGETS = [1, 9, 9, 1]  # ranks 2, absent, 1, 4
HAND = {
    "recall@1": 1 / 4,
    "recall@3": 2 / 4,
    "ndcg@1": 1 / 4,
    "ndcg@3": (1 / math.log2(3) + 1.0) / 4,
    "mrr": (1 / 2 + 0 + 1 + 1 / 4) / 4,
    "num_examples": 4,
}


def test_compute_metrics_hand_computed():
    assert compute_metrics(PREDICTIONS, TARGETS, k_values=[1, 3]) == pytest.approx(HAND)


def test_compute_metrics_several_relevant_items():
    # relevant {1, 2} at ranks 2 and 3: DCG@3 = 1/log2(3) + 1/log2(4); ideal = 1 + 1/log2(3)
    result = compute_metrics([[3, 1, 2]], [[1, 2]], k_values=[1, 3])
    assert result["recall@1"] == 0.0
    assert result["recall@3"] == 1.0
    assert result["ndcg@3"] == pytest.approx((1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3)))
    assert result["mrr"] == 0.5


def test_compute_metrics_accepts_arrays_from_recommend():
    import torch

    result = compute_metrics(torch.tensor(PREDICTIONS), np.array(TARGETS), k_values=(1, 3))
    assert result == pytest.approx(HAND)


@pytest.fixture(scope="module")
def metric():
    evaluate = pytest.importorskip("evaluate")
    return evaluate.load(RECALL_NDCG_PATH)


def test_evaluate_module_loads_by_path_and_matches_hand_values(metric):
    assert metric.compute(predictions=PREDICTIONS, references=TARGETS, k_values=[1, 3]) == pytest.approx(HAND)
    batched = metric.compute(predictions=[[3, 1, 2]], references=[[1, 2]], k_values=[3])
    assert batched["recall@3"] == 1.0


def test_evaluate_module_agrees_with_compute_metrics_on_random_rankings(metric):
    rng = np.random.default_rng(0)
    predictions = [rng.permutation(50)[:10].tolist() for _ in range(200)]
    references = rng.integers(0, 50, size=200).tolist()
    for prediction, reference in zip(predictions[:100], references[:100]):
        metric.add(prediction=prediction, reference=reference)
    metric.add_batch(predictions=predictions[100:], references=references[100:])
    from_module = metric.compute(k_values=[5, 10])
    assert from_module == pytest.approx(compute_metrics(predictions, references, k_values=[5, 10]))
    assert 0.0 < from_module["recall@5"] < from_module["recall@10"] < 1.0


@pytest.mark.parametrize(
    ("predictions", "references", "match"),
    [
        ([[1, 2, 3]], [1, 2], "1 prediction lists but 2 references"),
        ([], [], "no examples"),
        ([[1, 2]], [1], "has 2 predictions but k=3"),
        ([[1, 1, 2]], [1], "repeats an item"),
        ([[1, 2, 3]], [[]], "no relevant item"),
    ],
)
def test_compute_metrics_rejects_bad_input(predictions, references, match):
    with pytest.raises(SimCITInputError, match=match):
        compute_metrics(predictions, references, k_values=[1, 3])


def test_ranking_metrics_is_compute_metrics_on_valid_lists_and_scores_broken_ones():
    from hf_simcit.metrics import ranking_metrics

    rng = np.random.default_rng(1)
    ranked = np.stack([rng.permutation(40)[:12] for _ in range(300)])
    targets = rng.integers(0, 40, size=300)
    strict = compute_metrics(ranked, targets, k_values=[1, 5, 10])
    strict.pop("num_examples")
    assert ranking_metrics(ranked, targets, ks=[1, 5, 10]) == pytest.approx(strict)
    # a repeated target counts once, -1 is an empty slot, a list shorter than K is scored as it is
    broken = ranking_metrics(np.array([[4, 4, 1], [-1, -1, -1], [2, 3, -1]]), np.array([4, 0, 3]), ks=[1, 5])
    assert broken["recall@1"] == pytest.approx(1 / 3)
    assert broken["recall@5"] == pytest.approx(2 / 3)
    assert broken["ndcg@5"] == pytest.approx((1.0 + 1 / math.log2(3)) / 3)
    assert broken["mrr"] == pytest.approx((1.0 + 0.5) / 3)
    assert ranking_metrics(np.empty((0, 3), dtype=int), np.empty(0, dtype=int), ks=[5]) == {
        "recall@5": 0.0, "ndcg@5": 0.0, "mrr": 0.0}
