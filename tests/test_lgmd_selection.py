"""Hyper-parameter selection on held-out observed entries."""

from __future__ import annotations

import numpy as np
import pytest

from hf_simcit.errors import SimCITInputError
from hf_simcit.lgmd.selection import param_grid, select_lgmd, validation_split

# one torch thread: the solver's small ops stall on a shared 2-core machine with more (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_validation_split_only_uses_observed_entries_and_keeps_rows_and_columns():
    rng = np.random.default_rng(0)
    mask = rng.random((30, 20)) < 0.3
    mask[np.arange(30), rng.integers(0, 20, 30)] = True
    mask[rng.integers(0, 30, 20), np.arange(20)] = True
    train, val = validation_split(mask, 0.2, seed=1)
    assert not (train & val).any() and ((train | val) == mask).all()
    assert val.sum() > 0.1 * mask.sum()
    assert train.any(1).all() and train.any(0).all()
    with pytest.raises(SimCITInputError):
        validation_split(mask, 1.5)


def test_param_grid_expands_products():
    assert param_grid({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    assert param_grid([{"a": 1}]) == [{"a": 1}]


def test_select_lgmd_picks_by_held_out_rmse_and_refits():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 30)) + 0.3 * rng.standard_normal((40, 30))
    mask = rng.random(X.shape) >= 0.3
    mask[np.arange(40), rng.integers(0, 30, 40)] = True
    mask[rng.integers(0, 40, 30), np.arange(30)] = True
    X_obs = np.where(mask, X, np.nan)  # the selection never reads the hidden entries
    model, report = select_lgmd(np.nan_to_num(X_obs), mask, 3, {"base": [0.3, 100.0]}, fraction=0.1,
                                max_iter=5)
    scores = dict((o["base"], s) for o, s in report["scores"])
    assert report["best"] == {"base": 0.3} and scores[0.3] < scores[100.0]
    assert model.U_.shape == (40, 3) and model.base == 0.3
