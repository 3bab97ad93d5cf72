"""Unique semantic IDs: collision statistics, disambiguation level, Sinkhorn re-assignment, cold start."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_simcit.errors import SimCITInputError
from hf_simcit.quantizers import (
    add_disambiguation_level,
    codebook_statistics,
    collision_rate,
    resolve_collisions,
    sinkhorn,
    sinkhorn_reassign_last_level,
)


def test_statistics_are_right_for_any_codebook_size():
    codes = np.array([[0, 0], [1, 0], [2, 1], [2, 1], [3, 2], [3, 2]])
    stats = codebook_statistics(codes, [5, 3])
    assert stats["usage"] == [4 / 5, 1.0]
    # level 0: counts 1,1,2,2 of 6
    probs = np.array([1, 1, 2, 2]) / 6
    assert stats["perplexity"][0] == pytest.approx(math.exp(-(probs * np.log(probs)).sum()))
    assert stats["perplexity"][1] == pytest.approx(3.0)  # uniform over 3 codes
    assert stats["collision_rate"] == pytest.approx(4 / 6)
    assert stats["distinct_sids"] == 4 and stats["max_items_per_sid"] == 2
    uniform = np.arange(1000)[:, None] % 1000
    assert codebook_statistics(uniform, [1000])["perplexity"][0] == pytest.approx(1000)


code_tables = st.integers(1, 60).flatmap(
    lambda n: st.lists(st.lists(st.integers(0, 2), min_size=3, max_size=3), min_size=n, max_size=n)
)


@settings(max_examples=60, deadline=None)
@given(code_tables)
def test_disambiguation_level_always_gives_unique_sids_and_keeps_the_codes(rows):
    codes = np.array(rows)
    unique = add_disambiguation_level(codes)
    assert unique.shape == (len(rows), 4)
    assert np.array_equal(unique[:, :3], codes)
    assert collision_rate(unique) == 0.0
    # items that did not collide get suffix 0
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    assert np.all(unique[counts[inverse.reshape(-1)] == 1, 3] == 0)


@settings(max_examples=60, deadline=None)
@given(code_tables, st.integers(0, 2**31 - 1))
def test_sinkhorn_reassignment_always_gives_unique_sids_within_the_prefix(rows, seed):
    codes = np.array(rows)
    size = 64  # at most 60 items share a prefix
    codes[:, -1] = codes[:, -1] * 7  # last-level codes spread in 0..63
    distances = np.random.default_rng(seed).random((len(rows), size))
    unique = sinkhorn_reassign_last_level(codes, distances, codebook_size=size)
    assert unique.shape == codes.shape
    assert np.array_equal(unique[:, :-1], codes[:, :-1])
    assert collision_rate(unique) == 0.0
    assert unique[:, -1].max() < size
    # an item that collided with nobody keeps its code
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    alone = counts[inverse.reshape(-1)] == 1
    assert np.array_equal(unique[alone], codes[alone])


def test_forced_collisions_every_item_on_one_sid():
    codes = np.zeros((50, 3), dtype=np.int64)
    level = resolve_collisions(codes, [8, 8, 64], "level")
    assert level.raw_collision_rate == 1.0
    assert level.statistics["unique_share"] == 1.0
    assert level.codes.shape == (50, 4) and level.codebook_sizes == [8, 8, 64, 100]  # 2 x largest group
    distances = np.tile(np.arange(64.0), (50, 1))  # code 0 nearest, then 1, 2, ...
    balanced = resolve_collisions(codes, [8, 8, 64], "sinkhorn", distances=distances)
    assert balanced.codes.shape == (50, 3) and balanced.statistics["unique_share"] == 1.0
    assert len(set(balanced.codes[:, -1].tolist())) == 50
    assert balanced.codes[0, -1] == 0  # one item keeps the shared code; the others spread over free codes
    assert balanced.reassigned_items == 49
    with pytest.raises(SimCITInputError, match="disambiguation level"):
        resolve_collisions(np.zeros((70, 3), dtype=np.int64), [8, 8, 64], "sinkhorn")


def test_sinkhorn_plan_is_balanced():
    cost = np.random.default_rng(0).random((6, 10))
    import torch

    plan = sinkhorn(torch.as_tensor(cost))
    assert torch.allclose(plan.sum(1), torch.ones(6, dtype=plan.dtype), atol=1e-6)
    assert torch.allclose(plan.sum(0), torch.full((10,), 0.6, dtype=plan.dtype), atol=1e-3)


@pytest.mark.parametrize("method", ["level", "sinkhorn"])
def test_cold_start_items_never_collide_with_existing_ones(method):
    rng = np.random.default_rng(0)
    existing_raw = np.stack([np.arange(60) % 8, rng.integers(0, 4, 60)], 1)  # collisions within each prefix
    existing = resolve_collisions(existing_raw, [8, 16], method,
                                  distances=rng.random((60, 16)) if method == "sinkhorn" else None,
                                  disambiguation_size=32 if method == "level" else None)
    # new items forced onto SIDs that existing items already hold
    new_raw = existing.raw_codes[:10].copy()
    new = resolve_collisions(new_raw, [8, 16], method, distances=rng.random((10, 16)),
                             existing_codes=existing.codes,
                             disambiguation_size=32 if method == "level" else None)
    assert existing.raw_collision_rate > 0 and existing.statistics["unique_share"] == 1.0
    combined = np.concatenate([existing.codes, new.codes])
    assert collision_rate(combined) == 0.0
    assert np.array_equal(new.codes[:, :1], new_raw[:, :1])  # the prefix is the quantizer's


def test_bad_arguments_name_the_problem():
    with pytest.raises(SimCITInputError, match="resolve must be"):
        resolve_collisions(np.zeros((2, 2), dtype=np.int64), [4, 4], "hash")
    with pytest.raises(SimCITInputError, match="integer array"):
        add_disambiguation_level(np.zeros((2, 2)))
    with pytest.raises(SimCITInputError, match="distances have shape"):
        sinkhorn_reassign_last_level(np.zeros((3, 2), dtype=np.int64), np.zeros((3, 5)), codebook_size=4)
    with pytest.raises(SimCITInputError, match="only 2 codes"):
        resolve_collisions(np.zeros((5, 2), dtype=np.int64), [4, 4], "level", disambiguation_size=2)


def test_disambiguation_order_index_random_distance():
    """The disambiguation level numbers a group in item order by default; "random" and "distance" do not leak
    item order (often first appearance, i.e. popularity) into the codes."""
    codes = np.zeros((40, 2), dtype=np.int64)          # one group of 40 items
    codes[30:, 0] = 1                                  # and one of 10
    default = resolve_collisions(codes, [4, 4], "level")
    assert default.disambiguation_order == "index"
    assert np.array_equal(default.codes[:30, -1], np.arange(30)) and np.array_equal(default.codes[30:, -1], np.arange(10))
    shuffled = resolve_collisions(codes, [4, 4], "level", disambiguation_order="random", disambiguation_seed=3)
    assert shuffled.summary()["disambiguation_order"] == "random"
    assert shuffled.summary()["disambiguation_seed"] == 3 and default.summary()["disambiguation_seed"] is None
    assert sorted(shuffled.codes[:30, -1].tolist()) == list(range(30))   # still a numbering of the group
    assert not np.array_equal(shuffled.codes[:30, -1], np.arange(30))    # ... but not in item order
    assert abs(np.corrcoef(np.arange(30), shuffled.codes[:30, -1])[0, 1]) < 0.5
    again = resolve_collisions(codes, [4, 4], "level", disambiguation_order="random", disambiguation_seed=3)
    assert np.array_equal(again.codes, shuffled.codes)                  # deterministic for a seed
    assert np.array_equal(shuffled.codes[:, :2], codes) and collision_rate(shuffled.codes) == 0.0
    distances = np.ones((40, 4))
    distances[:, 0] = np.linspace(1.0, 0.0, 40)       # later items are nearer their codeword (code 0)
    nearest = resolve_collisions(codes, [4, 4], "level", distances=distances, disambiguation_order="distance")
    assert np.array_equal(nearest.codes[:30, -1], np.arange(29, -1, -1))
    assert np.array_equal(nearest.codes[30:, -1], np.arange(9, -1, -1))
    with pytest.raises(SimCITInputError, match="disambiguation_order must be"):
        resolve_collisions(codes, [4, 4], "level", disambiguation_order="popularity")
    with pytest.raises(SimCITInputError, match="needs the items' last-level distances"):
        resolve_collisions(codes, [4, 4], "level", disambiguation_order="distance")
    with pytest.raises(SimCITInputError, match="one sort key per item"):
        add_disambiguation_level(codes, order=np.zeros(3))


@pytest.mark.parametrize("order", ["random", "distance"])
def test_disambiguation_order_with_a_quantizer_and_cold_start(order):
    import torch

    from hf_simcit.quantizers import RQKMeansQuantizer, assign_semantic_ids

    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g)
    x[100:200] = x[0]                                   # 101 items with the same features -> one SID
    quantizer = RQKMeansQuantizer(num_levels=2, codebook_size=4, seed=0).fit({"text": x})
    existing = assign_semantic_ids(quantizer, {"text": x[:250]}, resolve="level", disambiguation_order=order)
    group = existing.codes[100:200, -1]
    assert sorted(group.tolist()) == sorted(set(group.tolist())) and collision_rate(existing.codes) == 0.0
    new = assign_semantic_ids(quantizer, {"text": x[250:]}, resolve="level", disambiguation_order=order,
                              existing_codes=existing.codes, disambiguation_size=existing.codebook_sizes[-1])
    assert collision_rate(np.concatenate([existing.codes, new.codes])) == 0.0
