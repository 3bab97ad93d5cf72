"""LGMD: learnable graph-regularised matrix decomposition, and its ``datasets`` transform.

``LGMD`` is a scikit-learn transformer (fit / fit_transform / transform of new rows / complete); ``LGMDTransform`` turns a fitted model into a
callable for ``Dataset.map(batched=True)`` that adds an embedding column (``cf_embedding``);
``select_lgmd`` picks options (rho, base, ...) by completion RMSE on held-out observed entries.
"""

from .estimator import LGMD
from .precision import BlockPrecision, admm_graphical_lasso, glasso_objective
from .selection import select_lgmd, validation_split
from .transform import LGMDTransform, interaction_matrix

__all__ = [
    "LGMD",
    "BlockPrecision",
    "LGMDTransform",
    "admm_graphical_lasso",
    "glasso_objective",
    "interaction_matrix",
    "select_lgmd",
    "validation_split",
]
