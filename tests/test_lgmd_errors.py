"""LGMD: every bad input ends in one clear SimCITInputError that says what to change."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hf_simcit.errors import SimCITInputError
from hf_simcit.lgmd import LGMD


@pytest.fixture
def X():
    return np.random.default_rng(0).standard_normal((12, 8))


def test_nan_without_mask(X):
    X = X.copy()
    X[2, 3] = np.nan
    with pytest.raises(SimCITInputError, match=r"row 2, column 3.*pass mask=np.isfinite"):
        LGMD(2).fit(X)


def test_nan_at_observed_entry(X):
    X = X.copy()
    X[4, 1] = np.nan
    mask = np.ones_like(X, dtype=bool)
    with pytest.raises(SimCITInputError, match=r"observed entry \(row 4, column 1\)"):
        LGMD(2).fit(X, mask)
    mask[4, 1] = False
    assert np.isfinite(LGMD(2, max_iter=2).fit(X, mask).complete()).all()


def test_rank_too_large(X):
    with pytest.raises(SimCITInputError, match=r"rank=9 .*12 x 8.*at most 8"):
        LGMD(9).fit(X)
    with pytest.raises(SimCITInputError, match="positive integer"):
        LGMD(0).fit(X)


@pytest.mark.parametrize("name", ["rho_u", "rho_v", "ridge", "prior_weight"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_non_positive_penalties(X, name, value):
    with pytest.raises(SimCITInputError, match=f"{name} must be a positive"):
        LGMD(2, **{name: value}).fit(X)


def test_non_positive_sigma2(X):
    with pytest.raises(SimCITInputError, match="sigma2 must be positive"):
        LGMD(2, sigma2=0.0).fit(X)


def test_all_missing_row_and_column(X):
    mask = np.ones_like(X, dtype=bool)
    mask[5] = False
    with pytest.raises(SimCITInputError, match=r"row\(s\) of X have no observed entry \(first: row 5\)"):
        LGMD(2).fit(X, mask)
    mask = np.ones_like(X, dtype=bool)
    mask[:, 6] = False
    with pytest.raises(SimCITInputError, match=r"column\(s\) of X have no observed entry \(first: column 6\)"):
        LGMD(2).fit(X, mask)


def test_too_large_for_dense_mode():
    X = sp.random(5000, 30, density=0.01, format="csr", random_state=0)
    with pytest.raises(SimCITInputError, match=r"support='dense' would need a 5000 x 5000.*support='blocks'"):
        LGMD(4, support="dense").fit(X)
    with pytest.raises(SimCITInputError, match="max_block_size=5000 must be between"):
        LGMD(4, support="blocks", max_block_size=5000).fit(X)


def test_mask_shape_sparse_with_mask_and_unfitted(X):
    with pytest.raises(SimCITInputError, match="mask has shape"):
        LGMD(2).fit(X, np.ones((3, 3), dtype=bool))
    with pytest.raises(SimCITInputError, match="sparse X is treated as fully observed"):
        LGMD(2).fit(sp.csr_matrix(X), np.ones_like(X, dtype=bool))
    with pytest.raises(SimCITInputError, match="not fitted"):
        LGMD(2).complete()
    with pytest.raises(SimCITInputError, match="support='nope'"):
        LGMD(2, support="nope").fit(X)
    with pytest.raises(SimCITInputError, match="2-D"):
        LGMD(2).fit(np.zeros(5))


def test_lgmd_is_a_scikit_learn_transformer():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 20))
    model = LGMD(3, max_iter=3, rho_u=0.2)
    assert repr(model) == "LGMD(max_iter=3, rank=3, rho_u=0.2)"
    assert clone(model).set_params(max_iter=2).get_params()["max_iter"] == 2
    with pytest.raises(NotFittedError):
        model.transform(X)
    np.testing.assert_array_equal(model.fit_transform(X), LGMD(3, max_iter=3, rho_u=0.2).fit(X).U_)
    pipeline = make_pipeline(StandardScaler(), LGMD(3, max_iter=3))
    assert pipeline.fit_transform(X).shape == (30, 3) and pipeline.transform(X[:4]).shape == (4, 3)
