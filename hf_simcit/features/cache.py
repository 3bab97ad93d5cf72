"""A content-addressed cache of computed modality features (safetensors, no pickle).

Why: encoding 12k item texts with MiniLM takes a minute on 2 cores; a second run with the same inputs, the same
encoder weights and the same options reuses the file instead. The key is a SHA-256 over everything that changes
the result, so a changed text, weight file or option is a miss, never a stale hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

CACHE_ENV = "HF_SIMCIT_CACHE"


def default_cache_dir() -> Path:
    """``$HF_SIMCIT_CACHE/features``, else ``~/.cache/hf_simcit/features``."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "hf_simcit")
    return Path(root) / "features"


def fingerprint(*parts: Any) -> str:
    """Stable hex digest of JSON-able parts (dict order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def hash_values(values: Iterable[Any]) -> str:
    """Digest of a column's values in order (None is distinct from the string "None")."""
    digest = hashlib.sha256()
    for value in values:
        if value is None:
            digest.update(b"\x00N")
        elif isinstance(value, bytes):
            digest.update(b"\x00B" + value)
        else:
            digest.update(b"\x00S" + repr(value).encode("utf-8"))
    return digest.hexdigest()


def hash_model_source(name_or_path: str) -> str:
    """Digest of a local model folder's files (names and contents); a hub name is hashed as its name."""
    path = Path(name_or_path)
    if not path.is_dir():
        return fingerprint("hub-name", name_or_path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file() and p.suffix not in {".md", ".lock"}):
        digest.update(file.name.encode("utf-8") + b"\x00")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class FeatureCache:
    """``<dir>/<modality>-<key>.safetensors`` holding ``embeddings`` (n, d) float32 and ``present`` (n,) bool."""

    def __init__(self, directory: str | os.PathLike | None = None, enabled: bool = True):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.enabled = enabled

    def path(self, modality: str, key: str) -> Path:
        return self.directory / f"{modality}-{key}.safetensors"

    def load(self, modality: str, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        path = self.path(modality, key)
        if not self.enabled or not path.exists():
            return None
        try:
            tensors = load_file(str(path))
        except Exception:  # a truncated/corrupt cache file is a miss, not a failure
            return None
        return tensors["embeddings"].numpy(), tensors["present"].numpy().astype(bool)

    def save(self, modality: str, key: str, embeddings: np.ndarray, present: np.ndarray, meta: dict) -> None:
        if not self.enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{modality}-", suffix=".tmp", dir=self.directory)
        os.close(handle)
        try:
            save_file(
                {
                    "embeddings": torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32)),
                    "present": torch.from_numpy(np.asarray(present, dtype=bool).astype(np.uint8)),
                },
                tmp,
                metadata={key: json.dumps(value, default=str) for key, value in meta.items()},
            )
            os.replace(tmp, self.path(modality, key))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
