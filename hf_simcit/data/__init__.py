"""Stage 1 of the pipeline: raw files -> leave-one-out ``DatasetDict`` + item table (``datasets`` objects)."""

from .dataset import (
    DATASET_NAMES,
    PrepareConfig,
    RecDataset,
    build_rec_dataset,
    load_prepared,
    prepare_dataset,
    read_raw,
    training_cooccurrence,
    training_matrix,
)
from .readers import RawInteractions, movielens_100k_dir
from .splits import (
    KCoreReport,
    TrainingWindow,
    index_ids,
    k_core,
    leave_one_out,
    sample_rows,
    training_sequences_from_splits,
    training_windows,
)

__all__ = [
    "DATASET_NAMES",
    "KCoreReport",
    "PrepareConfig",
    "RawInteractions",
    "RecDataset",
    "build_rec_dataset",
    "index_ids",
    "k_core",
    "leave_one_out",
    "load_prepared",
    "movielens_100k_dir",
    "prepare_dataset",
    "read_raw",
    "TrainingWindow",
    "sample_rows",
    "training_cooccurrence",
    "training_matrix",
    "training_sequences_from_splits",
    "training_windows",
]
