"""The ``lgmd`` pipeline stage: prepared data -> fitted LGMD transform + item table with ``cf_embedding``.

``hf-simcit lgmd RECIPE.yaml`` (keys of :class:`LGMDArguments`) or ``hf-simcit lgmd --data DIR --output DIR
--rank 32``. Fits LGMD on a matrix of *training* interactions only (validation and test targets are never seen):
``matrix: interactions``, the user x item matrix (``hf_simcit.data.training_matrix``), or ``matrix: sequential``,
the item x item shifted PPMI of the items that follow each other within ``window`` steps
(``hf_simcit.features.collaborative.sppmi_matrix`` of ``hf_simcit.data.training_cooccurrence``: which items come
next to each other, what a next-item recommender needs; ``benchmarks/collaborative.py``). It maps the item table
through the transform and writes, atomically::

    OUTPUT/lgmd_config.json, OUTPUT/lgmd_transform.safetensors   (LGMDTransform.from_pretrained(OUTPUT))
    OUTPUT/items/                                                 (item table + cf_embedding, save_to_disk)
    OUTPUT/lgmd.json                                              (shape, iterations, objective, timings)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SimCITInputError

MATRICES = ("interactions", "sequential")

if TYPE_CHECKING:
    from .estimator import LGMD
    from .transform import LGMDTransform


@dataclass
class LGMDArguments:
    """Options of the lgmd stage (a recipe's ``lgmd.yaml`` holds these keys)."""

    data: str | None = field(default=None, metadata={"help": "prepared data folder (hf-simcit prepare --output)"})
    output: str | None = field(default=None, metadata={"help": "folder for the fitted transform and item table"})
    items: str | None = field(
        default=None,
        metadata={"help": "item table to extend (e.g. RUN/features); default: the prepared data's items"},
    )
    matrix: str = field(
        default="interactions",
        metadata={"help": "interactions (user x item) or sequential (item x item SPPMI of the training sequences)"},
    )
    window: int = field(default=3, metadata={"help": "matrix sequential: items up to this many steps apart co-occur"})
    rank: int = field(default=32, metadata={"help": "embedding size k"})
    rho_u: float = field(default=0.5, metadata={"help": "l1 weight of the user graph (relative)"})
    rho_v: float = field(default=0.5, metadata={"help": "l1 weight of the item graph (relative)"})
    ridge: float = field(default=1.0, metadata={"help": "covariance shrinkage (relative)"})
    base: float = field(default=1.0, metadata={"help": "isotropic prior precision added to the graphs (relative)"})
    attractive: bool = field(
        default=False, metadata={"help": "learn attractive graphs (precision off-diagonals <= 0, Laplacian-like)"})
    prior_weight: float = field(default=1.0, metadata={"help": "weight of the graph priors against the fit"})
    support: str = field(default="auto", metadata={"help": "auto, dense, blocks or knn"})
    max_block_size: int = field(default=500, metadata={"help": "largest dense precision block"})
    knn: int = field(default=10, metadata={"help": "neighbours per node for support=knn"})
    max_iter: int = field(default=10, metadata={"help": "outer iterations"})
    tol: float = field(default=1e-4, metadata={"help": "stop on relative objective change below this"})
    admm_iter: int = field(default=50, metadata={"help": "ADMM iterations per precision step (warm-started)"})
    admm_tol: float = 1e-4
    dtype: str = field(default="float32", metadata={"help": "float32 or float64"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ...; default: cuda when available"})
    seed: int = 0
    embedding_column: str = "cf_embedding"
    normalize: bool = field(default=True, metadata={"help": "L2-normalise the item embeddings"})
    null_if_empty: bool = field(
        default=True,
        metadata={"help": "items without a training interaction get null, the features convention for a missing "
                  "modality, instead of the zero vector"},
    )
    progress: bool = True

    def __post_init__(self):
        if self.dtype not in ("float32", "float64"):
            raise SimCITInputError(f"dtype={self.dtype!r}: choose float32 or float64")
        if self.matrix not in MATRICES:
            raise SimCITInputError(f"matrix={self.matrix!r}: choose {' or '.join(MATRICES)}")
        if self.window < 1:
            raise SimCITInputError(f"window must be at least 1, got {self.window}")

    def training_input(self, rec):
        """The matrix LGMD is fitted on (``matrix``): rows x items, built from training interactions only."""
        if self.matrix == "sequential":
            from ..data import training_cooccurrence
            from ..features.collaborative import sppmi_matrix

            return sppmi_matrix(training_cooccurrence(rec, self.window))
        from ..data import training_matrix

        return training_matrix(rec)

    def estimator(self) -> LGMD:
        """The unfitted LGMD these options describe: the one place that maps the stage's keys onto the
        estimator's parameters (the stage, and any script that wants the pipeline's LGMD, build it here)."""
        import torch

        from .estimator import LGMD

        return LGMD(self.rank, rho_u=self.rho_u, rho_v=self.rho_v, ridge=self.ridge, base=self.base,
                    attractive=self.attractive, prior_weight=self.prior_weight, support=self.support,
                    max_block_size=self.max_block_size, knn=self.knn, max_iter=self.max_iter, tol=self.tol,
                    admm_iter=self.admm_iter, admm_tol=self.admm_tol, dtype=self.dtype,
                    device=self.device or ("cuda" if torch.cuda.is_available() else "cpu"),
                    random_state=self.seed, progress=self.progress)

    def fit_transform(self, matrix, lgmd: LGMD | None = None) -> LGMDTransform:
        """Fit ``lgmd`` (default :meth:`estimator`; pass one to read its fitted attributes afterwards) on a
        ``(rows, num_items)`` training matrix (:meth:`training_input`). The :class:`LGMDTransform` writes ``embedding_column``
        (unit norm if ``normalize``; ``None`` for an item without a training interaction if ``null_if_empty``, else
        the zero vector)."""
        from .transform import LGMDTransform

        return LGMDTransform.fit_interactions(matrix, lgmd or self.estimator(), output_column=self.embedding_column,
                                              normalize=self.normalize, null_if_empty=self.null_if_empty)


def run_lgmd(args: LGMDArguments) -> dict[str, Any]:
    """Run the stage; returns the report written to ``OUTPUT/lgmd.json``."""
    import torch
    from datasets import load_from_disk

    from ..data import load_prepared
    from ..utils.serialization import atomic_directory

    if not args.data or not args.output:
        raise SimCITInputError("lgmd needs data (prepared folder) and output (e.g. --data runs/x/data --output runs/x/lgmd)")
    if not Path(args.data).is_dir():
        raise FileNotFoundError(2, "prepared data folder not found", args.data)
    start = time.perf_counter()
    rec = load_prepared(args.data)
    matrix = args.training_input(rec)
    if args.items:
        if not Path(args.items).is_dir():
            raise FileNotFoundError(2, "item table folder not found", args.items)
        items = load_from_disk(args.items)
    else:
        items = rec.items
    if len(items) != matrix.shape[1]:
        raise SimCITInputError(
            f"the item table has {len(items)} rows but the training matrix has {matrix.shape[1]} items"
        )
    load_seconds = time.perf_counter() - start
    fit_start = time.perf_counter()
    lgmd = args.estimator()
    transform = args.fit_transform(matrix, lgmd)
    fit_seconds = time.perf_counter() - fit_start
    mapped = items.map(transform, batched=True, desc="cf_embedding")
    report = {
        "data": str(args.data),
        "matrix": args.matrix,
        "num_users": int(matrix.shape[0]) if args.matrix == "interactions" else None,
        "num_rows": int(matrix.shape[0]),
        "num_items": int(matrix.shape[1]),
        "interactions": int(matrix.nnz),
        "rank": int(args.rank),
        "device": str(lgmd.device),
        "torch_threads": torch.get_num_threads(),
        "iterations": int(lgmd.n_iter_),
        "converged": bool(lgmd.converged_),
        "objective_history": [float(v) for v in lgmd.objective_history_],
        "items_without_interactions": transform.info["items_without_interactions"],
        "item_graph_edges": transform.info["edges_v"] // 2,
        "user_graph_edges": transform.info["edges_u"] // 2,
        "seconds": {"load": round(load_seconds, 2), "fit": round(fit_seconds, 2),
                    "total": round(time.perf_counter() - start, 2)},
        "arguments": asdict(args),
    }
    with atomic_directory(args.output) as tmp:
        transform.write_files(tmp)
        mapped.save_to_disk(str(tmp / "items"))
        (tmp / "lgmd.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def rows_description(report: dict[str, Any]) -> str:
    """What the rows of the fitted matrix were: users, or items as contexts (``matrix: sequential``)."""
    if report.get("matrix", "interactions") == "interactions":
        return f"{report['num_users']} users"
    window = (report.get("arguments") or {}).get("window")
    return f"{report['num_rows']} items (SPPMI of items within {window} steps)"


def format_report(report: dict[str, Any]) -> str:
    secs = report["seconds"]
    return (
        f"LGMD: {rows_description(report)} x {report['num_items']} items ({report['interactions']} "
        f"nonzeros) -> {report['num_items']} x {report['rank']} item embeddings on {report['device']} "
        f"({report['torch_threads']} threads)\n"
        f"  iterations {report['iterations']} (converged: {report['converged']}), objective "
        f"{report['objective_history'][0]:.6g} -> {report['objective_history'][-1]:.6g}\n"
        f"  learned graphs: {report['item_graph_edges']} item edges, {report['user_graph_edges']} "
        f"{'user' if report.get('matrix', 'interactions') == 'interactions' else 'row-item'} edges; "
        f"{report['items_without_interactions']} items without training interactions\n"
        f"  time: fit {secs['fit']:.1f} s, total {secs['total']:.1f} s"
    )
