"""The accelerate set-up shared by the trainers: several CPU processes form one group, and launches that
accelerate would run differently from what was asked are refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import SimCITInputError


def cpu_processes() -> bool:
    """True when several processes were launched (torchrun, ``accelerate launch``) on a machine without CUDA.

    accelerate only sets up a CPU process group (gloo) with ``cpu=True``; without it every process believes it
    is alone and they train side by side, overwriting each other's checkpoints.
    """
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def check_distributed_setup(accelerator: Any) -> None:
    """Refuse set-ups that would silently differ from what the launcher asked for."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != accelerator.num_processes:
        raise SimCITInputError(
            f"{world} processes were launched but accelerate joined {accelerator.num_processes} "
            f"({accelerator.distributed_type}); on CPU launch with recipes/accelerate_configs/multi_cpu.yaml")
    asked_fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")
    if asked_fsdp and not str(accelerator.distributed_type).endswith("FSDP"):
        raise SimCITInputError(
            f"the accelerate config asks for FSDP but accelerate set up {accelerator.distributed_type} (FSDP "
            "needs GPUs; accelerate runs it on CPU as DDP): use recipes/accelerate_configs/multi_cpu.yaml on CPU")


def is_sharded(accelerator: Any) -> bool:
    """True under FSDP or DeepSpeed: a process holds only its shard of the optimizer (and, FSDP/ZeRO-3, of
    the weights)."""
    return str(accelerator.distributed_type).endswith(("FSDP", "DEEPSPEED"))


def check_resume_supported(accelerator: Any, checkpoint: str | os.PathLike | None) -> None:
    """Refuse to resume ``checkpoint`` where the trainer's checkpoints cannot be restored.

    A checkpoint holds the full trainable weights but only the main process's optimizer state: under FSDP or
    DeepSpeed that is rank 0's shard, and the weights would be copied into sharded parameters (a deep shape
    error). A checkpoint written under FSDP/DeepSpeed (its ``trainer_state.json`` says so) is refused under
    any set-up for the same reason. ``None`` (a fresh start) always passes.
    """
    if checkpoint is None:
        return
    if is_sharded(accelerator):
        raise SimCITInputError(
            f"cannot resume from {checkpoint} under {accelerator.distributed_type}: checkpoints do not hold every "
            "process's optimizer shard; train without resume (resume_from_checkpoint: no, or a new "
            "checkpoint_dir) or train under DDP (recipes/accelerate_configs/multi_gpu.yaml)")
    state_file = Path(checkpoint) / "trainer_state.json"
    written_under = None
    if state_file.is_file():
        import json

        written_under = json.loads(state_file.read_text()).get("distributed_type")
    if written_under is not None and str(written_under).endswith(("FSDP", "DEEPSPEED")):
        raise SimCITInputError(
            f"cannot resume from {checkpoint}: it was written under {written_under} and holds only the main "
            "process's optimizer shard; train without resume (resume_from_checkpoint: no, or a new "
            "checkpoint_dir)")


def auto_mixed_precision(choice: str, cpu: bool) -> str:
    """``"auto"``: bf16 on a GPU that has it, fp16 on other GPUs, none on CPU; other choices pass through."""
    if choice != "auto":
        return choice
    if not cpu and torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def build_accelerator(*, cpu: bool = False, mixed_precision: str | None = None, **kwargs: Any):
    """An ``Accelerator`` that joins every launched process: CPU (gloo) when several processes run without
    CUDA, ``mixed_precision="auto"`` resolved for the device, and the set-up checked against the launch."""
    from accelerate import Accelerator

    cpu = cpu or cpu_processes()
    if mixed_precision is not None:
        mixed_precision = auto_mixed_precision(mixed_precision, cpu)
    accelerator = Accelerator(cpu=cpu, mixed_precision=mixed_precision, **kwargs)
    check_distributed_setup(accelerator)
    return accelerator
