"""Sparse precision matrices for LGMD: an ADMM graphical lasso with a ridge, on block-restricted supports.

Why our own solver: the sample covariance of a rank-k factor, ``S = F F^T / k``, has rank <= k, and
coordinate-descent graphical lasso solvers (scikit-learn's) fail on it. The ADMM below tolerates it (the
ridge ``eps I`` makes the problem strictly convex) and runs batched over independent blocks, so that a
precision matrix over tens of thousands of rows is a block-diagonal matrix whose blocks are solved together.

A block-diagonal support is exact when the blocks are unions of the connected components of the graph
``|S_ij| > lambda`` (the graphical lasso solution is then block-diagonal, Witten et al. 2011 / Mazumder &
Hastie 2012); when a component is larger than ``max_block_size`` we split it (ours: recursive bisection
along the leading principal direction of the factor rows), which restricts the support. A kNN mask inside
the blocks restricts it further. The ADMM solves the restricted problem exactly (projection onto the
support in the Z-step).

Shapes: ``nb`` blocks, padded to a common size ``B``; ``index`` (nb, B) holds the node of each slot, -1 for
padding. Padding slots carry an identity that never couples to real nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ADMMState:
    """Warm-start state of the ADMM: the sparse iterate ``Z``, the scaled dual ``dual`` and penalties ``rho``."""

    Z: torch.Tensor  # (nb, B, B)
    dual: torch.Tensor  # (nb, B, B)
    rho: torch.Tensor  # (nb,)


@dataclass
class BlockPrecision:
    """A (p, p) precision matrix stored as dense blocks on disjoint index sets.

    Attributes:
        index: LongTensor (nb, B), the node of each slot; -1 marks padding.
        theta: FloatTensor (nb, B, B), the blocks (identity on padding).
        support: optional BoolTensor (nb, B, B), entries allowed to be non-zero (diagonal always allowed).
        num_nodes: p.
    """

    index: torch.Tensor
    theta: torch.Tensor
    support: torch.Tensor | None
    num_nodes: int

    @property
    def valid(self) -> torch.Tensor:
        """BoolTensor (nb, B): True for real nodes."""
        return self.index >= 0

    @property
    def block_size(self) -> int:
        return self.index.shape[1]

    @classmethod
    def from_blocks(
        cls, blocks: list[np.ndarray], num_nodes: int, *, scale: float = 1.0, dtype=torch.float64, device="cpu"
    ) -> BlockPrecision:
        """Build ``scale * I`` on the given disjoint blocks (each an array of node ids)."""
        size = max(len(b) for b in blocks)
        index = torch.full((len(blocks), size), -1, dtype=torch.long)
        for i, block in enumerate(blocks):
            index[i, : len(block)] = torch.as_tensor(np.asarray(block), dtype=torch.long)
        index = index.to(device)
        eye = torch.eye(size, dtype=dtype, device=device).expand(len(blocks), size, size)
        valid = (index >= 0).to(dtype)
        theta = eye * (scale * valid + (1 - valid))[:, None, :]
        return cls(index=index, theta=theta.contiguous(), support=None, num_nodes=num_nodes)

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """(p, k) -> (nb, B, k), zeros on padding."""
        out = rows[self.index.clamp(min=0)]
        return out * self.valid[..., None].to(rows.dtype)

    def scatter(self, blocks: torch.Tensor) -> torch.Tensor:
        """(nb, B, k) -> (p, k); padding slots are dropped."""
        valid = self.valid
        out = blocks.new_zeros((self.num_nodes, blocks.shape[-1]))
        out[self.index[valid]] = blocks[valid]
        return out

    def quadratic(self, rows: torch.Tensor) -> torch.Tensor:
        """tr(F^T Theta F) for F (p, k)."""
        fb = self.gather(rows)
        return (fb * (self.theta @ fb)).sum()

    def column_quadratic(self, rows: torch.Tensor) -> torch.Tensor:
        """diag(F^T Theta F), shape (k,)."""
        fb = self.gather(rows)
        return (fb * (self.theta @ fb)).sum(dim=(0, 1))

    def logdet(self) -> torch.Tensor:
        """log det Theta (padding contributes 0); +inf-safe: returns -inf if a block is not positive definite."""
        chol, info = torch.linalg.cholesky_ex(self.theta)
        if bool((info > 0).any()):
            return torch.tensor(-math.inf, dtype=self.theta.dtype, device=self.theta.device)
        return 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum()

    def l1_offdiag(self) -> torch.Tensor:
        off = self.theta.abs().sum() - torch.diagonal(self.theta, dim1=-2, dim2=-1).abs().sum()
        return off

    def trace(self) -> torch.Tensor:
        diag = torch.diagonal(self.theta, dim1=-2, dim2=-1)
        return (diag * self.valid.to(diag.dtype)).sum()

    def eigh(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched eigendecomposition: eigenvalues (nb, B), eigenvectors (nb, B, B)."""
        return torch.linalg.eigh(self.theta)

    def num_edges(self) -> int:
        """Number of non-zero off-diagonal entries (each undirected edge counted twice)."""
        nz = (self.theta != 0).sum() - (torch.diagonal(self.theta, dim1=-2, dim2=-1) != 0).sum()
        return int(nz)

    def to_sparse(self) -> torch.Tensor:
        """The (p, p) matrix as a coalesced torch sparse COO tensor (padding dropped)."""
        nb, size = self.index.shape
        rows = self.index[:, :, None].expand(nb, size, size)
        cols = self.index[:, None, :].expand(nb, size, size)
        keep = (rows >= 0) & (cols >= 0) & (self.theta != 0)
        indices = torch.stack([rows[keep], cols[keep]])
        shape = (self.num_nodes,) * 2
        return torch.sparse_coo_tensor(indices, self.theta[keep], shape, check_invariants=False).coalesce()

    def to_dense(self) -> torch.Tensor:
        return self.to_sparse().to_dense()

    def to(self, device=None, dtype=None) -> BlockPrecision:
        return BlockPrecision(
            index=self.index.to(device),
            theta=self.theta.to(device=device, dtype=dtype),
            support=None if self.support is None else self.support.to(device),
            num_nodes=self.num_nodes,
        )


def batched_covariance(precision: BlockPrecision, rows: torch.Tensor, ridge: float) -> torch.Tensor:
    """S = F F^T / k + ridge I per block, (nb, B, B); identity on padding so that it decouples."""
    k = rows.shape[1]
    fb = precision.gather(rows)
    cov = fb @ fb.transpose(1, 2) / k
    valid = precision.valid.to(cov.dtype)
    diag = ridge * valid + (1 - valid)
    return cov + torch.diag_embed(diag)


def _soft_threshold(values: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    return torch.sign(values) * torch.clamp(values.abs() - threshold, min=0)


def admm_graphical_lasso(
    cov: torch.Tensor,
    lam: float,
    *,
    support: torch.Tensor | None = None,
    penalize_diagonal: bool = False,
    attractive: bool = False,
    max_iter: int = 1000,
    tol: float = 1e-5,
    state: ADMMState | None = None,
) -> tuple[torch.Tensor, ADMMState, dict]:
    """Solve ``min_Theta tr(S Theta) - logdet Theta + lam * ||Theta||_1`` by ADMM, batched over blocks.

    The l1 norm covers the off-diagonal (and the diagonal if ``penalize_diagonal``); entries outside
    ``support`` are held at zero. Any ridge belongs in ``cov`` (``S + eps I``), which makes the problem
    strictly convex even when ``S`` is rank-deficient.

    Args:
        cov: (B, B) or (nb, B, B) symmetric covariance(s).
        lam: l1 weight (same units as ``cov``).
        support: optional BoolTensor like ``cov``: allowed non-zeros (the diagonal is always allowed).
        attractive: constrain the off-diagonal to ``Theta_ij <= 0`` (an attractive / MTP2 Gaussian, a
            generalised graph Laplacian): every edge then pulls its two nodes together, since
            ``tr(F^T Theta F) = sum_i (Theta 1)_i ||f_i||^2 + sum_{i<j} -Theta_ij ||f_i - f_j||^2``.
        max_iter, tol: stop when primal and dual residuals fall below ``tol`` relative to the iterates.
        state: warm start from a previous call on a nearby ``cov``.

    Returns:
        ``(theta, state, info)``: theta like ``cov``, positive definite, exactly zero outside the support
        and where the l1 term thresholds; ``info`` has ``iterations`` and ``converged``.
    """
    squeeze = cov.dim() == 2
    if squeeze:
        cov = cov[None]
        support = None if support is None else support[None]
    nb, size, _ = cov.shape
    eye = torch.eye(size, dtype=torch.bool, device=cov.device)
    if support is not None:
        support = support | eye
    thresh_mask = torch.ones_like(eye) if penalize_diagonal else ~eye
    scale = torch.diagonal(cov, dim1=-2, dim2=-1).mean(-1).clamp(min=1e-12)  # (nb,)
    if state is None:
        Z = torch.diag_embed(1.0 / torch.diagonal(cov, dim1=-2, dim2=-1).clamp(min=1e-12))
        dual = torch.zeros_like(cov)
        rho = scale**2
    else:
        Z, dual, rho = state.Z.clone(), state.dual.clone(), state.rho.clone()
    sqrt_n = size
    converged = torch.zeros(nb, dtype=torch.bool, device=cov.device)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        r = rho[:, None, None]
        evals, evecs = torch.linalg.eigh(r * (Z - dual) - cov)
        theta_evals = (evals + torch.sqrt(evals**2 + 4 * r[..., 0])) / (2 * r[..., 0])
        theta = (evecs * theta_evals[:, None, :]) @ evecs.transpose(1, 2)
        Z_old = Z
        shifted = theta + dual
        if attractive:  # prox of lam |z| + indicator(z <= 0) off the diagonal: min(v + lam / r, 0)
            diagonal = _soft_threshold(shifted, lam / r) if penalize_diagonal else shifted
            Z = torch.where(eye, diagonal, torch.clamp(shifted + lam / r, max=0))
        else:
            Z = torch.where(thresh_mask, _soft_threshold(shifted, lam / r), shifted)
        if support is not None:
            Z = Z * support
        dual = dual + theta - Z
        primal_res = torch.linalg.matrix_norm(theta - Z)
        dual_res = rho * torch.linalg.matrix_norm(Z - Z_old)
        eps_primal = tol * (sqrt_n * 1e-3 / scale + torch.maximum(
            torch.linalg.matrix_norm(theta), torch.linalg.matrix_norm(Z)))
        eps_dual = tol * (sqrt_n * 1e-3 * scale + rho * torch.linalg.matrix_norm(dual))
        converged = (primal_res <= eps_primal) & (dual_res <= eps_dual)
        if bool(converged.all()):
            break
        # residual balancing (Boyd et al. 2011, sec. 3.4.1), per block
        up = primal_res > 10 * dual_res
        down = dual_res > 10 * primal_res
        factor = torch.where(up, 2.0, torch.where(down, 0.5, 1.0)).to(rho.dtype)
        rho = rho * factor
        dual = dual / factor[:, None, None]
    Z = 0.5 * (Z + Z.transpose(1, 2))
    # Z is the sparse iterate; at convergence it is positive definite. Guard against early stops.
    _, info = torch.linalg.cholesky_ex(Z)
    if bool((info > 0).any()):
        bad = info > 0
        min_eig = torch.linalg.eigvalsh(Z[bad])[:, 0]
        shift = (-min_eig + 1e-3 * (1.0 / scale[bad])).clamp(min=0)
        Z = Z.clone()
        Z[bad] = Z[bad] + torch.diag_embed(shift[:, None].expand(-1, size))
    out_state = ADMMState(Z=Z, dual=dual, rho=rho)
    result = Z[0] if squeeze else Z
    return result, out_state, {"iterations": it, "converged": bool(converged.all())}


def glasso_objective(cov: torch.Tensor, theta: torch.Tensor, lam: float, penalize_diagonal: bool = False):
    """tr(S Theta) - logdet Theta + lam ||Theta||_1 (off-diagonal unless ``penalize_diagonal``)."""
    l1 = theta.abs().sum((-2, -1))
    if not penalize_diagonal:
        l1 = l1 - torch.diagonal(theta, dim1=-2, dim2=-1).abs().sum(-1)
    return (cov * theta).sum((-2, -1)) - torch.linalg.slogdet(theta)[1] + lam * l1


# ----------------------------------------------------------------------------------------------------
# Block structure: screening and restriction
# ----------------------------------------------------------------------------------------------------


def _bisect(rows: np.ndarray, nodes: np.ndarray, max_size: int) -> list[np.ndarray]:
    """Split ``nodes`` into groups of <= max_size by recursive halving along the leading principal axis."""
    if len(nodes) <= max_size:
        return [nodes]
    sub = rows[nodes]
    sub = sub / np.maximum(np.linalg.norm(sub, axis=1, keepdims=True), 1e-12)
    centred = sub - sub.mean(0)
    try:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        order = np.argsort(centred @ vt[0], kind="stable")
    except np.linalg.LinAlgError:
        order = np.arange(len(nodes))
    half = len(nodes) // 2
    return _bisect(rows, nodes[order[:half]], max_size) + _bisect(rows, nodes[order[half:]], max_size)


def screen_components(rows: np.ndarray, lam: float, *, chunk: int = 2048, max_edges: int | None = None):
    """Connected components of the graph |S_ij| > lam, S = F F^T / k, computed in row chunks.

    Returns a label array (p,), or None when the graph has more than ``max_edges`` edges (too dense to be
    worth screening).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    p, k = rows.shape
    max_edges = max_edges if max_edges is not None else 200 * p
    src, dst, total = [], [], 0
    for start in range(0, p, chunk):
        block = rows[start : start + chunk] @ rows.T / k
        i, j = np.nonzero(np.abs(block) > lam)
        i = i + start
        keep = i < j
        total += int(keep.sum())
        if total > max_edges:
            return None
        src.append(i[keep])
        dst.append(j[keep])
    src = np.concatenate(src) if src else np.zeros(0, dtype=np.int64)
    dst = np.concatenate(dst) if dst else np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(p, p))
    _, labels = connected_components(graph, directed=False)
    return labels


def make_blocks(rows: np.ndarray, lam: float, max_block_size: int, screen: bool = True) -> list[np.ndarray]:
    """Disjoint node blocks of size <= max_block_size for a block-diagonal precision.

    Screening first (exact), then bisection of components that are too large (restriction), then
    first-fit packing of small components into shared blocks (still exact: they stay uncoupled).
    """
    p = rows.shape[0]
    if p <= max_block_size:
        return [np.arange(p)]
    labels = screen_components(rows, lam) if screen else None
    if labels is None:
        groups = [np.arange(p)]
    else:
        order = np.argsort(labels, kind="stable")
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        groups = np.split(order, bounds)
    pieces: list[np.ndarray] = []
    for group in groups:
        pieces.extend(_bisect(rows, group, max_block_size))
    pieces.sort(key=len, reverse=True)
    bins: list[list[np.ndarray]] = []
    fill: list[int] = []
    for piece in pieces:
        for b, used in enumerate(fill):
            if used + len(piece) <= max_block_size:
                bins[b].append(piece)
                fill[b] += len(piece)
                break
        else:
            bins.append([piece])
            fill.append(len(piece))
    return [np.sort(np.concatenate(b)) for b in bins]


def knn_support(precision: BlockPrecision, rows: torch.Tensor, knn: int) -> torch.Tensor:
    """BoolTensor (nb, B, B): each node's ``knn`` strongest |S_ij| partners in its block, symmetrised."""
    fb = precision.gather(rows)
    sim = (fb @ fb.transpose(1, 2)).abs()
    valid = precision.valid
    pair_valid = valid[:, :, None] & valid[:, None, :]
    size = sim.shape[-1]
    eye = torch.eye(size, dtype=torch.bool, device=sim.device)
    sim = sim.masked_fill(~pair_valid | eye, -1.0)
    k = min(knn, size - 1)
    if k <= 0:
        return eye.expand_as(sim).clone()
    top = sim.topk(k, dim=-1).indices
    mask = torch.zeros_like(sim, dtype=torch.bool)
    mask.scatter_(-1, top, True)
    mask = (mask | mask.transpose(1, 2)) & pair_valid
    return mask | eye


def screened_graphical_lasso(
    cov: torch.Tensor, lam: float, *, max_block_size: int = 1000, max_iter: int = 1000, tol: float = 1e-5
) -> tuple[torch.Tensor, dict]:
    """Graphical lasso of a full (p, p) covariance by exact block screening, blocks solved in one batch.

    The connected components of ``|S_ij| > lam`` (off-diagonal) are the blocks of the solution (Witten et al.
    2011); they are packed into batches of at most ``max_block_size`` nodes (a component that is larger is
    split, which then restricts the support). Returns the dense (p, p) precision and block statistics.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    p = cov.shape[0]
    strong = (cov.abs() > lam).cpu().numpy()
    np.fill_diagonal(strong, False)
    n_comp, labels = connected_components(csr_matrix(strong), directed=False)
    order = np.argsort(labels, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)
    largest = max(len(g) for g in groups)
    pieces: list[np.ndarray] = []
    for group in groups:
        pieces.extend(np.array_split(group, -(-len(group) // max_block_size)) if len(group) > max_block_size
                      else [group])
    # solve singletons in closed form, batch the rest by size class (padding to the class maximum)
    theta = torch.zeros_like(cov)
    singles = np.concatenate([g for g in pieces if len(g) == 1]) if any(len(g) == 1 for g in pieces) else []
    if len(singles):
        idx = torch.as_tensor(singles, device=cov.device)
        theta[idx, idx] = 1.0 / cov[idx, idx]
    multi = sorted((g for g in pieces if len(g) > 1), key=len)
    iterations = 0
    start = 0
    while start < len(multi):
        size = len(multi[start])
        stop = start
        while stop < len(multi) and len(multi[stop]) <= 2 * size:
            stop += 1
        batch = multi[start:stop]
        width = max(len(g) for g in batch)
        prec = BlockPrecision.from_blocks(batch, p, dtype=cov.dtype, device=cov.device)
        index = prec.index.clamp(min=0)
        valid = prec.valid
        sub = cov[index[:, :, None], index[:, None, :]]
        pair = valid[:, :, None] & valid[:, None, :]
        eye = torch.eye(width, dtype=torch.bool, device=cov.device)
        sub = torch.where(pair, sub, eye.to(cov.dtype).expand_as(sub))
        support = pair | eye
        solved, _, info = admm_graphical_lasso(sub, lam, support=support, max_iter=max_iter, tol=tol)
        iterations = max(iterations, info["iterations"])
        rows = prec.index[:, :, None].expand(-1, width, width)
        cols = prec.index[:, None, :].expand(-1, width, width)
        theta[rows[pair], cols[pair]] = solved[pair]
        start = stop
    stats = {"components": int(n_comp), "largest_component": int(largest), "blocks": len(pieces),
             "admm_iterations": iterations, "exact": bool(largest <= max_block_size)}
    return theta, stats
