"""``LGMDTransform``: a fitted LGMD as a ``datasets`` preprocessing step.

Fit once on a matrix built from dataset columns, then ``dataset.map(transform, batched=True)`` adds the
embedding column (default ``cf_embedding``) and, for a feature matrix, fills the missing feature values with
LGMD's completion. Two ways to fit:

* :meth:`LGMDTransform.fit_interactions`: the user x item matrix of a training split (or any scipy sparse
  matrix); rows of the item table get the item factors ``V`` (``index_column="item_index"``).
* :meth:`LGMDTransform.fit_features`: dense feature columns (scalars or fixed-length lists, ``None``/NaN for
  missing); each row gets its row factor ``U`` and its completed features.

The transform holds only numpy arrays and plain settings, so ``datasets`` fingerprints it the same way on
every run (and after :meth:`save_pretrained` / :meth:`from_pretrained`), and ``map`` reuses its cache file.

Rule for rows without any signal (an item with no training interaction): the zero embedding, or ``None`` with
``null_if_empty=True`` (the features convention for a missing modality, as the SVD cf has). LGMD's factor step
gives such an item the graph-prior value, non-zero where the learned item graph links its all-zero column to
others; those edges are fitted to no data about the item, so that value is dropped, not shipped as a signal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SimCITInputError
from .estimator import LGMD

WEIGHTS_NAME = "lgmd_transform.safetensors"
CONFIG_NAME = "lgmd_config.json"


def interaction_matrix(split, num_users: int | None = None, num_items: int | None = None):
    """User x item 0/1 matrix (scipy CSR) from a split with ``user_id``, ``history`` and ``target`` columns.

    Every item a user touches in the split (history and targets) is a 1; pass the *training* split only.
    """
    import scipy.sparse as sp

    for column in ("user_id", "history", "target"):
        if column not in split.column_names:
            raise SimCITInputError(
                f"the split has no {column!r} column (columns: {', '.join(split.column_names)}); "
                "expected user_id, history, target"
            )
    table = split.with_format("numpy")
    users = np.asarray(table["user_id"], dtype=np.int64)
    targets = np.asarray(table["target"], dtype=np.int64)
    histories = split["history"]
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    flat = np.fromiter((i for h in histories for i in h), dtype=np.int64, count=int(lengths.sum()))
    rows = np.concatenate([users, np.repeat(users, lengths)])
    cols = np.concatenate([targets, flat])
    if len(cols) and cols.min() < 0:
        raise SimCITInputError(f"negative item index {int(cols.min())} in the split")
    num_users = int(users.max()) + 1 if num_users is None else num_users
    num_items = int(cols.max()) + 1 if num_items is None else num_items
    if len(cols) and cols.max() >= num_items:
        raise SimCITInputError(f"item index {int(cols.max())} >= num_items={num_items}")
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(num_users, num_items))
    matrix.data[:] = 1.0  # duplicates summed -> 0/1
    return matrix


def _stack_features(dataset, columns: list[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """X (rows, d) float64 with NaN where missing, mask, and the width of each column."""
    blocks, masks, widths = [], [], []
    for column in columns:
        if column not in dataset.column_names:
            raise SimCITInputError(f"feature column {column!r} not in the data set ({', '.join(dataset.column_names)})")
        values = dataset[column]
        width = next((len(v) if isinstance(v, (list, tuple, np.ndarray)) else 1 for v in values if v is not None), 1)
        block = np.full((len(values), width), np.nan)
        for r, value in enumerate(values):
            if value is None:
                continue
            row = np.asarray(value, dtype=np.float64).reshape(-1)
            if row.size != width:
                raise SimCITInputError(f"column {column!r} row {r} has {row.size} values, expected {width}")
            block[r] = row
        blocks.append(block)
        masks.append(np.isfinite(block))
        widths.append(width if isinstance(next((v for v in values if v is not None), None), (list, tuple)) else 0)
    return np.hstack(blocks), np.hstack(masks), widths


class LGMDTransform:
    """Callable for ``Dataset.map(batched=True)``: looks rows up by ``index_column`` in fitted tables.

    Args:
        embeddings: (N, k) embedding table, row i for ``index_column == i``.
        index_column: the column that holds each row's index into the tables.
        output_column: name of the added embedding column.
        completed: optional (N, d) completed feature matrix, written back into ``feature_columns``.
        feature_columns / feature_widths: the columns it was fitted on; width 0 for a scalar column.
        normalize: L2-normalise embeddings (zero rows stay zero).
        null_if_empty: write ``None`` instead of a zero embedding.
        info: plain metadata (fit settings and statistics), stored in the config.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        *,
        index_column: str = "item_index",
        output_column: str = "cf_embedding",
        completed: np.ndarray | None = None,
        feature_columns: list[str] | None = None,
        feature_widths: list[int] | None = None,
        normalize: bool = True,
        null_if_empty: bool = False,
        info: dict[str, Any] | None = None,
    ):
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if self.embeddings.ndim != 2:
            raise SimCITInputError(f"embeddings must be (N, k), got shape {self.embeddings.shape}")
        self.index_column = index_column
        self.output_column = output_column
        self.completed = None if completed is None else np.ascontiguousarray(completed, dtype=np.float32)
        self.feature_columns = list(feature_columns or [])
        self.feature_widths = list(feature_widths or [])
        self.normalize = normalize
        self.null_if_empty = null_if_empty
        self.info = dict(info or {})

    # ------------------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------------------

    @classmethod
    def fit_interactions(
        cls,
        interactions,
        lgmd: LGMD,
        *,
        num_items: int | None = None,
        output_column: str = "cf_embedding",
        index_column: str = "item_index",
        normalize: bool = True,
        null_if_empty: bool = False,
    ) -> LGMDTransform:
        """Fit on a user x item matrix: a scipy sparse matrix, a training split (user_id/history/target) or a
        prepared ``RecDataset`` (its ``training_matrix``, which never contains validation/test targets)."""
        import scipy.sparse as sp

        if sp.issparse(interactions):
            matrix = sp.csr_matrix(interactions)
        elif hasattr(interactions, "splits") and hasattr(interactions, "num_items"):
            from ..data import training_matrix

            matrix = training_matrix(interactions)
        else:
            matrix = interaction_matrix(interactions, num_items=num_items)
        if num_items is not None and matrix.shape[1] != num_items:
            raise SimCITInputError(f"the interaction matrix has {matrix.shape[1]} items, expected {num_items}")
        lgmd.fit(matrix)
        info = _fit_info(lgmd, matrix.shape, source="interactions")
        empty = np.asarray(matrix.getnnz(axis=0)) == 0
        info["items_without_interactions"] = int(empty.sum())
        embeddings = np.array(lgmd.V_, dtype=np.float32)
        embeddings[empty] = 0.0   # the module's rule: no interaction, no collaborative embedding
        return cls(
            embeddings,
            index_column=index_column,
            output_column=output_column,
            normalize=normalize,
            null_if_empty=null_if_empty,
            info=info,
        )

    @classmethod
    def fit_features(
        cls,
        dataset,
        feature_columns: list[str],
        lgmd: LGMD,
        *,
        index_column: str = "item_index",
        output_column: str = "lgmd_embedding",
        normalize: bool = False,
    ) -> LGMDTransform:
        """Fit on dense feature columns with missing values (``None`` or NaN); rows ordered by ``index_column``."""
        if index_column not in dataset.column_names:
            raise SimCITInputError(f"index column {index_column!r} not in the data set")
        index = np.asarray(dataset[index_column], dtype=np.int64)
        if sorted(index.tolist()) != list(range(len(index))):
            raise SimCITInputError(f"column {index_column!r} must hold 0..{len(index) - 1} exactly once")
        X, mask, widths = _stack_features(dataset, feature_columns)
        order = np.argsort(index)
        X, mask = X[order], mask[order]
        lgmd.fit(X, mask)
        return cls(
            lgmd.U_,
            index_column=index_column,
            output_column=output_column,
            completed=lgmd.complete(),
            feature_columns=feature_columns,
            feature_widths=widths,
            normalize=normalize,
            info=_fit_info(lgmd, X.shape, source="features") | {"missing_fraction": float(1 - mask.mean())},
        )

    # ------------------------------------------------------------------------------------------------
    # applying
    # ------------------------------------------------------------------------------------------------

    def __call__(self, batch: dict[str, list]) -> dict[str, Any]:
        if self.index_column not in batch:
            raise SimCITInputError(
                f"the data set has no {self.index_column!r} column; LGMDTransform looks rows up by it"
            )
        index = np.asarray(batch[self.index_column], dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= len(self.embeddings)):
            bad = index[(index < 0) | (index >= len(self.embeddings))][0]
            raise SimCITInputError(
                f"{self.index_column}={bad} is outside the fitted table of {len(self.embeddings)} rows"
            )
        vectors = self.embeddings[index]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if self.normalize:
            vectors = np.where(norms > 1e-12, vectors / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        column: list = [v.tolist() for v in vectors]
        if self.null_if_empty:
            column = [None if n <= 1e-12 else v for v, n in zip(column, norms[:, 0])]
        out: dict[str, Any] = {self.output_column: column}
        if self.completed is not None:
            offset = 0
            for name, width in zip(self.feature_columns, self.feature_widths):
                size = max(width, 1)
                filled = self.completed[index, offset : offset + size]
                offset += size
                values = batch[name]
                new = []
                for r, value in enumerate(values):
                    if width == 0:
                        missing = value is None or not np.isfinite(value)
                        new.append(float(filled[r, 0]) if missing else value)
                    elif value is None:
                        new.append(filled[r].tolist())
                    else:
                        row = np.asarray(value, dtype=np.float64)
                        row = np.where(np.isfinite(row), row, filled[r])
                        new.append(row.tolist())
                out[name] = new
        return out

    # ------------------------------------------------------------------------------------------------
    # persistence and sharing
    # ------------------------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "index_column": self.index_column,
            "output_column": self.output_column,
            "feature_columns": self.feature_columns,
            "feature_widths": self.feature_widths,
            "normalize": self.normalize,
            "null_if_empty": self.null_if_empty,
            "num_rows": int(self.embeddings.shape[0]),
            "rank": int(self.embeddings.shape[1]),
            "info": self.info,
        }

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``lgmd_transform.safetensors`` (tables) and ``lgmd_config.json`` atomically."""
        from ..utils.serialization import atomic_directory

        save_directory = Path(save_directory)
        with atomic_directory(save_directory) as tmp:
            self.write_files(tmp)
        return save_directory

    def write_files(self, directory: Path) -> None:
        """Write the two files into an existing folder (used inside a larger atomic write)."""
        from safetensors.numpy import save_file

        tensors = {"embeddings": self.embeddings}
        if self.completed is not None:
            tensors["completed"] = self.completed
        save_file(tensors, str(Path(directory) / WEIGHTS_NAME), metadata={"format": "np"})
        (Path(directory) / CONFIG_NAME).write_text(json.dumps(self.config(), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> LGMDTransform:
        from safetensors.numpy import load_file

        from ..safe_files import check_safe_folder

        directory = check_safe_folder(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise SimCITInputError(f"{path} is missing: not a folder written by LGMDTransform.save_pretrained")
        config = json.loads(config_path.read_text())
        tensors = load_file(str(weights_path))
        return cls(
            tensors["embeddings"],
            index_column=config["index_column"],
            output_column=config["output_column"],
            completed=tensors.get("completed"),
            feature_columns=config["feature_columns"],
            feature_widths=config["feature_widths"],
            normalize=config["normalize"],
            null_if_empty=config.get("null_if_empty", False),
            info=config.get("info", {}),
        )

    def dataset_card(self, repo_id: str, base_card: str | None = None) -> str:
        """Markdown body of the processed data set's card (what the added column is and how it was made)."""
        info = self.info
        lines = [
            f"# {repo_id.split('/')[-1]}",
            "",
            f"Processed with hf-simcit's LGMD transform (learnable graph-regularised matrix decomposition): "
            f"column `{self.output_column}` holds a {self.embeddings.shape[1]}-d embedding per row, looked up "
            f"by `{self.index_column}`.",
            "",
            "## LGMD fit",
            "",
            f"- source: {info.get('source', 'unknown')}, matrix {info.get('shape')}",
            f"- rank {self.embeddings.shape[1]}; penalties {info.get('params', {})}",
            f"- iterations {info.get('n_iter')}, converged {info.get('converged')}, "
            f"fit time {info.get('fit_time_s', 0):.1f} s, noise variance {info.get('sigma2')}",
            f"- learned graph edges: rows {info.get('edges_u')}, columns {info.get('edges_v')}",
            f"- L2-normalised: {self.normalize}; rows without signal: "
            + ("null" if self.null_if_empty else "zero vector"),
        ]
        if self.feature_columns:
            lines.append(f"- missing values of {', '.join(self.feature_columns)} filled by the completion")
        if base_card:
            lines += ["", "## Data", "", base_card]
        return "\n".join(lines) + "\n"

    def push_to_hub(self, dataset, repo_id: str, *, token: str | None = None, private: bool | None = None,
                    commit_message: str = "Add LGMD-processed data set") -> str:
        """Push ``dataset`` (already mapped with this transform) as a Hub data set repo, then its card.

        ``Dataset.push_to_hub`` writes the data files and the ``dataset_info`` YAML; the card text is added in
        a second commit that keeps that YAML. Returns the repo id.
        """
        from huggingface_hub import DatasetCard, DatasetCardData

        if self.output_column not in dataset.column_names:
            raise SimCITInputError(
                f"the data set has no {self.output_column!r} column: map it with this transform before pushing"
            )
        dataset.push_to_hub(repo_id, token=token, private=private, commit_message=commit_message)
        try:
            card = DatasetCard.load(repo_id, repo_type="dataset", token=token)
            data = card.data
        except Exception:  # no README was written: start a fresh card
            data = DatasetCardData()
        tags = list(getattr(data, "tags", None) or [])
        for tag in ("lgmd", "recommendation", "hf-simcit"):
            if tag not in tags:
                tags.append(tag)
        data.tags = tags
        card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{self.dataset_card(repo_id)}")
        card.push_to_hub(repo_id, repo_type="dataset", token=token, commit_message="Add LGMD data set card")
        return repo_id

    def __repr__(self) -> str:
        return (
            f"LGMDTransform(rows={self.embeddings.shape[0]}, rank={self.embeddings.shape[1]}, "
            f"output_column={self.output_column!r})"
        )


def _fit_info(lgmd: LGMD, shape, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "shape": [int(shape[0]), int(shape[1])],
        "params": {
            "rank": int(lgmd.rank), "rho_u": float(lgmd.rho_u), "rho_v": float(lgmd.rho_v),
            "ridge": float(lgmd.ridge), "base": float(lgmd.base), "attractive": bool(lgmd.attractive),
            "prior_weight": float(lgmd.prior_weight), "support": lgmd.support_,
            "max_block_size": int(lgmd.max_block_size),
        },
        "n_iter": int(lgmd.n_iter_),
        "converged": bool(lgmd.converged_),
        "fit_time_s": float(lgmd.fit_time_),
        "sigma2": float(lgmd.sigma2_),
        "objective_history": [float(v) for v in lgmd.objective_history_],
        "edges_u": int(lgmd.theta_u_.nnz - lgmd.theta_u_.shape[0]),
        "edges_v": int(lgmd.theta_v_.nnz - lgmd.theta_v_.shape[0]),
    }
