"""One checkpoint convention for every trainer: save, rotate, resume and the best model.

Why one place: the quantizer and recommender trainers used to carry their own rotation, resume option and
best-model location. Here, for both:

- checkpoints are ``<checkpoint_dir>/checkpoint-<step>`` folders (safetensors + JSON, every process's RNG
  state), each written atomically (:func:`~hf_simcit.utils.serialization.save_training_state`);
- rotation keeps the ``save_total_limit`` newest (0 or less: all) and deletes nothing else: the best model
  lives in ``output_dir``, the folder users load, which rotation never touches;
- ``resume_from_checkpoint`` follows transformers' ``Trainer``: ``"auto"``/``"true"`` = the latest checkpoint if
  there is one, a path = that checkpoint, ``None``/``"none"``/``"no"``/``"false"`` = a fresh start;
- exact resume: the data order of an epoch depends only on ``seed + epoch`` (:class:`EpochShuffleSampler`) and
  a resumed epoch skips the batches already trained on (:func:`epoch_batches`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..errors import SimCITInputError
from ..utils.serialization import (
    atomic_directory,
    has_rng_state,
    load_training_state,
    save_training_state,
)

T = TypeVar("T")

CHECKPOINT_PREFIX = "checkpoint-"
FRESH_START = ("none", "no", "false")
LATEST = ("auto", "true")
TRAINER_STATE_NAME = "trainer_state.json"   # written last-but-atomically by save_training_state: marks a checkpoint
RESUME_HELP = ("'auto' or 'true': continue from the latest checkpoint-<step> in checkpoint_dir if there is one; a "
               "checkpoint folder: continue from it; 'none', 'no' or 'false': start fresh.")


def checkpoint_folder(output_dir: str | os.PathLike, checkpoint_dir: str | os.PathLike | None = None) -> Path:
    """Where a run's ``checkpoint-<step>`` folders go: ``checkpoint_dir``, by default ``<output_dir>_checkpoints``."""
    return Path(checkpoint_dir or f"{str(output_dir).rstrip('/')}_checkpoints")


def resume_choice(resume_from_checkpoint: str | bool | None) -> Path | str | None:
    """``"latest"``, ``None`` (a fresh start) or the checkpoint folder ``resume_from_checkpoint`` names.

    Called by the argument dataclasses too, so that a path that is not a checkpoint folder stops a run with one
    line before anything runs.
    """
    choice = "none" if resume_from_checkpoint is None else str(resume_from_checkpoint).strip()
    if choice.lower() in FRESH_START:
        return None
    if choice.lower() in LATEST:
        return "latest"
    checkpoint = Path(choice).expanduser()
    if not (checkpoint / TRAINER_STATE_NAME).is_file():
        raise SimCITInputError(
            f"resume_from_checkpoint: {choice} is not a checkpoint folder (a checkpoint-<step> folder with "
            f"{TRAINER_STATE_NAME}); use 'auto', 'none' or the path of a checkpoint")
    return checkpoint


class CheckpointManager:
    """The ``checkpoint-<step>`` folders of one run and its best model.

    ``save`` writes a checkpoint and rotates, ``resolve`` turns ``resume_from_checkpoint`` into the checkpoint
    to continue from, ``restore`` loads it (or seeds a fresh start), ``save_best``/``load_best`` keep the best
    model in ``best_dir``. Methods that take an ``accelerator`` are collectives under several processes (every
    process calls them; the main one writes); without one they act for a single process.
    """

    def __init__(self, checkpoint_dir: str | os.PathLike, best_dir: str | os.PathLike, save_total_limit: int = 2):
        self.checkpoint_dir = Path(checkpoint_dir)
        self.best_dir = Path(best_dir)
        self.save_total_limit = save_total_limit

    def __repr__(self) -> str:
        return (f"CheckpointManager({str(self.checkpoint_dir)!r}, best_dir={str(self.best_dir)!r}, "
                f"save_total_limit={self.save_total_limit})")

    # ---- finding
    def path(self, step: int) -> Path:
        return self.checkpoint_dir / f"{CHECKPOINT_PREFIX}{step}"

    def checkpoints(self) -> list[Path]:
        """Every ``checkpoint-<step>`` folder, oldest (lowest step) first."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoint_dir.iterdir()
                 if p.is_dir() and (m := re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def resolve(self, resume_from_checkpoint: str | bool | None, accelerator: Any = None) -> Path | None:
        """The checkpoint to resume from (``None``: start fresh), decided before any work.

        With an ``accelerator``, a checkpoint its set-up cannot restore is refused
        (:func:`~hf_simcit.training.distributed.check_resume_supported`).
        """
        choice = resume_choice(resume_from_checkpoint)
        checkpoint = self.latest() if choice == "latest" else choice
        if accelerator is not None:
            from .distributed import check_resume_supported

            check_resume_supported(accelerator, checkpoint)
        return checkpoint

    # ---- writing
    def save(self, step: int, *, model: torch.nn.Module | dict[str, torch.Tensor] | None,
             optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
             state: dict[str, Any] | None = None, accelerator: Any = None) -> Path:
        """Write ``checkpoint-<step>`` (weights, optimizer, scheduler, every process's RNG, ``state``), then rotate.

        ``model`` is read on the main process only (other processes may pass ``None``). The set-up it was written
        under is recorded, so that :meth:`resolve` refuses what it cannot restore.
        """
        from .distributed import gather_rng_states

        main = accelerator is None or accelerator.is_main_process
        rng_states = gather_rng_states(accelerator) if accelerator is not None else None
        if main:
            extra = dict(state or {})
            if accelerator is not None:
                extra["distributed_type"] = str(accelerator.distributed_type)
            save_training_state(self.path(step), model=model, optimizer=optimizer, scheduler=scheduler,
                                extra=extra, rng_states=rng_states)
            self.rotate()
        if accelerator is not None:
            accelerator.wait_for_everyone()
        return self.path(step)

    def rotate(self) -> list[Path]:
        """Delete all but the ``save_total_limit`` newest checkpoints (0 or less: keep all); returns the deleted.

        Only ``checkpoint-<step>`` folders are candidates, so the best model is never deleted, wherever it is.
        """
        if self.save_total_limit <= 0:
            return []
        old = self.checkpoints()[:-self.save_total_limit]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)
        return old

    # ---- reading
    def restore(self, checkpoint: str | os.PathLike | None, *, model: Any, optimizer: Any = None,
                scheduler: Any = None, seed: int = 0, accelerator: Any = None) -> dict[str, Any] | None:
        """Load ``checkpoint`` (from :meth:`resolve`) into the model, optimizer, scheduler and this process's RNG
        and return its ``state``; ``None`` (a fresh start) returns ``None``.

        Under several processes each process continues its own random streams: where the checkpoint holds none
        for this process (or on a fresh start), the process gets a seed of its own
        (:func:`~hf_simcit.training.distributed.seed_process_streams`; one process: unchanged).
        """
        from .distributed import seed_process_streams

        index = 0 if accelerator is None else accelerator.process_index
        state = None
        if checkpoint is not None:
            state = load_training_state(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler,
                                        process_index=index)
            state.pop("distributed_type", None)
            if accelerator is not None:
                accelerator.print(f"resumed from {checkpoint} at step {state.get('step')}")
        if accelerator is not None and (checkpoint is None or not has_rng_state(checkpoint, index)):
            seed_process_streams(accelerator, seed)
        return state

    # ---- the best model
    def save_best(self, write: Callable[[Path], Any], accelerator: Any = None) -> None:
        """Replace the best model in ``best_dir`` in one rename: ``write(folder)`` fills a temporary folder
        (e.g. ``model.save_pretrained``). Written by the main process; a collective under several processes."""
        if accelerator is None or accelerator.is_main_process:
            with atomic_directory(self.best_dir) as tmp:
                write(tmp)
        if accelerator is not None:
            accelerator.wait_for_everyone()

    def load_best(self, load: Callable[[Path], T]) -> T | None:
        """``load(best_dir)`` (e.g. ``SimCITQuantizer.from_pretrained``), or ``None`` when no best was saved."""
        return load(self.best_dir) if self.best_dir.is_dir() else None


class EpochShuffleSampler(torch.utils.data.Sampler[int]):
    """A random order that depends only on ``seed`` and the epoch, so a resumed run sees the same batches.

    The method is deliberately not called ``set_epoch``: accelerate's data loaders call ``set_epoch`` with
    their own iteration counter, which restarts at 0 in a resumed run.
    """

    def __init__(self, num_examples: int, seed: int):
        self.num_examples, self.seed, self.epoch = num_examples, seed, 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_examples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_examples


def epoch_batches(accelerator: Any, loader: Iterable, sampler: Any, epoch: int, done: int = 0) -> Iterable:
    """The prepared ``loader``'s batches of ``epoch`` in that epoch's order (``sampler.use_epoch``), without the
    first ``done`` batches (already trained on before an interruption)."""
    sampler.use_epoch(epoch)
    return accelerator.skip_first_batches(loader, done) if done else loader


__all__ = [
    "RESUME_HELP",
    "CheckpointManager",
    "EpochShuffleSampler",
    "checkpoint_folder",
    "epoch_batches",
    "resume_choice",
]
