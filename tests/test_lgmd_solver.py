"""LGMD solver: ADMM graphical lasso against scikit-learn, exact factor steps, monotone objective."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from hf_simcit.errors import SimCITInputError
from hf_simcit.lgmd import LGMD, admm_graphical_lasso, glasso_objective
from hf_simcit.lgmd.precision import BlockPrecision, knn_support, make_blocks
from hf_simcit.lgmd.solver import sylvester_factor_step

# tiny matrices: one thread is faster, and kinder to a shared 2-core machine (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _low_rank(m=40, n=30, k=3, noise=0.2, missing=0.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, k)) @ rng.standard_normal((k, n)) + noise * rng.standard_normal((m, n))
    mask = rng.random((m, n)) >= missing
    mask[np.arange(m), rng.integers(0, n, m)] = True  # every row observed somewhere
    mask[rng.integers(0, m, n), np.arange(n)] = True
    return X, mask


def test_admm_matches_sklearn_on_well_conditioned_covariance():
    from sklearn.covariance import graphical_lasso

    rng = np.random.default_rng(0)
    S = np.cov(rng.standard_normal((200, 25)).T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, theta_sk = graphical_lasso(S, alpha=0.1, tol=1e-10, max_iter=2000)
    theta, _, info = admm_graphical_lasso(torch.tensor(S), 0.1, tol=1e-8, max_iter=5000)
    assert info["converged"]
    np.testing.assert_allclose(theta.numpy(), theta_sk, atol=2e-3)
    support_sk = np.abs(theta_sk) > 1e-6
    assert (support_sk == (theta.numpy() != 0)).mean() > 0.99
    assert (theta.numpy() == 0).sum() > 0  # really sparse
    ours = float(glasso_objective(torch.tensor(S), theta, 0.1))
    theirs = float(glasso_objective(torch.tensor(S), torch.tensor(theta_sk), 0.1))
    assert ours <= theirs + 1e-5


def test_admm_solves_rank_deficient_covariance_where_sklearn_fails():
    from sklearn.covariance import graphical_lasso

    rng = np.random.default_rng(0)
    F = rng.standard_normal((60, 3))
    S = F @ F.T / 3  # rank 3
    with warnings.catch_warnings(), pytest.raises(FloatingPointError):
        warnings.simplefilter("ignore")
        graphical_lasso(S, alpha=0.05)
    ridge, lam = 0.05, 0.05
    S_r = torch.tensor(S) + ridge * torch.eye(60)
    theta, _, info = admm_graphical_lasso(S_r, lam, tol=1e-7, max_iter=5000)
    assert info["converged"]
    assert torch.isfinite(theta).all() and torch.linalg.eigvalsh(theta)[0] > 0
    # KKT: S - W + lam * sign(Theta) = 0 on the support, |S - W| <= lam off it, W_ii = S_ii
    W = torch.linalg.inv(theta)
    grad = S_r - W
    off = ~torch.eye(60, dtype=torch.bool)
    nz = (theta != 0) & off
    assert torch.allclose(grad[nz], -lam * torch.sign(theta[nz]), atol=2e-3)
    assert (grad[~nz & off].abs() <= lam + 2e-3).all()
    assert torch.allclose(torch.diagonal(grad), torch.zeros(60, dtype=grad.dtype), atol=2e-3)


def test_attractive_admm_satisfies_the_sign_constrained_kkt_conditions():
    """attractive=True solves min tr(S T) - logdet T + lam sum_ij |T_ij| s.t. T_ij <= 0 (i != j): KKT gives
    W = T^-1 with W_ii = S_ii, W_ij = S_ij - lam on edges and W_ij >= S_ij - lam off them."""
    rng = np.random.default_rng(0)
    F = rng.standard_normal((40, 3))
    ridge, lam = 0.1, 0.05
    S = torch.tensor(F @ F.T / 3) + ridge * torch.eye(40, dtype=torch.float64)
    theta, _, info = admm_graphical_lasso(S, lam, attractive=True, tol=1e-8, max_iter=20000)
    assert info["converged"]
    off = ~torch.eye(40, dtype=torch.bool)
    assert (theta[off] <= 0).all()
    edges = (theta != 0) & off
    assert 40 < int(edges.sum()) < 40 * 39  # a real, sparse graph
    W = torch.linalg.inv(theta)
    torch.testing.assert_close(torch.diagonal(W), torch.diagonal(S), atol=2e-4, rtol=0)
    torch.testing.assert_close(W[edges], S[edges] - lam, atol=2e-4, rtol=0)
    assert (W[~edges & off] >= S[~edges & off] - lam - 2e-4).all()
    # the unconstrained solution has repulsive (positive) edges that the constraint removes
    free, _, _ = admm_graphical_lasso(S, lam, tol=1e-8, max_iter=20000)
    assert (free[off] > 1e-6).any()
    assert float(glasso_objective(S, free, lam)) < float(glasso_objective(S, theta, lam))


def test_admm_respects_restricted_support_and_batches():
    rng = np.random.default_rng(1)
    covs = torch.stack([torch.tensor(np.cov(rng.standard_normal((100, 12)).T)) for _ in range(3)])
    support = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(0)) > 0.6
    support = support | support.transpose(1, 2)
    theta, _, _ = admm_graphical_lasso(covs, 0.02, support=support, max_iter=3000, tol=1e-7)
    off = ~torch.eye(12, dtype=torch.bool)
    assert (theta[~support & off] == 0).all()
    assert (torch.linalg.eigvalsh(theta)[:, 0] > 0).all()
    # batched result equals solving each block alone
    single, _, _ = admm_graphical_lasso(covs[1], 0.02, support=support[1], max_iter=3000, tol=1e-7)
    torch.testing.assert_close(theta[1], single, atol=1e-3, rtol=0)


def test_sylvester_step_is_exact_on_blocks():
    rng = np.random.default_rng(0)
    p, k = 11, 3
    blocks = [np.array([0, 3, 5, 7]), np.array([1, 2, 4, 6, 8, 9, 10])]
    prec = BlockPrecision.from_blocks(blocks, p)
    for b, block in enumerate(blocks):
        A = rng.standard_normal((len(block), len(block)))
        prec.theta[b, : len(block), : len(block)] = torch.tensor(A @ A.T + np.eye(len(block)))
    C = torch.tensor(rng.standard_normal((p, k)))
    B = torch.tensor(rng.standard_normal((k, k)))
    G = B @ B.T
    W = sylvester_factor_step(prec, C, G, sigma2=0.7)
    theta = prec.to_dense()
    assert theta[0, 1] == 0  # nodes 0 and 1 are in different blocks
    torch.testing.assert_close(0.7 * theta @ W + W @ G, C, atol=1e-9, rtol=0)


def test_make_blocks_screening_is_exact_and_sizes_bounded():
    rng = np.random.default_rng(0)
    # two groups of rows living in orthogonal subspaces -> |S_ij| = 0 across groups
    rows = np.zeros((50, 4))
    rows[:20, :2] = rng.standard_normal((20, 2))
    rows[20:, 2:] = rng.standard_normal((30, 2))
    blocks = make_blocks(rows, lam=1e-6, max_block_size=30)
    assert sorted(np.concatenate(blocks).tolist()) == list(range(50))
    assert all(len(b) <= 30 for b in blocks)
    for b in blocks:  # no block mixes the two groups
        assert (b < 20).all() or (b >= 20).all()
    small = make_blocks(rng.standard_normal((100, 3)), lam=0.0, max_block_size=16)
    assert all(len(b) <= 16 for b in small) and sum(len(b) for b in small) == 100


def test_knn_support_has_at_least_k_partners():
    rows = torch.tensor(np.random.default_rng(0).standard_normal((20, 3)))
    prec = BlockPrecision.from_blocks([np.arange(12), np.arange(12, 20)], 20)
    mask = knn_support(prec, rows, knn=3)
    partners = mask.sum(-1) - 1
    assert (partners[0, :12] >= 3).all() and (partners[1, :8] >= 3).all()
    assert not mask[1, 8:, :8].any()  # padding never connects


@pytest.mark.parametrize(
    ("support", "missing", "seed"),
    [("dense", 0.0, 0), ("dense", 0.3, 1), ("dense", 0.5, 2), ("blocks", 0.0, 3), ("blocks", 0.3, 4),
     ("knn", 0.0, 5), ("knn", 0.3, 6)],
)
def test_objective_never_increases(seed, missing, support):
    X, mask = _low_rank(seed=seed, missing=missing)
    model = LGMD(3, support=support, max_block_size=16, knn=4, max_iter=8, tol=0, trace_steps=True,
                 admm_iter=50, random_state=seed)
    model.fit(X, mask if missing else None)
    values = np.array([v for _, v in model.objective_trace_])
    assert len(values) > 8 * 5
    steps = np.diff(values)
    assert (steps <= 1e-9 * np.abs(values[:-1])).all(), model.objective_trace_
    history = np.array(model.objective_history_)
    assert (np.diff(history) <= 1e-9 * np.abs(history[:-1])).all()
    assert history[-1] < history[0]


@pytest.mark.parametrize(("support", "missing", "prior_weight"), [("dense", 0.3, 1.0), ("dense", 0.3, 10.0),
                                                               ("blocks", 0.0, 3.0), ("knn", 0.3, 3.0)])
def test_attractive_graph_objective_never_increases(support, missing, prior_weight):
    X, mask = _low_rank(seed=7, missing=missing)
    model = LGMD(3, support=support, max_block_size=16, knn=4, max_iter=8, tol=0, trace_steps=True,
                 admm_iter=50, attractive=True, prior_weight=prior_weight, base=0.3, ridge=0.3)
    model.fit(X, mask if missing else None)
    values = np.array([v for _, v in model.objective_trace_])
    steps = np.diff(values)
    assert (steps <= 1e-9 * np.abs(values[:-1])).all(), model.objective_trace_
    assert values[-1] < values[0]
    for theta in (model.theta_u_, model.theta_v_):
        coo = theta.tocoo()
        assert (coo.data[coo.row != coo.col] <= 0).all()


def test_attractive_graph_links_rows_of_the_same_cluster():
    """Rows drawn around 4 centres: most of the learned attractive row graph's edge weight lies inside the
    clusters (chance: 14 / 59 = 24%; measured 80%), and smoothing along it completes better than the same
    model without a graph (PMF; measured RMSE 0.374 vs 0.420)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 15)
    U = rng.standard_normal((4, 3))[labels] + 0.1 * rng.standard_normal((60, 3))
    clean = U @ rng.standard_normal((3, 40))
    X = clean + 0.8 * rng.standard_normal(clean.shape)
    mask = rng.random(X.shape) >= 0.3
    lgmd = LGMD(3, attractive=True, prior_weight=10.0, base=0.0, rho_u=0.05, rho_v=0.05, ridge=0.3,
                admm_iter=50).fit(X, mask)
    pmf = LGMD(3, learn_graph=False, base=1.0).fit(X, mask)
    coo = lgmd.theta_u_.tocoo()
    off = coo.row != coo.col
    same = labels[coo.row[off]] == labels[coo.col[off]]
    weight = -coo.data[off]
    assert off.sum() > 60 and (weight * same).sum() / weight.sum() > 0.7
    rmse = {name: np.sqrt(((m.complete() - clean)[~mask] ** 2).mean()) for name, m in
            (("lgmd", lgmd), ("pmf", pmf))}
    assert rmse["lgmd"] < 0.92 * rmse["pmf"], rmse


def test_float32_and_fixed_sigma2_are_monotone_too():
    X, mask = _low_rank(seed=3, missing=0.2)
    model = LGMD(3, dtype="float32", sigma2=0.05, max_iter=6, tol=0, trace_steps=True)
    model.fit(X, mask)
    values = np.array([v for _, v in model.objective_trace_])
    assert (np.diff(values) <= 1e-5 * np.abs(values[:-1])).all()
    assert model.U_.dtype == np.float32 and model.sigma2_ == 0.05


def test_completion_beats_zero_fill_and_learns_a_graph():
    X, mask = _low_rank(m=60, n=40, k=3, noise=0.1, missing=0.3, seed=4)
    rng = np.random.default_rng(4)
    clean = X  # noise is small; compare against the noisy truth on the hidden entries
    model = LGMD(3, max_iter=15).fit(X, mask)
    completed = model.complete()
    rmse = np.sqrt(((completed - clean)[~mask] ** 2).mean())
    assert rmse < 0.3 * np.sqrt((clean[~mask] ** 2).mean())
    assert model.theta_v_.shape == (40, 40) and model.theta_v_.nnz > 40
    filled = model.complete(X, mask)
    np.testing.assert_array_equal(filled[mask], X[mask])
    assert rng is not None


def test_warm_start_continues_from_previous_solution():
    X, _ = _low_rank(seed=5)
    model = LGMD(3, max_iter=3, tol=0, warm_start=True)
    model.fit(X)
    first_end = model.objective_history_[-1]
    model.fit(X)
    assert model.objective_history_[3] == first_end
    assert model.objective_history_[-1] <= first_end
    assert model.n_iter_ == 6
    # the state belongs to one objective: changing it under a warm start is refused, not silently ignored
    model.attractive, model.prior_weight = True, 10.0
    with pytest.raises(SimCITInputError, match="attractive changed from False to True, prior_weight changed"):
        model.fit(X)
    model.warm_start = False
    model.fit(X)
    coo = model.theta_u_.tocoo()
    assert (coo.data[coo.row != coo.col] <= 0).all()


def test_sparse_implicit_matrix_and_item_without_interactions():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    dense = (rng.random((80, 50)) < 0.1).astype(np.float64)
    dense[:, 7] = 0.0  # item 7 has no interactions
    model = LGMD(4, max_iter=5, support="blocks", max_block_size=32).fit(sp.csr_matrix(dense))
    assert model.V_.shape == (50, 4) and np.isfinite(model.V_).all()
    assert np.allclose(model.V_[7], 0.0, atol=1e-8)  # documented rule: no signal and no graph edge -> zero
    history = np.array(model.objective_history_)
    assert (np.diff(history) <= 1e-9 * np.abs(history[:-1])).all()
    # the same matrix given dense (fully observed) reaches the same objective value
    dense_model = LGMD(4, max_iter=5, support="blocks", max_block_size=32).fit(dense)
    assert dense_model.objective_history_[-1] == pytest.approx(model.objective_history_[-1], rel=1e-3)


def test_transform_folds_in_new_rows():
    X, _ = _low_rank(seed=6, noise=0.01)
    model = LGMD(3, max_iter=10).fit(X)
    folded = model.transform(X[:5])
    np.testing.assert_allclose(folded @ model.V_.T, X[:5], atol=0.1)
    with pytest.warns(FutureWarning, match="fit_transform"):   # deprecated: the training rows' U
        assert model.transform() is model.U_


def test_bounded_gauge_keeps_both_graphs_while_optimal_gauge_is_monotone_too():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3)) @ rng.standard_normal((3, 40)) + rng.standard_normal((60, 40))
    # the plain model (base=0): the base prior would pin the scale by itself
    bounded = LGMD(3, max_iter=10, tol=0, rho_u=0.1, rho_v=0.1, ridge=0.1, base=0.0).fit(X)
    optimal = LGMD(3, max_iter=10, tol=0, rho_u=0.1, rho_v=0.1, ridge=0.1, base=0.0, gauge="optimal",
                   trace_steps=True).fit(X)
    values = np.array([v for _, v in optimal.objective_trace_])
    assert (np.diff(values) <= 1e-9 * np.abs(values[:-1])).all()
    ratio = np.linalg.norm(bounded.U_, axis=0) / np.linalg.norm(bounded.V_, axis=0)
    free = np.linalg.norm(optimal.U_, axis=0) / np.linalg.norm(optimal.V_, axis=0)
    # the SVD split U = P sqrt(s), V = Q sqrt(s) starts every column at ratio 1; the gauge step keeps it
    # within a factor 2 (the factor steps may move it a little further), the unbounded gauge drifts away
    assert np.abs(np.log(ratio)).max() < np.log(4) < np.abs(np.log(free)).max()
    assert bounded.theta_u_.nnz > 60 and bounded.theta_v_.nnz > 40  # both sides keep a graph


def test_screened_graphical_lasso_equals_dense_solution():
    from hf_simcit.lgmd.precision import screened_graphical_lasso

    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 60))
    A[:, 30:] *= 0.3  # weakly correlated half -> many small components
    S = torch.tensor(np.cov(A.T))
    screened, stats = screened_graphical_lasso(S, 0.12, max_block_size=25)
    dense, _, _ = admm_graphical_lasso(S, 0.12, tol=1e-7, max_iter=3000)
    assert stats["exact"] and stats["components"] > 10
    torch.testing.assert_close(screened, dense, atol=1e-4, rtol=0)
