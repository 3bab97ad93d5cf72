"""From raw files to a leave-one-out ``DatasetDict`` plus an item table: :func:`prepare_dataset`.

A prepared data set on disk is a folder with ``splits/`` (``DatasetDict``: train/validation/test with
``user_id``, ``history``, ``target``), ``items/`` (item table), ``sequences/`` (each user's full sequence) and
``stats.json`` (what was read, filtered and split).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from datasets import Dataset, DatasetDict, Features, List, Value, load_from_disk

from ..errors import SimCITInputError
from ..utils.progress import progress_bars_off
from ..utils.serialization import atomic_directory
from . import readers
from .splits import index_ids, k_core, leave_one_out

DATASET_NAMES = ("ml-100k", "beauty", "scientific", "yelp", "foursquare-nyc", "s3rec", "lcrec", "unisrec", "table")

SPLIT_FEATURES = Features(
    {"user_id": Value("int64"), "history": List(Value("int64")), "target": Value("int64")}
)


@dataclass
class PrepareConfig:
    """How raw interactions become splits (all fields round-trip through JSON into ``stats.json``)."""

    min_user_interactions: int = 5
    min_item_interactions: int = 5
    max_history: int = 20
    train_examples: str = "all"  # "all" prefixes, or only the "last" (longest) one per user
    # generic formats
    user_column: str = "user_id"
    item_column: str = "item_id"
    timestamp_column: str | None = "timestamp"  # None: file order; a named column the file lacks is an error
    keep_duplicates: bool = False  # duplicate rows (table, ml-100k) are dropped and counted unless True
    item_text_file: str | None = None
    text_column: str = "text"


@dataclass
class RecDataset:
    """A prepared recommendation data set.

    Attributes:
        splits: ``DatasetDict`` with ``train``/``validation``/``test``; columns ``user_id`` (int64),
            ``history`` (list of item indices, oldest first, at most ``max_history``), ``target`` (int64).
        items: item table; ``item_index`` (== row), ``item_id`` (raw id), ``text`` (None when unknown),
            and ``latitude``/``longitude`` for POI data.
        sequences: one row per user: ``user_id``, ``raw_user_id``, ``items`` (full sequence, item indices).
        stats: counts of everything read, filtered and split.
    """

    splits: DatasetDict
    items: Dataset
    sequences: Dataset
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_items(self) -> int:
        return len(self.items)

    def save_to_disk(self, path: str | Path) -> Path:
        """Write the folder atomically (a crash never leaves half a data set)."""
        # progress bars off: the sub-second save_to_disk bars would drown the statistics
        with atomic_directory(path) as tmp, progress_bars_off("datasets"):
            self.splits.save_to_disk(str(tmp / "splits"))
            self.items.save_to_disk(str(tmp / "items"))
            self.sequences.save_to_disk(str(tmp / "sequences"))
            (tmp / "stats.json").write_text(json.dumps(self.stats, indent=2))
        return Path(path)


def load_prepared(path: str | Path) -> RecDataset:
    """Load a folder written by :meth:`RecDataset.save_to_disk` (``hf-simcit prepare``)."""
    path = Path(path)
    for part in ("splits", "items", "sequences", "stats.json"):
        if not (path / part).exists():
            raise SimCITInputError(f"{path}: not a prepared data set (missing {part}); run `hf-simcit prepare` first")
    return RecDataset(
        splits=load_from_disk(str(path / "splits")),
        items=load_from_disk(str(path / "items")),
        sequences=load_from_disk(str(path / "sequences")),
        stats=json.loads((path / "stats.json").read_text()),
    )


def read_raw(name: str, data_dir: str | Path | None, config: PrepareConfig) -> readers.RawInteractions:
    """Dispatch to the reader of data set/format ``name``."""
    if name not in DATASET_NAMES:
        raise SimCITInputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if name == "ml-100k":
        return readers.read_movielens(data_dir, keep_duplicates=config.keep_duplicates)
    if data_dir is None:
        raise SimCITInputError(f"--data-dir is required for dataset {name!r}")
    if name == "beauty":
        return readers.read_beauty(data_dir)
    if name == "yelp":
        return readers.read_yelp(data_dir)
    if name == "s3rec":
        return readers.read_s3rec_generic(data_dir, config.item_text_file)
    if name == "lcrec":
        return readers.read_lcrec(data_dir)
    if name in {"scientific", "unisrec"}:
        return readers.read_unisrec(data_dir)
    if name == "foursquare-nyc":
        return readers.read_foursquare_nyc(data_dir)
    return readers.read_table(
        data_dir,
        user_column=config.user_column,
        item_column=config.item_column,
        timestamp_column=config.timestamp_column,
        item_text_file=config.item_text_file,
        text_column=config.text_column,
        keep_duplicates=config.keep_duplicates,
    )


def build_rec_dataset(raw: readers.RawInteractions, config: PrepareConfig, name: str = "") -> RecDataset:
    """k-core -> index ids -> leave-one-out -> ``datasets`` objects with statistics."""
    read_interactions = sum(len(s) for s in raw.sequences.values())
    filtered, kcore = k_core(raw.sequences, config.min_user_interactions, config.min_item_interactions)
    if not filtered:
        raise SimCITInputError(
            f"{raw.source}: no user is left after k-core filtering (min_user_interactions="
            f"{config.min_user_interactions}, min_item_interactions={config.min_item_interactions}); lower them"
        )
    user_index = index_ids(list(filtered))
    item_index = index_ids({i for s in filtered.values() for i in s})
    raw_users = sorted(user_index, key=user_index.get)
    raw_items = sorted(item_index, key=item_index.get)
    sequences = [[item_index[i] for i in filtered[u]] for u in raw_users]

    split = leave_one_out(sequences, max_history=config.max_history, train_examples=config.train_examples)
    if not split.test["user_id"]:
        raise SimCITInputError(f"{raw.source}: no user has the 3 interactions a leave-one-out split needs")
    splits = DatasetDict(
        {
            "train": Dataset.from_dict(split.train, features=SPLIT_FEATURES),
            "validation": Dataset.from_dict(split.validation, features=SPLIT_FEATURES),
            "test": Dataset.from_dict(split.test, features=SPLIT_FEATURES),
        }
    )

    item_columns: dict[str, list] = {
        "item_index": list(range(len(raw_items))),
        "item_id": raw_items,
        "text": [raw.item_text.get(i) or None for i in raw_items],
    }
    item_features = {"item_index": Value("int64"), "item_id": Value("string"), "text": Value("string")}
    if raw.item_coordinates:
        missing = [i for i in raw_items if i not in raw.item_coordinates]
        if missing:
            raise SimCITInputError(f"{raw.source}: item {missing[0]!r} has interactions but no coordinates")
        item_columns["latitude"] = [raw.item_coordinates[i][0] for i in raw_items]
        item_columns["longitude"] = [raw.item_coordinates[i][1] for i in raw_items]
        item_features |= {"latitude": Value("float64"), "longitude": Value("float64")}
    items = Dataset.from_dict(item_columns, features=Features(item_features))
    user_sequences = Dataset.from_dict(
        {"user_id": list(range(len(raw_users))), "raw_user_id": raw_users, "items": sequences},
        features=Features({"user_id": Value("int64"), "raw_user_id": Value("string"), "items": List(Value("int64"))}),
    )

    lengths = np.array([len(s) for s in sequences])
    test_history = np.array([len(h) for h in split.test["history"]])
    stats = {
        "dataset": name,
        "source": raw.source,
        "users": len(raw_users),
        "items": len(raw_items),
        "interactions": int(lengths.sum()),
        "mean_sequence_length": float(lengths.mean()),
        "mean_history_length": float(test_history.mean()),
        "train_examples": len(split.train["target"]),
        "validation_examples": len(split.validation["target"]),
        "test_examples": len(split.test["target"]),
        "read": {"users": len(raw.sequences), "interactions": read_interactions, "dropped_by_reader": raw.dropped},
        "k_core": asdict(kcore),
        "users_too_short_for_split": split.users_too_short,
        "train_targets_dropped_as_eval_targets": split.train_targets_dropped_as_eval_targets,
        "items_without_text": sum(t is None for t in item_columns["text"]),
        "metadata_items_without_interactions": len(set(raw.item_text) - set(item_index)),
        "config": asdict(config),
    }
    return RecDataset(splits=splits, items=items, sequences=user_sequences, stats=stats)


def prepare_dataset(
    name: str, data_dir: str | Path | None = None, config: PrepareConfig | None = None, **overrides: Any
) -> RecDataset:
    """Read data set/format ``name`` from ``data_dir`` and split it (see :class:`PrepareConfig`).

    Example::

        rec = prepare_dataset("beauty", data_dir="../shared/data/amazon2014_beauty")
        rec.splits["test"][0]  # {"user_id": 0, "history": [...], "target": 4}
    """
    config = config or PrepareConfig()
    if overrides:
        unknown = set(overrides) - set(asdict(config))
        if unknown:
            raise SimCITInputError(f"unknown prepare option(s): {', '.join(sorted(unknown))}")
        config = PrepareConfig(**(asdict(config) | overrides))
    raw = read_raw(name, data_dir, config)
    return build_rec_dataset(raw, config, name=name)


def training_matrix(rec: RecDataset, dtype: type = np.float32) -> sp.csr_matrix:
    """The user x item matrix of *training* interactions: 1 where an item occurs before the user's
    validation target. Validation and test targets never enter it (shape ``(num_users, num_items)``)."""
    rows: list[int] = []
    cols: list[int] = []
    for user, items in zip(rec.sequences["user_id"], rec.sequences["items"]):
        training_part = items[:-2] if len(items) >= 3 else []
        rows.extend([user] * len(training_part))
        cols.extend(training_part)
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=dtype), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
        shape=(rec.num_users, rec.num_items),
    )
    matrix.data[:] = 1  # repeat interactions count once
    return matrix


def training_cooccurrence(rec: RecDataset, window: int = 3, dtype: type = np.float32) -> sp.csr_matrix:
    """Symmetric item x item counts of *training* items that follow each other within ``window`` steps.

    A pair ``d`` steps apart counts ``1 / d``; only each user's training part (the items before the validation
    target, as in :func:`training_matrix`) enters, so validation and test targets never do. Where
    :func:`training_matrix` says which items the same user met, this says which items come *next to* each
    other: the order a sequential recommender learns (shape ``(num_items, num_items)``).
    """
    if window < 1:
        raise SimCITInputError(f"co-occurrence window must be at least 1, got {window}")
    rows: list[int] = []
    cols: list[int] = []
    weights: list[float] = []
    for items in rec.sequences["items"]:
        training_part = items[:-2] if len(items) >= 3 else []
        for distance in range(1, min(window, len(training_part) - 1) + 1):
            left, right = training_part[:-distance], training_part[distance:]
            rows.extend(left + right)
            cols.extend(right + left)
            weights.extend([1.0 / distance] * (2 * len(left)))
    matrix = sp.csr_matrix(
        (np.asarray(weights, dtype=dtype), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
        shape=(rec.num_items, rec.num_items),
    )
    matrix.sum_duplicates()
    return matrix
