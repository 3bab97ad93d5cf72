"""The LGMD alternating algorithm (block coordinate descent), in torch.

Objective (negative log posterior, ``/work/shared/docs/lgmd.md``), with X (m, n), U (m, k), V (n, k)::

    F = 1/(2 s2) ||M o (X - U V^T)||^2 + |Omega|/2 log s2
      + sum over (W, Theta, p) in {(U, Theta_U, m), (V, Theta_V, n)}:
          gamma_p [1/2 tr(W^T (Theta + beta I) W) - k/2 logdet Theta + rho ||Theta||_1,off + k eps/2 tr(Theta)]

beta (``base``, ours, default 0 here and 1 / s0 in :class:`~.estimator.LGMD`) is a fixed isotropic precision:
the learned Theta ~ (W W^T / k + eps I)^-1 is calibrated to the factors' own spread and on its own hardly
shrinks them, so completion equals SVD imputation; beta adds the PMF prior that the learned graph refines.

gamma_p = ``prior_weight`` (1 by default: the plain MAP model; larger values are a tempered posterior that
smooths more along the graphs); ``balance_priors=True`` multiplies it by (m + n) / (2 p) (experimental).

Attractive graphs (``attractive=True``): Theta's off-diagonal is constrained to be <= 0, a generalised graph
Laplacian, so ``tr(W^T Theta W) = sum_i (Theta 1)_i ||w_i||^2 + sum_{i<j} -Theta_ij ||w_i - w_j||^2`` and
every edge pulls its two rows together. The fixed kNN prior of graph-regularised MF is a feasible point.

Scale gauge (ours): U -> U c, V -> V / c leaves the fit unchanged; the exactly optimal c (``gauge="optimal"``)
lets the l1 and ridge terms drive one side's scale down until the ridge swamps its covariance and its graph
is empty (observed: U's RMS fell 20x, Theta_U lost every edge). The default ``gauge="bounded"`` takes the
optimal c clamped so that each column's norm ratio ||u_j|| / ||v_j|| stays within ``gauge_bound`` of its
initial value (the constrained optimum; F along c is unimodal), and only where it lowers F.

Limitation of the unconstrained graph (``attractive=False``; measured, see the "LGMD completion RMSE" sections
of benchmarks/RESULTS.md): the Theta-step learns the graph from the current factors alone, i.e. from k samples of a p-dimensional vector. Without the
l1 term its minimiser is Theta = (W W^T / k + eps I)^-1, and by the push-through identity
Theta W = W (W^T W / k + eps I)^-1: the learned prior acts on W only through its k x k column Gram, so it
shrinks W's spectrum (profiling Theta out leaves the penalty k/2 logdet(W W^T / k + eps I), a function of
W's singular values only) but never pulls a row towards its neighbours. Any smoothing across rows comes
from the l1 sparsity alone, and at the penalties that complete well the learned graphs are often empty (only
the diagonal); a fixed kNN Laplacian, which is not fitted to W, does smooth. With every method tuned on
held-out observed entries, unconstrained LGMD completes within about 1.5% of PMF and fixed-kNN MF, while
attractive graphs beat both (the 13:22 UTC section).

Every step below exactly minimises F (or an EM majoriser of it, which touches F at the current point) in
one block, so F never increases:

1. U-step: EM-impute missing entries with the current U V^T, then solve the Sylvester equation
   ``s2 Theta_U U + U (V^T V) = Xt V`` exactly by eigendecomposing Theta_U (block-wise) and V^T V.
2. V-step: the same with the roles swapped.
3. Gauge: U[:, j] *= c_j, V[:, j] /= c_j with the (bounded) optimal c_j (the fit is unchanged).
4. Theta-steps: graphical lasso on ``S = W W^T / k + eps I`` with weight ``2 rho / k`` (ADMM, warm-started;
   with ``attractive`` the off-diagonal is constrained to <= 0); the new Theta is kept only if it lowers its
   sub-objective (a safeguard against an early ADMM stop).
5. s2-step: ``s2 = ||M o (X - U V^T)||^2 / |Omega|`` (skipped when s2 is fixed).

Scaling: Theta_U and Theta_V are block-diagonal (:mod:`.precision`), so a factor step costs one batched eigh
of the blocks and the precision step one batched ADMM. With a sparse, fully observed X (implicit feedback)
nothing of size m x n is ever formed.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .precision import (
    ADMMState,
    BlockPrecision,
    admm_graphical_lasso,
    batched_covariance,
    knn_support,
    make_blocks,
)


@dataclass
class SideState:
    """One side (rows or columns): its precision, ADMM warm start and absolute penalty constants."""

    precision: BlockPrecision
    admm: ADMMState | None = None
    rho: float = 0.0  # absolute l1 weight in F
    eps: float = 0.0  # absolute ridge in F
    weight: float = 1.0  # gamma: this side's prior weight (prior_weight, times (m + n) / (2 p) if balanced)
    base: float = 0.0  # beta: fixed isotropic precision added to Theta in the prior of the factor
    attractive: bool = False  # constrain Theta's off-diagonal to <= 0 (a generalised graph Laplacian)


@dataclass
class LGMDState:
    U: torch.Tensor
    V: torch.Tensor
    row: SideState
    col: SideState
    sigma2: float
    history: list[float] = field(default_factory=list)
    trace: list[tuple[str, float]] = field(default_factory=list)
    gauge_ratio: torch.Tensor | None = None  # initial ||u_j|| / ||v_j||
    n_iter: int = 0
    converged: bool = False
    seconds: float = 0.0


class _Data:
    """Access to X for the factor steps: dense with a mask, or sparse and fully observed."""

    def __init__(self, X: torch.Tensor, mask: torch.Tensor | None):
        self.sparse = X.is_sparse or X.layout == torch.sparse_csr
        self.mask = mask
        if self.sparse:
            coo = X.to_sparse_coo().coalesce() if X.layout != torch.sparse_coo else X.coalesce()
            with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul is all we use
                warnings.simplefilter("ignore", UserWarning)
                self.X = coo.to_sparse_csr()
                self.XT = coo.t().coalesce().to_sparse_csr()
            self.sq_norm = float((coo.values().double() ** 2).sum())
            self.n_obs = X.shape[0] * X.shape[1]
        else:
            self.X = X if mask is None else torch.where(mask, X, torch.zeros_like(X))
            self.n_obs = int(mask.sum()) if mask is not None else X.numel()
        self.shape = tuple(X.shape)

    def _filled(self, U, V):
        if self.mask is None:
            return self.X
        return torch.where(self.mask, self.X, U @ V.T)

    def rows_rhs(self, U, V):
        """Xt V with missing entries imputed by U V^T, (m, k)."""
        return self.X @ V if self.sparse else self._filled(U, V) @ V

    def cols_rhs(self, U, V):
        """Xt^T U, (n, k)."""
        return self.XT @ U if self.sparse else self._filled(U, V).T @ U

    def loss(self, U, V) -> float:
        """||M o (X - U V^T)||^2 (float64 scalars)."""
        if self.sparse:
            cross = float((U.double() * (self.X @ V).double()).sum())
            gram = float(((U.T @ U).double() * (V.T @ V).double()).sum())
            return max(self.sq_norm - 2 * cross + gram, 0.0)
        resid = self.X - U @ V.T
        if self.mask is not None:
            resid = resid * self.mask
        return float((resid.double() ** 2).sum())


def _side_objective(side: SideState, W: torch.Tensor) -> float:
    k = W.shape[1]
    prec = side.precision
    value = (
        0.5 * prec.quadratic(W).double()
        + 0.5 * side.base * (W.double() ** 2).sum()
        - 0.5 * k * prec.logdet().double()
        + side.rho * prec.l1_offdiag().double()
        + 0.5 * k * side.eps * prec.trace().double()
    )
    return side.weight * float(value)


def objective(data: _Data, state: LGMDState, estimate_sigma2: bool) -> float:
    """The full objective F at the current state (float64)."""
    fit = data.loss(state.U, state.V) / (2 * state.sigma2)
    if estimate_sigma2:
        fit += 0.5 * data.n_obs * math.log(state.sigma2)
    return fit + _side_objective(state.row, state.U) + _side_objective(state.col, state.V)


def sylvester_factor_step(
    precision: BlockPrecision, rhs: torch.Tensor, gram: torch.Tensor, sigma2: float, base: float = 0.0
) -> torch.Tensor:
    """Solve ``sigma2 (Theta + base I) W + W G = C`` exactly.

    Args:
        precision: Theta (p, p), block-diagonal.
        rhs: C (p, k).
        gram: G (k, k), symmetric positive semi-definite (V^T V or U^T U).
    Returns:
        W (p, k).
    """
    g_vals, g_vecs = torch.linalg.eigh(gram)
    t_vals, t_vecs = precision.eigh()  # (nb, B), (nb, B, B)
    rotated = precision.gather(rhs @ g_vecs)  # (nb, B, k)
    coeff = t_vecs.transpose(1, 2) @ rotated
    coeff = coeff / (sigma2 * (t_vals[..., None] + base) + g_vals[None, None, :])
    return precision.scatter(t_vecs @ coeff) @ g_vecs.T


def _gauge_fix(state: LGMDState, bound: float | None) -> None:
    """Rescale columns U[:, j] *= c_j, V[:, j] /= c_j (U V^T unchanged) to lower F.

    The unconstrained optimum is c_j^4 = q_v / q_u (the two prior quadratics). With ``bound``, the column-norm
    ratio ||u_j|| / ||v_j|| is kept within a factor ``bound`` of its initial value (F along c is unimodal, so
    clamping gives the constrained optimum); a column is rescaled only if that lowers F.
    """
    qu = state.row.weight * (
        state.row.precision.column_quadratic(state.U) + state.row.base * (state.U**2).sum(0))
    qv = state.col.weight * (
        state.col.precision.column_quadratic(state.V) + state.col.base * (state.V**2).sum(0))
    ok = (qu > 0) & (qv > 0)
    c = torch.where(ok, (qv / qu.clamp(min=1e-300)) ** 0.25, torch.ones_like(qu))
    if bound is not None and state.gauge_ratio is not None:
        ratio = state.U.norm(dim=0) / state.V.norm(dim=0).clamp(min=1e-300)
        low, high = state.gauge_ratio / bound, state.gauge_ratio * bound
        c = torch.minimum(torch.maximum(c * ratio, low), high) / ratio.clamp(min=1e-300)
    change = 0.5 * (qu * (c**2 - 1) + qv * (c**-2 - 1))
    c = torch.where(ok & (change < 0), c, torch.ones_like(c))
    state.U = state.U * c
    state.V = state.V / c


def _precision_step(side: SideState, W: torch.Tensor, admm_iter: int, admm_tol: float) -> None:
    """Graphical lasso on S = W W^T / k + eps I, weight 2 rho / k; safeguarded so F cannot increase."""
    k = W.shape[1]
    prec = side.precision
    cov = batched_covariance(prec, W, side.eps)
    lam = 2 * side.rho / k
    theta, admm_state, _ = admm_graphical_lasso(
        cov, lam, support=prec.support, attractive=side.attractive, max_iter=admm_iter, tol=admm_tol,
        state=side.admm,
    )
    valid = prec.valid.to(theta.dtype)
    pad = torch.diag_embed(1 - valid)
    pair = valid[:, :, None] * valid[:, None, :]
    theta = theta * pair + pad
    candidate = BlockPrecision(prec.index, theta, prec.support, prec.num_nodes)
    old = _side_objective(side, W)
    side_new = dataclasses.replace(side, precision=candidate, admm=admm_state)
    new = _side_objective(side_new, W)
    side.admm = admm_state
    if new <= old:
        side.precision = candidate


def initial_factors(data: _Data, rank: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-k truncated SVD of the zero-filled X, split as U = P sqrt(s), V = Q sqrt(s)."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        X = data.X
        if data.sparse:
            X = X.to_sparse_coo()
        m, n = data.shape
        if not data.sparse and min(m, n) <= 2000:
            P, s, Qh = torch.linalg.svd(X, full_matrices=False)
            P, s, Q = P[:, :rank], s[:rank], Qh[:rank].T
        else:
            P, s, Q = torch.svd_lowrank(X, q=min(rank + 10, min(m, n)), niter=4)
            P, s, Q = P[:, :rank], s[:rank], Q[:, :rank]
    finally:
        torch.random.set_rng_state(gen_state)
    root = s.clamp(min=0).sqrt()
    return P * root, Q * root


def _build_side(
    W: torch.Tensor,
    rho_rel: float,
    ridge_rel: float,
    support: str,
    max_block_size: int,
    knn: int,
    graph_weight: float = 0.0,
    base_rel: float = 0.0,
) -> SideState:
    """Blocks, optional kNN mask, and absolute constants (relative to the mean initial row variance)."""
    p, k = W.shape
    scale = float((W.double() ** 2).sum() / (p * k))
    scale = scale if scale > 0 else 1.0
    eps = ridge_rel * scale
    lam = rho_rel * scale
    if support == "dense":
        blocks = [np.arange(p)]
    else:
        blocks = make_blocks(W.detach().cpu().double().numpy(), lam, max_block_size)
    prec = BlockPrecision.from_blocks(
        blocks, p, scale=1.0 / (scale + eps), dtype=W.dtype, device=W.device
    )
    if support == "knn" or graph_weight > 0:
        mask = knn_support(prec, W, knn)
        if support == "knn":
            prec.support = mask
        if graph_weight > 0:
            prec.theta = knn_laplacian_precision(prec, mask, graph_weight, scale + eps)
    return SideState(precision=prec, rho=lam * k / 2, eps=eps, base=base_rel / scale)


def knn_laplacian_precision(prec: BlockPrecision, mask: torch.Tensor, weight: float, scale: float) -> torch.Tensor:
    """The fixed prior of graph-regularised MF: ``(I + weight * L_sym) / scale`` per block, L_sym the normalised
    Laplacian of the kNN graph ``mask``; identity on padding."""
    size = mask.shape[-1]
    eye = torch.eye(size, dtype=prec.theta.dtype, device=mask.device)
    adjacency = (mask & ~eye.bool()).to(prec.theta.dtype)
    degree = adjacency.sum(-1).clamp(min=1)
    inv_sqrt = degree.rsqrt()
    laplacian = eye - inv_sqrt[..., :, None] * adjacency * inv_sqrt[..., None, :]
    valid = prec.valid.to(prec.theta.dtype)
    pair = valid[:, :, None] * valid[:, None, :]
    theta = (eye + weight * laplacian) * pair / scale
    return theta + torch.diag_embed(1 - valid)


def fit_lgmd(
    X: torch.Tensor,
    mask: torch.Tensor | None,
    rank: int,
    *,
    rho_u: float,
    rho_v: float,
    ridge: float,
    sigma2: float | None,
    support: str,
    max_block_size: int,
    knn: int,
    max_iter: int,
    tol: float,
    admm_iter: int,
    admm_tol: float,
    seed: int,
    warm_state: LGMDState | None = None,
    learn_graph: bool = True,
    graph_weight: float = 0.0,
    gauge: str = "bounded",
    gauge_bound: float = 2.0,
    base: float = 0.0,
    attractive: bool = False,
    prior_weight: float = 1.0,
    balance_priors: bool = False,
    track_substeps: bool = False,
    progress: bool = False,
) -> LGMDState:
    """Run the alternating algorithm on X (dense + mask, or sparse fully observed); see module docstring.

    ``graph_weight > 0`` starts both precisions at a kNN-graph Laplacian prior instead of a scaled identity;
    with ``learn_graph=False`` they stay fixed, which is graph-regularised MF (the special case LGMD
    generalises, used as a baseline).
    """
    start = time.perf_counter()
    data = _Data(X, mask)
    estimate_sigma2 = sigma2 is None
    if warm_state is not None:
        state = warm_state
        state.history, state.trace = list(state.history), []
    else:
        U, V = initial_factors(data, rank, seed)
        row = _build_side(U, rho_u, ridge, support, max_block_size, knn, graph_weight, base)
        col = _build_side(V, rho_v, ridge, support, max_block_size, knn, graph_weight, base)
        row.attractive = col.attractive = attractive
        row.weight = col.weight = prior_weight
        if balance_priors:
            m, n = data.shape
            row.weight, col.weight = prior_weight * (m + n) / (2 * m), prior_weight * (m + n) / (2 * n)
        if sigma2 is None:
            s2 = max(data.loss(U, V) / data.n_obs, 1e-8 * (data.loss(U * 0, V) / data.n_obs) + 1e-12)
        else:
            s2 = float(sigma2)
        state = LGMDState(U=U, V=V, row=row, col=col, sigma2=s2)
        state.gauge_ratio = U.norm(dim=0) / V.norm(dim=0).clamp(min=1e-300)
        state.history.append(objective(data, state, estimate_sigma2))

    def record(name: str) -> None:
        if track_substeps:
            state.trace.append((name, objective(data, state, estimate_sigma2)))

    record("init")
    iterator = range(max_iter)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="LGMD", unit="it")
    prev = state.history[-1]
    for _ in iterator:
        state.U = sylvester_factor_step(
            state.row.precision, data.rows_rhs(state.U, state.V), state.V.T @ state.V,
            state.sigma2 * state.row.weight, state.row.base,
        )
        record("U")
        state.V = sylvester_factor_step(
            state.col.precision, data.cols_rhs(state.U, state.V), state.U.T @ state.U,
            state.sigma2 * state.col.weight, state.col.base,
        )
        record("V")
        if gauge != "none":
            _gauge_fix(state, gauge_bound if gauge == "bounded" else None)
            record("gauge")
        if learn_graph:
            _precision_step(state.row, state.U, admm_iter, admm_tol)
            record("theta_u")
            _precision_step(state.col, state.V, admm_iter, admm_tol)
            record("theta_v")
        if estimate_sigma2:
            floor = 1e-10 * (data.loss(state.U * 0, state.V) / data.n_obs) + 1e-300
            state.sigma2 = max(data.loss(state.U, state.V) / data.n_obs, floor)
            record("sigma2")
        value = objective(data, state, estimate_sigma2)
        state.history.append(value)
        state.n_iter += 1
        if progress:
            iterator.set_postfix(objective=f"{value:.6g}")
        if abs(prev - value) <= tol * max(abs(prev), 1e-12):
            state.converged = True
            break
        prev = value
    state.seconds += time.perf_counter() - start
    return state
