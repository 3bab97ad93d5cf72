"""benchmarks/collaborative.py: the next-item score ranks every other item by cosine to the previous item."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import benchmark_module


def test_next_item_metrics_rank_by_cosine_and_skip_the_item_itself():
    collaborative = benchmark_module("collaborative")
    # items 0-1 point the same way, 2-3 another way, 4 in between; lengths differ (cosine, not dot product)
    x = np.array([[1, 0], [3, 0.1], [0, 1], [0.1, 2], [1, 1]], dtype=np.float32)
    previous, target = np.array([0, 2, 0]), np.array([1, 3, 3])
    # user 0: 1 first (rank 1); user 1: 3 first; user 2: order 1, 4, 3 -> the target at rank 3
    metrics = collaborative.next_item_metrics(x, previous, target, k=10)
    assert metrics["recall@10"] == pytest.approx(1.0)
    assert metrics["ndcg@10"] == pytest.approx((1 + 1 + 1 / np.log2(4)) / 3)
    assert collaborative.next_item_metrics(x, previous, target, k=2)["recall@2"] == pytest.approx(2 / 3)
