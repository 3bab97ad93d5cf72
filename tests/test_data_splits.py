"""k-core filtering and the leave-one-out split on hand-made cases, plus property tests of the invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_simcit.data import index_ids, k_core, leave_one_out
from hf_simcit.errors import SimCITInputError


def test_k_core_is_iterative():
    # item "z" has 1 interaction -> removed; then user "c" drops to 1 interaction -> removed;
    # then item "y" falls to 1 interaction -> removed; users a, b keep x and w.
    sequences = {
        "a": ["x", "w", "y"],
        "b": ["w", "x"],
        "c": ["y", "z"],
    }
    kept, report = k_core(sequences, min_user_interactions=2, min_item_interactions=2)
    assert kept == {"a": ["x", "w"], "b": ["w", "x"]}
    assert report.removed_users == 1
    assert report.removed_items == 2
    assert report.removed_interactions == 3
    assert report.rounds == 2


def test_k_core_zero_keeps_everything():
    sequences = {"a": ["x"], "b": ["y", "y"]}
    kept, report = k_core(sequences, 0, 0)
    assert kept == sequences
    assert (report.removed_users, report.removed_items, report.removed_interactions) == (0, 0, 0)


def test_index_ids_natural_order():
    assert index_ids(["10", "2", "1", "b", "a"]) == {"1": 0, "2": 1, "10": 2, "a": 3, "b": 4}


def test_leave_one_out_exact():
    split = leave_one_out([[0, 1, 2, 3, 4], [5, 6, 7]], max_history=2)
    assert split.test == {"user_id": [0, 1], "history": [[2, 3], [5, 6]], "target": [4, 7]}
    assert split.validation == {"user_id": [0, 1], "history": [[1, 2], [5]], "target": [3, 6]}
    assert split.train == {"user_id": [0, 0], "history": [[0], [0, 1]], "target": [1, 2]}


def test_leave_one_out_last_only_and_short_users():
    split = leave_one_out([[0, 1, 2, 3, 4], [5, 6]], max_history=20, train_examples="last")
    assert split.train == {"user_id": [0], "history": [[0, 1]], "target": [2]}
    assert split.users_too_short == 1
    assert split.test["user_id"] == [0]


def test_training_target_equal_to_evaluation_target_is_dropped():
    # user revisits item 9: it is the test target, so its earlier occurrence is no training target
    split = leave_one_out([[9, 1, 9, 2, 9]], max_history=20)
    assert split.test["target"] == [9]
    assert split.validation["target"] == [2]
    assert split.train["target"] == [1]
    assert split.train_targets_dropped_as_eval_targets == 1


def test_leave_one_out_rejects_bad_options():
    with pytest.raises(SimCITInputError, match="train_examples"):
        leave_one_out([[1, 2, 3]], train_examples="some")
    with pytest.raises(SimCITInputError, match="max_history"):
        leave_one_out([[1, 2, 3]], max_history=0)


sequences_strategy = st.lists(st.lists(st.integers(0, 15), min_size=0, max_size=30), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(sequences=sequences_strategy, max_history=st.integers(1, 8), mode=st.sampled_from(["all", "last"]))
def test_leave_one_out_invariants(sequences, max_history, mode):
    split = leave_one_out(sequences, max_history=max_history, train_examples=mode)
    splittable = [u for u, s in enumerate(sequences) if len(s) >= 3]
    assert split.test["user_id"] == splittable
    assert split.validation["user_id"] == splittable
    assert split.users_too_short == len(sequences) - len(splittable)
    held_out = {}
    for part, offset in ((split.test, 1), (split.validation, 2)):
        for user, history, target in zip(part["user_id"], part["history"], part["target"]):
            seq = sequences[user]
            assert target == seq[-offset]
            assert history == seq[: len(seq) - offset][-max_history:]
            held_out.setdefault(user, set()).add(target)
    per_user = {}
    for user, history, target in zip(split.train["user_id"], split.train["history"], split.train["target"]):
        seq = sequences[user]
        assert 1 <= len(history) <= max_history
        assert target not in held_out[user]  # no evaluation target is a training target of the same user
        # the example is a real prefix of the user's training part (before the validation target)
        positions = [p for p in range(1, len(seq) - 2) if seq[p] == target and seq[:p][-max_history:] == history]
        assert positions
        per_user[user] = per_user.get(user, 0) + 1
    if mode == "last":
        assert all(count == 1 for count in per_user.values())
