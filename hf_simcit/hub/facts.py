"""What a run folder says about itself: test metrics, data set statistics, the item table and feature options.

Why apart from the cards and plans: the demo app reads the same facts (``item_table_folder``,
``feature_options``) without rendering or pushing anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..utils.serialization import read_json

FEATURE_OPTIONS_FILE = "features.json"  # in the data set repo: how a new item's features are computed (the app)
# the features stage's options a new item needs to be embedded like the catalogue (text encoder, geo, ...)
FEATURE_OPTIONS = ("modalities", "text_encoder", "text_column", "text_max_length", "geo_scales_km",
                   "geo_num_frequencies", "latitude_column", "longitude_column", "seed")
METRIC_RE = re.compile(r"^(recall|ndcg|hit|hr|mrr|precision)(@\d+)?$", re.I)


def is_local(name: str) -> bool:
    """Whether a model name is a path on this machine (never publishable as a Hub id)."""
    return os.path.isabs(name) or name.startswith((".", "~")) or os.path.exists(name)


def read_metrics(run_dir: Path) -> dict[str, float]:
    """Test metrics from ``RUN/eval/metrics.json``: flat ``{"recall@10": ..}`` or nested by system/split.

    In nested files the entry named ``test``, ``simcit`` or ``SimCIT`` is preferred, else the first one.
    """
    data = read_json(run_dir / "eval" / "metrics.json")
    return _find_metrics(data) if isinstance(data, dict) else {}


def _metrics_split(run_dir: Path) -> str:
    """The split the metrics were computed on (``"split"`` in metrics.json, as ``hf-simcit evaluate`` writes)."""
    data = read_json(run_dir / "eval" / "metrics.json")
    split = data.get("split") if isinstance(data, dict) else None
    return split if isinstance(split, str) else "test"


def _find_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    flat = {k: float(v) for k, v in values.items() if METRIC_RE.match(str(k)) and isinstance(v, (int, float))}
    if flat:
        return flat
    nested = {k: v for k, v in values.items() if isinstance(v, dict)}
    for key in ("test", "simcit", "SimCIT", *nested):
        found = _find_metrics(nested[key]) if key in nested else {}
        if found:
            return found
    return {}


def run_facts(run_dir: Path) -> dict[str, Any]:
    """The data set, its size, the metrics and their split: what every card of a run states."""
    stats = read_json(run_dir / "data" / "stats.json") or {}
    source = stats.get("source")
    if isinstance(source, str):  # never publish local file system paths
        source = re.sub(r"\s*\((?:/|~|[A-Za-z]:\\)[^)]*\)", "", source).strip()
    return {
        "dataset": stats.get("dataset") or "unknown",
        "source": source,
        "num_users": stats.get("users"),
        "num_items": stats.get("items"),
        "num_interactions": stats.get("interactions"),
        "metrics": read_metrics(run_dir),
        "split": _metrics_split(run_dir),
        "stats": stats,
    }


def item_table_folder(run_dir: Path) -> Path | None:
    """The most processed item table of a run: LGMD's (features + cf_embedding), else the features stage's,
    else the prepared one; ``None`` when there is none."""
    candidates = (run_dir / "lgmd" / "items", run_dir / "features", run_dir / "data" / "items")
    return next((p for p in candidates if p.is_dir()), None)


def feature_options(run_dir: Path) -> dict[str, Any]:
    """The features stage's options a new item needs (``FEATURE_OPTIONS``, from ``features/features.json``).

    A text encoder given as a local folder is not published (it names this machine's files): it is recorded
    as ``null`` with ``text_encoder_name`` (its folder name), and the app refuses to embed text without it.
    """
    arguments = (read_json(run_dir / "features" / "features.json") or {}).get("arguments") or {}
    options = {key: arguments[key] for key in FEATURE_OPTIONS if key in arguments}
    encoder = options.get("text_encoder")
    if isinstance(encoder, str) and is_local(encoder):
        options["text_encoder"], options["text_encoder_name"] = None, Path(encoder).name
    return options


__all__ = ["FEATURE_OPTIONS", "FEATURE_OPTIONS_FILE", "feature_options", "is_local", "item_table_folder",
           "read_json", "read_metrics", "run_facts"]
