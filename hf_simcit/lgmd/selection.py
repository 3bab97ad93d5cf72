"""Hyper-parameter selection on held-out *observed* entries (never the entries to be completed).

``validation_split`` hides a fraction of the observed entries (keeping every row and column observed at
least once in the training part); ``select_lgmd`` fits one :class:`~.estimator.LGMD` per setting on the
rest, scores the completion RMSE on the held-out entries, and refits the best setting on all observed
entries. The same split serves any other completion method (e.g. a baseline's own options), so that every
method is tuned the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import ParameterGrid

from ..errors import SimCITInputError
from .estimator import LGMD


def validation_split(mask: np.ndarray, fraction: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split the observed entries ``mask`` into (train, validation) boolean masks.

    About ``fraction`` of the observed entries go to validation; an entry is moved back to train wherever a
    row or column would otherwise have no training entry.
    """
    mask = np.asarray(mask, dtype=bool)
    if not 0 < fraction < 1:
        raise SimCITInputError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    val = mask & (rng.random(mask.shape) < fraction)
    train = mask & ~val
    for i in np.flatnonzero(~train.any(1) & mask.any(1)):
        j = np.flatnonzero(val[i])[0]
        val[i, j], train[i, j] = False, True
    for j in np.flatnonzero(~train.any(0) & mask.any(0)):
        i = np.flatnonzero(val[:, j])[0]
        val[i, j], train[i, j] = False, True
    return train, val


def param_grid(grid: Mapping[str, Sequence[Any]] | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The settings to try: scikit-learn's ``ParameterGrid`` of ``{"a": [1, 2], "b": [3]}`` (every
    combination), or a list of option dicts taken as they are (each a one-point grid)."""
    if not isinstance(grid, Mapping):
        grid = [{name: [value] for name, value in options.items()} for options in grid]
    return list(ParameterGrid(grid))


def validation_rmse(completed: np.ndarray, X: np.ndarray, val: np.ndarray) -> float:
    return float(np.sqrt(((np.asarray(completed) - X)[val] ** 2).mean()))


def select_lgmd(
    X: np.ndarray,
    mask: np.ndarray,
    rank: int,
    grid: Mapping[str, Sequence[Any]] | Iterable[Mapping[str, Any]],
    *,
    fraction: float = 0.05,
    seed: int = 0,
    refit: bool = True,
    **fixed: Any,
) -> tuple[LGMD, dict[str, Any]]:
    """Pick LGMD options from ``grid`` by completion RMSE on held-out observed entries, then refit.

    Args:
        X, mask: the data (dense) and its observed entries.
        rank: k.
        grid: options to try (``{"rho_u": [...], ...}`` or a list of option dicts), merged over ``fixed``.
        fraction, seed: the validation split (:func:`validation_split`).
        refit: refit the best setting on all observed entries (else return the model fitted on train).
        fixed: options shared by every setting.

    Returns:
        ``(model, report)``: the fitted model and ``{"best": options, "scores": [(options, rmse), ...]}``.
    """
    X = np.asarray(X, dtype=np.float64)
    train, val = validation_split(mask, fraction, seed)
    if not val.any():
        raise SimCITInputError("the validation split is empty: too few observed entries for this fraction")
    scores = []
    best = None
    for options in param_grid(grid):
        model = LGMD(rank, **(fixed | options)).fit(X, train)
        score = validation_rmse(model.complete(), X, val)
        scores.append((options, score))
        if best is None or score < best[1]:
            best = (options, score, model)
    options, _, model = best
    if refit:
        model = LGMD(rank, **(fixed | options)).fit(X, mask)
    return model, {"best": options, "scores": scores}
