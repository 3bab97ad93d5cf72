"""The accelerate set-up shared by the trainers: several CPU processes form one group, and launches that
accelerate would run differently from what was asked are refused."""

from __future__ import annotations

import os
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
