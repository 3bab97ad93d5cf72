"""Only safetensors are read, written or shared: the one check every loading path, ``assign`` and the Hub push use.

Why one module: ``from_pretrained`` of transformers and peft falls back to ``pytorch_model.bin`` /
``adapter_model.bin`` (a pickle: loading it can run code) when no safetensors file is there, and a copy of a
folder carries whatever it holds. So a folder is checked before anything in it is read: a pickle-suffixed
file, a file that starts like a pickle stream or is a ``torch.save`` archive, or a ``*.safetensors`` file that
is not a complete safetensors file (a renamed pickle, a truncated or corrupt download) is refused with one line.

This module is copied next to saved SimCIT weights for ``trust_remote_code`` (``modeling_simcit`` imports it),
so it may only import the standard library and its sibling ``errors``.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from .errors import SimCITInputError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".pyc")


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file (``None`` when it is).

    A safetensors file is an 8-byte little-endian header size, a JSON object header whose tensors'
    ``data_offsets`` end exactly where the file ends; a truncated download fails the last check.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        if size < 8 or header_size <= 0 or 8 + header_size > size:
            return "not safetensors (no valid header: pickle/torch.save, corrupt or truncated)"
        try:
            header = json.loads(handle.read(header_size))
        except (UnicodeDecodeError, ValueError):
            return "not safetensors (header is not JSON: pickle/torch.save or corrupt)"
    if not isinstance(header, dict):
        return "not safetensors (header is not a JSON object)"
    try:
        end = max((int(entry["data_offsets"][1]) for name, entry in header.items() if name != "__metadata__"),
                  default=0)
    except (KeyError, TypeError, ValueError, IndexError):
        return "corrupt safetensors header (a tensor without data_offsets)"
    if end != size - 8 - header_size:
        return (f"truncated or corrupt safetensors file ({size - 8 - header_size:,} data bytes, the header "
                f"describes {end:,})")
    return None


def looks_like_pickle(path: Path) -> bool:
    """True for pickle streams and torch.save zip archives (which hold a ``data.pkl``)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if head[:2] == b"PK" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(".pkl") for name in archive.namelist())
    return False


def unsafe_reason(path: Path) -> str | None:
    """Why ``path`` must not be read or shared (``None``: it is safe)."""
    if path.suffix.lower() == ".safetensors":
        return safetensors_problem(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return "a pickle file (only safetensors are read or written)"
    if looks_like_pickle(path):
        return "looks like a pickle/torch.save file (only safetensors are read or written)"
    return None


def check_safe_files(paths: Iterable[Path], where: str, action: str = "upload") -> None:
    """Refuse anything that would make ``from_pretrained`` unpickle, or a broken safetensors file.

    ``action`` words the message: ``"upload"`` (Hub push), ``"load"`` (a folder about to be read).
    """
    for path in paths:
        reason = unsafe_reason(Path(path))
        if reason is not None:
            raise SimCITInputError(
                f"{where}: refusing to {action} {Path(path).name}: {reason}; re-save it with "
                f"save_pretrained(safe_serialization=True) and delete {path}"
            )


def check_safe_folder(folder: str | os.PathLike, where: str | None = None) -> Path:
    """Check every file directly in a model folder (what ``from_pretrained`` may read) before it is read.

    Returns the folder; a folder that does not exist is left to the loader (which names it).
    """
    folder = Path(folder)
    if folder.is_dir():
        check_safe_files(sorted(p for p in folder.iterdir() if p.is_file()), where or str(folder), action="load")
    return folder


__all__ = ["PICKLE_SUFFIXES", "check_safe_files", "check_safe_folder", "looks_like_pickle", "safetensors_problem",
           "unsafe_reason"]
