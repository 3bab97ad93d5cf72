"""``LGMD``: learnable graph-regularised matrix decomposition as a scikit-learn-style estimator.

``X (m, n) ~ U V^T`` with sparse precision matrices (graphs) over the rows (``Theta_U``) and over the columns
(``Theta_V``) learned jointly with the factors. See :mod:`.solver` for the objective and the algorithm.

Penalties are *relative*: ``rho_u``/``rho_v`` and ``ridge`` are in units of the mean initial row variance of
the factor (``||U0||^2 / (m k)`` after the SVD initialisation), so the same values work across data scales;
``rho`` then acts roughly like a threshold on the correlation of two rows' factors (0 < rho < 1). The
absolute constants used in the objective are stored in ``penalties_``.

Why a scikit-learn estimator: ``get_params``/``set_params``, ``clone``, the parameter ``repr`` and
``Pipeline``/``ParameterGrid`` then work as for any transformer; ``fit_transform(X)`` gives the training rows'
factors ``U``, ``transform(X_new)`` folds new rows in.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ..errors import SimCITInputError
from .solver import LGMDState, fit_lgmd

_SUPPORTS = ("auto", "dense", "blocks", "knn")
# options fixed into a fitted state (its objective, graphs' support and priors): a warm start cannot change them
_OBJECTIVE_OPTIONS = ("rho_u", "rho_v", "ridge", "sigma2", "support", "max_block_size", "knn", "center",
                      "learn_graph", "graph_weight", "base", "attractive", "prior_weight")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _as_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise SimCITInputError(f"dtype={dtype} is not supported; use float32 or float64")
        return dtype
    if dtype not in _DTYPES:
        raise SimCITInputError(f"dtype={dtype!r} is not supported; use 'float32' or 'float64'")
    return _DTYPES[dtype]


class LGMDNotFittedError(SimCITInputError, NotFittedError):
    """An LGMD used before ``fit``: scikit-learn's ``NotFittedError`` and the package's one-line input error."""


class LGMD(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Learnable graph-regularised matrix decomposition (a scikit-learn transformer).

    ``auto_wrap_output_keys=None``: no ``set_output`` wrapping of ``transform`` (the factors are plain
    arrays with no feature names, and the wrapper would drop the deprecated ``transform()`` form).

    The 27 options stay flat constructor arguments, as scikit-learn expects: ``get_params``, ``set_params``
    and ``ParameterGrid`` address each by name; the solver-only ones (``admm_*``, ``gauge*``, ``trace_steps``)
    have defaults that need no tuning.

    Args:
        rank: k, the embedding size.
        rho_u, rho_v: l1 weights of the row and column graphs (relative, > 0); larger means sparser graphs.
        ridge: shrinkage ``eps`` added to each factor covariance (relative, > 0); keeps the graphical lasso
            well posed on the rank-k covariance.
        sigma2: noise variance; ``None`` estimates it (a block of the objective).
        support: ``"dense"`` (full precision matrices, up to ``max_dense_size`` rows), ``"blocks"``
            (screened blocks of at most ``max_block_size``), ``"knn"`` (blocks + only each node's ``knn``
            strongest partners), or ``"auto"`` (dense when both sides fit in one block, else blocks).
        max_iter, tol: outer iterations; stop when the relative objective change falls below ``tol``.
        admm_iter, admm_tol: inner ADMM limits for each precision step (warm-started across iterations).
        center: subtract the observed column means before fitting (dense input only).
        warm_start: a second ``fit`` continues from the previous solution (same shape, same support).
        device, dtype: where and in which precision the solver runs (``"cuda"`` works when available).
        random_state: seed of the randomised SVD initialisation.
        progress: show a progress bar over outer iterations.
        trace_steps: record F after every block update in ``objective_trace_`` (for checking monotonicity).
        learn_graph: learn the precision matrices (LGMD); False keeps the initial ones fixed.
        graph_weight: > 0 starts from ``(I + graph_weight * L_knn) / scale`` (the normalised Laplacian of the
            ``knn`` graph of the initial factors); with ``learn_graph=False`` that is graph-regularised MF.
        gauge: ``"bounded"`` (optimal column rescaling, kept within ``gauge_bound`` of the initial balance),
            ``"optimal"`` (unbounded; can collapse one side, see :mod:`.solver`) or ``"none"``.
        base: a fixed isotropic precision ``base / s0`` added to each learned Theta in the factor prior (ours;
            s0 = mean initial factor variance). Why: the learned Theta ~ S^-1 is calibrated to the factors'
            own spread, so alone it barely shrinks them (completion then equals SVD imputation); ``base`` is
            the PMF prior that LGMD's graph refines. 0 gives the plain model of the method notes.
        attractive: constrain both precision matrices to non-positive off-diagonals (attractive Gaussian
            graphical models, i.e. generalised graph Laplacians). Why: then ``tr(W^T Theta W)`` contains
            ``-Theta_ij ||w_i - w_j||^2`` for every edge, so the learned graph pulls neighbouring rows together
            as a kNN Laplacian does; an unconstrained Theta ~ (W W^T / k + eps I)^-1 only rescales W's
            columns (see :mod:`.solver`). The fixed kNN prior of graph-regularised MF is a feasible point.
        prior_weight: gamma, the weight of both graph priors against the data fit (a tempered posterior;
            1 is the plain MAP model). The Theta-step does not depend on it; the factor steps smooth more
            along the learned graph as it grows. Pick it with ``base`` and ``rho`` on held-out entries
            (:func:`~.selection.select_lgmd`).

    Attributes (after ``fit``):
        U_ (m, k), V_ (n, k): the factors (numpy). ``theta_u_`` (m, m), ``theta_v_`` (n, n): the learned
        precision matrices (scipy CSR). ``objective_history_``: F after initialisation and each iteration.
        ``sigma2_``, ``n_iter_``, ``converged_``, ``fit_time_``, ``penalties_``, ``column_means_``.
    """

    def __init__(
        self,
        rank: int,
        *,
        rho_u: float = 0.5,
        rho_v: float = 0.5,
        ridge: float = 1.0,
        sigma2: float | None = None,
        support: str = "auto",
        max_block_size: int = 1000,
        knn: int = 10,
        max_iter: int = 20,
        tol: float = 1e-4,
        admm_iter: int = 200,
        admm_tol: float = 1e-4,
        center: bool = False,
        warm_start: bool = False,
        max_dense_size: int = 4000,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float64",
        random_state: int = 0,
        progress: bool = False,
        trace_steps: bool = False,
        learn_graph: bool = True,
        graph_weight: float = 0.0,
        gauge: str = "bounded",
        gauge_bound: float = 2.0,
        base: float = 1.0,
        attractive: bool = False,
        prior_weight: float = 1.0,
    ):
        self.rank = rank
        self.rho_u = rho_u
        self.rho_v = rho_v
        self.ridge = ridge
        self.sigma2 = sigma2
        self.support = support
        self.max_block_size = max_block_size
        self.knn = knn
        self.max_iter = max_iter
        self.tol = tol
        self.admm_iter = admm_iter
        self.admm_tol = admm_tol
        self.center = center
        self.warm_start = warm_start
        self.max_dense_size = max_dense_size
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress
        self.trace_steps = trace_steps
        self.learn_graph = learn_graph
        self.graph_weight = graph_weight
        self.gauge = gauge
        self.gauge_bound = gauge_bound
        self.base = base
        self.attractive = attractive
        self.prior_weight = prior_weight

    # ------------------------------------------------------------------------------------------------
    # validation
    # ------------------------------------------------------------------------------------------------

    def _check_params(self, shape: tuple[int, int]) -> str:
        m, n = shape
        if not isinstance(self.rank, (int, np.integer)) or isinstance(self.rank, bool) or self.rank < 1:
            raise SimCITInputError(f"rank must be a positive integer, got {self.rank!r}")
        if self.rank > min(m, n):
            raise SimCITInputError(
                f"rank={self.rank} is larger than the matrix allows: X is {m} x {n}, so rank must be "
                f"at most {min(m, n)}; lower rank"
            )
        for name in ("rho_u", "rho_v", "ridge"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating)) or not np.isfinite(value) or value <= 0:
                raise SimCITInputError(
                    f"{name} must be a positive finite number, got {value!r}"
                    + ("; the ridge keeps the rank-k covariance invertible" if name == "ridge" else "")
                )
        if self.sigma2 is not None and (not np.isfinite(self.sigma2) or self.sigma2 <= 0):
            raise SimCITInputError(f"sigma2 must be positive or None (estimate it), got {self.sigma2!r}")
        if self.support not in _SUPPORTS:
            raise SimCITInputError(f"support={self.support!r} is not one of {', '.join(_SUPPORTS)}")
        if self.max_block_size < 2 or self.max_block_size > self.max_dense_size:
            raise SimCITInputError(
                f"max_block_size={self.max_block_size} must be between 2 and max_dense_size="
                f"{self.max_dense_size}"
            )
        if self.gauge not in ("bounded", "optimal", "none"):
            raise SimCITInputError(f"gauge={self.gauge!r}: choose bounded, optimal or none")
        if not self.gauge_bound >= 1 or self.graph_weight < 0 or not self.base >= 0:
            raise SimCITInputError("gauge_bound must be >= 1, graph_weight >= 0 and base >= 0")
        if not isinstance(self.prior_weight, (int, float, np.floating)) or not 0 < self.prior_weight < np.inf:
            raise SimCITInputError(
                f"prior_weight must be a positive finite number, got {self.prior_weight!r} (1 is the plain "
                "posterior; larger values smooth more along the graphs)")
        if self.knn < 1:
            raise SimCITInputError(f"knn must be >= 1, got {self.knn}")
        if self.max_iter < 0 or self.tol < 0:
            raise SimCITInputError("max_iter and tol must be non-negative")
        _as_dtype(self.dtype)
        support = self.support
        if support == "auto":
            support = "dense" if max(m, n) <= self.max_block_size else "blocks"
        if support == "dense" and max(m, n) > self.max_dense_size:
            side = "rows" if m >= n else "columns"
            raise SimCITInputError(
                f"X has {max(m, n)} {side}: support='dense' would need a {max(m, n)} x {max(m, n)} "
                f"precision matrix (limit max_dense_size={self.max_dense_size}); use support='blocks' "
                f"or support='knn' (restricted support, max_block_size={self.max_block_size})"
            )
        return support

    def _prepare(self, X, mask) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate X/mask and convert to torch on the target device (sparse X stays sparse)."""
        import scipy.sparse as sp

        dtype = _as_dtype(self.dtype)
        if sp.issparse(X) or (isinstance(X, torch.Tensor) and (X.is_sparse or X.layout == torch.sparse_csr)):
            if mask is not None:
                raise SimCITInputError(
                    "a sparse X is treated as fully observed (implicit feedback: absent = 0); pass mask=None, "
                    "or a dense X with a mask for missing entries"
                )
            if sp.issparse(X):
                coo = sp.coo_matrix(X)
                if coo.ndim != 2:
                    raise SimCITInputError("X must be a 2-D matrix")
                if not np.all(np.isfinite(coo.data)):
                    raise SimCITInputError("sparse X has NaN or infinite stored values; remove or fix them")
                indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
                X_t = torch.sparse_coo_tensor(
                    indices, torch.from_numpy(coo.data), coo.shape, check_invariants=True
                )
            else:
                X_t = X.to_sparse_coo()
                if not torch.isfinite(X_t.coalesce().values()).all():
                    raise SimCITInputError("sparse X has NaN or infinite stored values; remove or fix them")
            if self.center:
                raise SimCITInputError("center=True needs a dense X (centering would densify a sparse matrix)")
            return X_t.to(device=self.device, dtype=dtype).coalesce(), None
        X_np = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X, dtype=np.float64)
        if X_np.ndim != 2:
            raise SimCITInputError(f"X must be a 2-D matrix, got shape {X_np.shape}")
        if X_np.dtype == object:
            raise SimCITInputError("X must be numeric; replace None by NaN and pass a mask")
        X_np = X_np.astype(np.float64)
        if mask is None:
            bad = ~np.isfinite(X_np)
            if bad.any():
                i, j = np.argwhere(bad)[0]
                raise SimCITInputError(
                    f"X has {int(bad.sum())} NaN/inf entries (first at row {i}, column {j}) but no mask; "
                    "pass mask=np.isfinite(X) to treat them as missing"
                )
            mask_np = None
        else:
            mask_np = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
            if mask_np.shape != X_np.shape:
                raise SimCITInputError(f"mask has shape {mask_np.shape} but X has shape {X_np.shape}")
            mask_np = mask_np.astype(bool)
            bad = mask_np & ~np.isfinite(X_np)
            if bad.any():
                i, j = np.argwhere(bad)[0]
                raise SimCITInputError(
                    f"X is NaN/inf at observed entry (row {i}, column {j}); set mask False there"
                )
            empty_rows = np.flatnonzero(~mask_np.any(1))
            if len(empty_rows):
                raise SimCITInputError(
                    f"{len(empty_rows)} row(s) of X have no observed entry (first: row {empty_rows[0]}); "
                    "drop them or observe at least one entry per row"
                )
            empty_cols = np.flatnonzero(~mask_np.any(0))
            if len(empty_cols):
                raise SimCITInputError(
                    f"{len(empty_cols)} column(s) of X have no observed entry (first: column "
                    f"{empty_cols[0]}); drop them or observe at least one entry per column"
                )
            X_np = np.where(mask_np, X_np, 0.0)
        if self.center:
            obs = mask_np if mask_np is not None else np.ones_like(X_np, dtype=bool)
            means = (X_np * obs).sum(0) / np.maximum(obs.sum(0), 1)
            X_np = np.where(obs, X_np - means, 0.0)
            self.column_means_ = means
        else:
            self.column_means_ = None
        X_t = torch.as_tensor(X_np, dtype=dtype, device=self.device)
        mask_t = None if mask_np is None else torch.as_tensor(mask_np, device=self.device)
        return X_t, mask_t

    # ------------------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------------------

    def fit(self, X, mask=None) -> LGMD:
        """Fit on X (m, n): numpy/torch dense (missing entries marked by ``mask=False``) or scipy/torch sparse
        (fully observed, e.g. a user x item interaction matrix).

        The second argument is the observation mask, not a target: in an unsupervised ``Pipeline`` it receives
        ``y=None``, i.e. every entry observed.
        """
        shape = tuple(X.shape)
        if len(shape) != 2:
            raise SimCITInputError(f"X must be a 2-D matrix, got shape {shape}")
        support = self._check_params(shape)
        X_t, mask_t = self._prepare(X, mask)
        warm = None
        previous: LGMDState | None = getattr(self, "_state", None)
        if self.warm_start and previous is not None:
            if (previous.U.shape[0], previous.V.shape[0]) != shape or previous.U.shape[1] != self.rank:
                raise SimCITInputError(
                    f"warm_start=True but X is {shape[0]} x {shape[1]} (rank {self.rank}) while the previous "
                    f"fit was {previous.U.shape[0]} x {previous.V.shape[0]} (rank {previous.U.shape[1]})"
                )
            changed = {name: (old, getattr(self, name)) for name, old in self._objective_options.items()
                       if getattr(self, name) != old}
            if changed:
                raise SimCITInputError(
                    "warm_start=True continues the previous fit's objective, but "
                    + ", ".join(f"{name} changed from {old!r} to {new!r}" for name, (old, new) in changed.items())
                    + "; fit with warm_start=False to use the new options"
                )
            warm = previous
        state = fit_lgmd(
            X_t,
            mask_t,
            int(self.rank),
            rho_u=float(self.rho_u),
            rho_v=float(self.rho_v),
            ridge=float(self.ridge),
            sigma2=self.sigma2,
            support=support,
            max_block_size=int(self.max_block_size),
            knn=int(self.knn),
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            admm_iter=int(self.admm_iter),
            admm_tol=float(self.admm_tol),
            seed=int(self.random_state),
            warm_state=warm,
            track_substeps=self.trace_steps,
            learn_graph=bool(self.learn_graph),
            graph_weight=float(self.graph_weight),
            gauge=self.gauge,
            gauge_bound=float(self.gauge_bound),
            base=float(self.base),
            attractive=bool(self.attractive),
            prior_weight=float(self.prior_weight),
            progress=self.progress,
        )
        _orient_columns(state)
        self._state = state
        self._objective_options = {name: getattr(self, name) for name in _OBJECTIVE_OPTIONS}
        self.support_ = support
        self._export(state)
        return self

    def _export(self, state: LGMDState) -> None:
        import scipy.sparse as sp

        def to_csr(prec) -> sp.csr_matrix:
            coo = prec.to_sparse().cpu()
            idx = coo.indices().numpy()
            return sp.csr_matrix((coo.values().numpy(), (idx[0], idx[1])), shape=(prec.num_nodes,) * 2)

        self.U_ = state.U.detach().cpu().numpy()
        self.V_ = state.V.detach().cpu().numpy()
        self.theta_u_ = to_csr(state.row.precision)
        self.theta_v_ = to_csr(state.col.precision)
        self.objective_history_ = list(state.history)
        self.objective_trace_ = list(state.trace)
        self.sigma2_ = float(state.sigma2)
        self.n_iter_ = state.n_iter
        self.converged_ = state.converged
        self.fit_time_ = state.seconds
        self.penalties_ = {
            "rho_u": state.row.rho,
            "rho_v": state.col.rho,
            "eps_u": state.row.eps,
            "eps_v": state.col.eps,
        }

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self, ("U_", "V_"))
        except NotFittedError:
            raise LGMDNotFittedError("this LGMD is not fitted yet; call fit(X) first") from None

    def fit_transform(self, X, y=None, mask=None) -> np.ndarray:
        """Fit and return the training rows' embeddings U (m, k) (``y`` is ignored: unsupervised).

        Why not ``fit(X).transform(X)``: the fitted U uses the learned row graph; folding the same rows in
        again with V fixed would give different (graph-less) embeddings.
        """
        return self.fit(X, mask).U_

    def transform(self, X=None, mask=None) -> np.ndarray:
        """Embeddings of new rows X (r, n), folded in with V fixed.

        A new row has no place in the learned row graph, so its prior precision is the mean diagonal of
        Theta_U (ours): ``u = (V_o^T V_o + sigma2 * mean(diag Theta_U) I)^-1 V_o^T x_o`` over its observed
        entries o. ``transform()`` without X (the training rows' U) is deprecated: use ``fit_transform(X)``
        or the ``U_`` attribute.
        """
        self._check_fitted()
        if X is None:
            warnings.warn("LGMD.transform() without X is deprecated; use fit_transform(X) or the U_ attribute "
                          "for the training rows' embeddings", FutureWarning, stacklevel=2)
            return self.U_
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.V_.shape[0]:
            raise SimCITInputError(f"X must have shape (r, {self.V_.shape[0]}), got {X.shape}")
        obs = np.isfinite(X) if mask is None else np.asarray(mask, dtype=bool)
        if mask is None and not obs.all():
            raise SimCITInputError("X has NaN entries but no mask; pass mask=np.isfinite(X)")
        Xc = np.where(obs, X - (self.column_means_ if self.column_means_ is not None else 0.0), 0.0)
        V = self.V_
        prior = self.sigma2_ * float(self.theta_u_.diagonal().mean())
        gram = np.einsum("rn,nk,nl->rkl", obs.astype(np.float64), V, V) + prior * np.eye(V.shape[1])
        rhs = Xc @ V
        return np.linalg.solve(gram, rhs[..., None])[..., 0]

    def complete(self, X=None, mask=None) -> np.ndarray:
        """The completed / denoised matrix U V^T (m, n) (plus column means when centred).

        With X and mask, observed entries keep their value and only the missing ones are filled.
        """
        self._check_fitted()
        full = self.U_ @ self.V_.T
        if self.column_means_ is not None:
            full = full + self.column_means_
        if X is None:
            return full
        X = np.asarray(X, dtype=np.float64)
        if X.shape != full.shape:
            raise SimCITInputError(f"X has shape {X.shape}, the fitted matrix is {full.shape}")
        obs = np.isfinite(X) if mask is None else np.asarray(mask, dtype=bool)
        return np.where(obs, X, full)


def _orient_columns(state) -> None:
    """Flip the sign of factor column j in both U and V (in place) so that V's largest-magnitude entry in that
    column is positive (scikit-learn's ``svd_flip`` convention).

    Why: a sign flip of column j of both factors leaves U V^T, the priors tr(W^T Theta W), the learned graphs
    and the gauge ratios unchanged, so the fit defines the embedding only up to these signs, and which one
    comes out depended on floating-point details (1 vs 2 BLAS threads gave ML-100K item embeddings that
    differed only by flipped columns, and different SIDs downstream). With the convention the embedding is a
    function of the data.
    """
    import torch

    V = state.V
    if V.numel() == 0:
        return
    rows = V.abs().argmax(dim=0)
    signs = torch.sign(V[rows, torch.arange(V.shape[1], device=V.device)])
    signs[signs == 0] = 1
    state.U = state.U * signs
    state.V = V * signs

