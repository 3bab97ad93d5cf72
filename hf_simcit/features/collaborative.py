"""Collaborative modality: item embeddings learned from the *training* interactions only.

The input is :func:`hf_simcit.data.training_matrix` (users x items, 1 for every item a user met before its
validation target), so validation and test targets never shape an item's embedding. An item with no training
interaction has no collaborative signal: it is absent (masked), not a zero vector.

Methods: ``"svd"`` (truncated SVD of the item x user matrix, item factors ``U * S``), ``"lgmd"``
(:class:`hf_simcit.lgmd.LGMD`, item factors ``V_``), and ``"sequential"``: the shifted positive PMI of the
item x item co-occurrence of :func:`hf_simcit.data.training_cooccurrence` (which items come next to each other in
the training sequences), factorised by truncated SVD (item factors ``U * sqrt(S)``, Levy & Goldberg's
word2vec-as-matrix-factorisation). Which one carries more depends on the data (``benchmarks/collaborative.py``:
the cosine of the last training item's embedding finds the validation item in the top 10): on Amazon Beauty,
where the order is the purchase order, 6.1% of users with ``"sequential"`` against 3.5% with ``"svd"``; on
MovieLens-100K, whose order is rating sessions, 6.2% against 10.9%.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import SimCITInputError

CF_METHODS = ("svd", "lgmd", "sequential")
SPPMI_NEGATIVES = 10  # the PMI shift log(k) of word2vec with k negative samples
SPPMI_CONTEXT_SMOOTHING = 0.75  # context counts raised to 0.75, as word2vec's negative sampling


def collaborative_embeddings(
    interactions: sp.spmatrix,
    dim: int = 64,
    method: str = "svd",
    seed: int = 0,
    lgmd_options: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Item embeddings from a user x item training matrix.

    Args:
        interactions: ``(num_users, num_items)`` sparse, training interactions only; for ``"sequential"`` the
            ``(num_items, num_items)`` co-occurrence of :func:`hf_simcit.data.training_cooccurrence`.
        dim: embedding size (capped at ``min(num_users, num_items) - 1`` for SVD).

    Returns:
        ``embeddings`` ``(num_items, dim')`` float32, unit norm for items with training interactions, zero
        elsewhere, and ``present`` ``(num_items,)`` bool.
    """
    if method not in CF_METHODS:
        raise SimCITInputError(f"unknown cf method {method!r}; choose one of {', '.join(CF_METHODS)}")
    if dim < 1:
        raise SimCITInputError(f"cf dim must be positive, got {dim}")
    matrix = sp.csr_matrix(interactions, dtype=np.float32)
    if matrix.nnz and not np.isfinite(matrix.data).all():
        raise SimCITInputError("the interaction matrix has NaN/inf entries")
    if method == "sequential" and matrix.shape[0] != matrix.shape[1]:
        raise SimCITInputError(
            f"cf method 'sequential' needs the item x item co-occurrence matrix, got shape {matrix.shape}"
        )
    present = np.asarray(matrix.getnnz(axis=0) > 0)
    if not present.any():
        raise SimCITInputError(
            "no training interactions: the collaborative modality is missing for every item"
        )
    if method == "svd":
        factors = _svd_item_factors(matrix, dim, seed)
    elif method == "sequential":
        factors = _sppmi_item_factors(matrix, dim, seed)
    else:
        factors = _lgmd_item_factors(matrix, dim, seed, lgmd_options or {})
    factors = np.asarray(factors, dtype=np.float32)
    if factors.shape[0] != matrix.shape[1]:
        raise SimCITInputError(
            f"cf method {method!r} returned {factors.shape[0]} item rows for {matrix.shape[1]} items"
        )
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    # An item whose factors vanish (e.g. isolated from every component kept) carries no signal either.
    present &= norms[:, 0] > 1e-12
    embeddings = np.where(present[:, None], factors / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    return embeddings, present


def _svd_item_factors(matrix: sp.csr_matrix, dim: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD

    rank = min(dim, min(matrix.shape) - 1)
    if rank < 1:
        raise SimCITInputError(f"interaction matrix {matrix.shape} is too small for a truncated SVD")
    svd = TruncatedSVD(n_components=rank, algorithm="randomized", n_iter=7, random_state=seed)
    return svd.fit_transform(matrix.T.tocsr())  # (num_items, rank) = U * S


def sppmi_matrix(cooccurrence: sp.spmatrix) -> sp.csr_matrix:
    """The shifted positive PMI ``max(PMI - log k, 0)`` of an item x item co-occurrence matrix (word2vec's
    negative sampling as a matrix: ``k`` = :data:`SPPMI_NEGATIVES`, context counts smoothed by
    :data:`SPPMI_CONTEXT_SMOOTHING`). Pairs that co-occur no more than ``k`` times chance drop out."""
    cooccurrence = sp.csr_matrix(cooccurrence)
    if cooccurrence.shape[0] != cooccurrence.shape[1]:
        raise SimCITInputError(f"SPPMI needs a square item x item co-occurrence matrix, got shape {cooccurrence.shape}")
    counts = cooccurrence.tocoo()
    item_counts = np.asarray(cooccurrence.sum(axis=1)).ravel()
    context_counts = np.asarray(cooccurrence.sum(axis=0)).ravel() ** SPPMI_CONTEXT_SMOOTHING
    with np.errstate(divide="ignore"):
        pmi = np.log(counts.data * context_counts.sum() / (item_counts[counts.row] * context_counts[counts.col]))
    shifted = pmi - np.log(SPPMI_NEGATIVES)
    keep = shifted > 0
    return sp.csr_matrix((shifted[keep], (counts.row[keep], counts.col[keep])),
                         shape=cooccurrence.shape)


def _sppmi_item_factors(cooccurrence: sp.csr_matrix, dim: int, seed: int) -> np.ndarray:
    """Item factors ``U * sqrt(S)`` of :func:`sppmi_matrix`."""
    from sklearn.decomposition import TruncatedSVD

    sppmi = sppmi_matrix(cooccurrence)
    rank = min(dim, min(sppmi.shape) - 1)
    if rank < 1 or not sppmi.nnz:
        raise SimCITInputError(f"co-occurrence matrix {cooccurrence.shape} is too small or too sparse for SPPMI")
    svd = TruncatedSVD(n_components=rank, algorithm="randomized", n_iter=7, random_state=seed)
    return svd.fit_transform(sppmi) / np.sqrt(np.maximum(svd.singular_values_, 1e-12))


def _lgmd_item_factors(matrix: sp.csr_matrix, dim: int, seed: int, options: dict[str, Any]) -> np.ndarray:
    try:
        from ..lgmd import LGMD
    except ImportError as err:
        raise SimCITInputError(
            f"cf method 'lgmd' needs hf_simcit.lgmd.LGMD, which is not available ({err})"
        ) from None
    model = LGMD(**({"rank": dim, "random_state": seed} | dict(options)))
    model.fit(matrix)
    factors = getattr(model, "V_", None)
    if factors is None:
        raise SimCITInputError("LGMD.fit did not set V_ (the item factors)")
    if hasattr(factors, "detach"):
        factors = factors.detach().cpu().numpy()
    return np.asarray(factors)
