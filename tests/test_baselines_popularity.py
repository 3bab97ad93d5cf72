"""History and popularity baselines: hand-computed rankings and metrics, full catalogue, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_simcit.baselines.popularity import (
    evaluate_baseline,
    history_order,
    item_popularity,
    popularity_order,
    rank_baseline,
    rank_history,
    rank_popular,
)
from hf_simcit.errors import SimCITInputError

# 6 items; training targets -> counts [1, 1, 3, 2, 0, 0] -> popularity order 2, 3, 0, 1, 4, 5 (ties: lower index)
TRAIN_TARGETS = [2, 0, 2, 3, 3, 2, 1]
POPULARITY = item_popularity(TRAIN_TARGETS, 6)


def test_popularity_counts_training_targets_and_breaks_ties_by_index():
    assert POPULARITY.tolist() == [1, 1, 3, 2, 0, 0]
    assert popularity_order(POPULARITY).tolist() == [2, 3, 0, 1, 4, 5]
    ranked = rank_popular([[5], [0, 1]], POPULARITY, top=4)
    assert ranked.tolist() == [[2, 3, 0, 1], [2, 3, 0, 1]]             # history ignored, same list for all
    assert rank_popular([[1]], POPULARITY, top=50).tolist() == [[2, 3, 0, 1, 4, 5]]


def test_history_ranks_by_count_then_recency_then_fills_with_popular_items():
    # 4 and 0 twice (0 last seen later), 5 and 1 once (1 later): by count, ties most recent first
    assert history_order([4, 0, 5, 4, 1, 0]) == [0, 4, 1, 5]
    ranked = rank_history([[4, 0, 5, 4, 1, 0], [3], [1, 2, 1]], POPULARITY, top=5)
    assert ranked.tolist() == [[0, 4, 1, 5, 2],         # then the most popular item outside the history
                               [3, 2, 0, 1, 4],         # 3 is in the history, so not repeated from popularity
                               [1, 2, 3, 0, 4]]
    assert rank_history([[5, 4, 3]], POPULARITY, top=2).tolist() == [[3, 4]]       # history longer than top
    full = rank_history([[4, 4]], POPULARITY, top=6)[0].tolist()
    assert full == [4, 2, 3, 0, 1, 5] and sorted(full) == list(range(6))          # every item exactly once


def test_evaluate_baseline_hand_computed_metrics():
    split = Dataset.from_dict({"history": [[4, 0, 5, 4, 1, 0], [3], [1, 2, 1]], "target": [5, 4, 1]})
    # history rankings above: target ranks (0-based) 3, 4, 0
    m = evaluate_baseline("history", split, POPULARITY, ks=(2, 5), return_rankings=True)
    assert m["recall@2"] == pytest.approx(1 / 3) and m["recall@5"] == pytest.approx(1.0)
    assert m["ndcg@2"] == pytest.approx(1 / 3)
    assert m["ndcg@5"] == pytest.approx((1 / math.log2(5) + 1 / math.log2(6) + 1) / 3)
    assert m["mrr"] == pytest.approx((1 / 4 + 1 / 5 + 1) / 3)
    assert (m["invalid_items"], m["num_examples"]) == (0, 3)
    assert m["rankings"].tolist()[2] == [1, 2, 3, 0, 4]
    # popularity [2, 3, 0, 1, 4]: 5 missing, 4 at rank 4, 1 at rank 3
    p = evaluate_baseline("popularity", split, POPULARITY, ks=(2, 5))
    assert p["recall@2"] == 0.0 and p["recall@5"] == pytest.approx(2 / 3)
    assert p["ndcg@5"] == pytest.approx((1 / math.log2(6) + 1 / math.log2(5)) / 3)
    assert "rankings" not in p
    first = evaluate_baseline("history", split, POPULARITY, ks=(2, 5), max_examples=1)
    assert first["num_examples"] == 1 and first["recall@5"] == 1.0 and first["recall@2"] == 0.0


def test_bad_input_is_refused():
    with pytest.raises(SimCITInputError, match="outside 0..5"):
        item_popularity([0, 6], 6)
    with pytest.raises(SimCITInputError, match="outside 0..5"):
        rank_history([[1, 7]], POPULARITY, top=3)
    with pytest.raises(SimCITInputError, match="unknown baseline"):
        rank_baseline("recent", [[1]], POPULARITY, top=3)
    with pytest.raises(SimCITInputError, match="top must be"):
        rank_popular([[1]], POPULARITY, top=0)
    with pytest.raises(SimCITInputError, match="non-empty"):
        popularity_order(np.zeros((2, 3)))
    split = Dataset.from_dict({"history": [[1]], "target": [9]})
    with pytest.raises(SimCITInputError, match="evaluation target"):
        evaluate_baseline("history", split, POPULARITY)


def test_rankings_are_long_tensors():
    ranked = rank_baseline("history", [[0]], POPULARITY, top=3)
    assert ranked.dtype == torch.long and ranked.shape == (1, 3)
