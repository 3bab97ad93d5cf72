"""Atomic artifact folders and pickle-free training checkpoints.

Why: an interrupted save must never leave a folder that loads half a model, and nothing we write or read
may be a pickle. Every artifact folder is written to a sibling temporary folder and renamed into place;
training state (model, optimizer, scheduler, RNG, step) is stored as safetensors plus JSON. The file format
of one checkpoint lives here; where checkpoints go, their rotation and resuming: ``training/checkpointing.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import SimCITInputError


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path`` (``None`` when there is no such file); invalid JSON is a one-line input error naming
    the file and line (a run killed while writing, a hand edit), never a ``JSONDecodeError`` traceback."""
    path = Path(path)
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError as err:
        raise SimCITInputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """``path`` replaced by ``text`` in one rename: a reader sees the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` in one rename.

    If the body raises, the temporary folder is removed and ``path`` keeps its previous content. A ``path``
    that is an existing file is refused (it would be silently replaced by a folder).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SimCITInputError(f"{path} is a file, not a folder: choose another output folder (nothing was written)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _flatten(prefix: str, obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested dict/list by a reference and collect it in ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(f"{prefix}.k{i}", k, tensors), _flatten(f"{prefix}.{i}", v, tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        kind = "__tuple__" if isinstance(obj, tuple) else "__list__"
        return {kind: [_flatten(f"{prefix}.{i}", v, tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, np.ndarray):
        tensors[prefix] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"__ndarray__": prefix}
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [_unflatten(v, tensors) for v in obj["__list__"]]
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
    return obj


def save_state_dict_tree(tree: Any, directory: str | os.PathLike, name: str) -> None:
    """Save any nested structure of tensors/arrays/JSON scalars as ``name.safetensors`` + ``name.json``."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten("t", tree, tensors)
    directory = Path(directory)
    save_file(tensors, str(directory / f"{name}.safetensors"))
    (directory / f"{name}.json").write_text(json.dumps(skeleton))


def load_state_dict_tree(directory: str | os.PathLike, name: str) -> Any:
    directory = Path(directory)
    tensors = load_file(str(directory / f"{name}.safetensors"))
    return _unflatten(json.loads((directory / f"{name}.json").read_text()), tensors)


def rng_state() -> dict[str, Any]:
    state = {"python": list(random.getstate()), "numpy": list(np.random.get_state()),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_file_name(process_index: int) -> str:
    """The checkpoint file (``<name>.safetensors`` + ``<name>.json``) with a process's RNG state: ``rng`` for
    process 0 (the one-process format, unchanged), ``rng_<i>`` for process ``i`` of a multi-process run."""
    return "rng" if process_index == 0 else f"rng_{process_index}"


def has_rng_state(checkpoint_dir: str | os.PathLike, process_index: int = 0) -> bool:
    """Whether the checkpoint holds process ``process_index``'s RNG state (one written by fewer processes does
    not)."""
    return (Path(checkpoint_dir) / f"{rng_file_name(process_index)}.json").is_file()


def save_training_state(
    checkpoint_dir: str | os.PathLike,
    *,
    model: torch.nn.Module | dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    extra: dict[str, Any] | None = None,
    rng_states: list[dict[str, Any]] | None = None,
) -> Path:
    """Write model weights, optimizer, scheduler, RNG state and ``extra`` (step, metrics...) atomically.

    ``checkpoint_dir`` is e.g. ``run/checkpoints/checkpoint-500``; only safetensors and JSON are written.
    ``model`` is a module or its weights (e.g. a state dict gathered from sharded processes). ``rng_states``:
    every process's RNG state in process order (``hf_simcit.training.distributed.gather_rng_states``), stored
    as :func:`rng_file_name`; default: this process's only, as ``rng``.
    """
    weights = model if isinstance(model, dict) else model.state_dict()
    states = [rng_state()] if rng_states is None else list(rng_states)
    with atomic_directory(checkpoint_dir) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"))
        if optimizer is not None:
            save_state_dict_tree(optimizer.state_dict(), tmp, "optimizer")
        if scheduler is not None:
            save_state_dict_tree(scheduler.state_dict(), tmp, "scheduler")
        for index, state in enumerate(states):
            save_state_dict_tree(state, tmp, rng_file_name(index))
        (tmp / "trainer_state.json").write_text(json.dumps(extra or {}, indent=2))
    return Path(checkpoint_dir)


def load_training_state(
    checkpoint_dir: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    restore_rng: bool = True,
    process_index: int = 0,
) -> dict[str, Any]:
    """Inverse of :func:`save_training_state`; returns the ``extra`` dict (e.g. ``{"step": 500}``).

    The RNG state restored is process ``process_index``'s; where the checkpoint lacks it (written by fewer
    processes, see :func:`has_rng_state`) the RNG of a process other than 0 is left as it is.
    """
    checkpoint_dir = Path(checkpoint_dir)
    # a checkpoint of other model or optimizer settings (e.g. written by an older version) cannot continue
    # this run: one line naming it, not torch's traceback
    try:
        model.load_state_dict(load_file(str(checkpoint_dir / "model.safetensors")))
        if optimizer is not None and (checkpoint_dir / "optimizer.json").exists():
            optimizer.load_state_dict(load_state_dict_tree(checkpoint_dir, "optimizer"))
    except (RuntimeError, ValueError, KeyError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SimCITInputError(
            f"{checkpoint_dir}: cannot resume from this checkpoint, it was written with other model or optimizer "
            f"settings ({reason}); remove it or turn resuming off") from None
    if scheduler is not None and (checkpoint_dir / "scheduler.json").exists():
        scheduler.load_state_dict(load_state_dict_tree(checkpoint_dir, "scheduler"))
    if restore_rng and (process_index == 0 or has_rng_state(checkpoint_dir, process_index)):
        set_rng_state(load_state_dict_tree(checkpoint_dir, rng_file_name(process_index)))
    return json.loads((checkpoint_dir / "trainer_state.json").read_text())

