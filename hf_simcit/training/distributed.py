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


def needs_collective_state_dict(accelerator: Any) -> bool:
    """True where ``accelerator.get_state_dict`` is a collective that every process must call: FSDP and
    DeepSpeed ZeRO-3 gather the weight shards there. Elsewhere (one process, DDP, ZeRO-1/2) every process holds
    the whole model and only the main one needs the dict (under ZeRO-2, a call on every rank would clone the
    model on every device)."""
    kind = str(accelerator.distributed_type)
    if kind.endswith("FSDP"):
        return True
    if kind.endswith("DEEPSPEED"):
        plugin = getattr(accelerator.state, "deepspeed_plugin", None)
        return getattr(plugin, "zero_stage", 0) == 3
    return False


def full_state_dict(accelerator: Any, model: Any) -> dict | None:
    """The full state dict of the prepared ``model`` on the main process (None elsewhere), gathered by every
    process only where that is needed (:func:`needs_collective_state_dict`)."""
    if needs_collective_state_dict(accelerator):
        weights = accelerator.get_state_dict(model)
        return weights if accelerator.is_main_process else None
    return accelerator.get_state_dict(model) if accelerator.is_main_process else None


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


def match_deepspeed_gradient_clipping(accelerator: Any, max_grad_norm: float | None) -> None:
    """Under DeepSpeed make the engine clip at the recipe's ``max_grad_norm``, or refuse a config that clips
    at another norm; other set-ups are left alone.

    DeepSpeed clips the gradients itself at its config's ``gradient_clipping`` (``accelerator.clip_grad_norm_``
    does nothing under DeepSpeed). accelerate (1.15) builds that config from the accelerate config's
    ``deepspeed_config.gradient_clipping`` or a DeepSpeed JSON: an unset value becomes ``"auto"``, which
    ``Accelerator.prepare`` fills with 1.0; a key absent from a DeepSpeed JSON means no clipping. ``"auto"`` is
    set here (before ``prepare``) to the recipe's value, as transformers' Trainer does; a number that differs
    from it is refused. ``max_grad_norm`` 0 or None: no clipping (DeepSpeed's 0).
    """
    if not str(accelerator.distributed_type).endswith("DEEPSPEED"):
        return
    import math

    config = accelerator.deepspeed_plugin.deepspeed_config
    wanted = float(max_grad_norm or 0.0)
    value = config.get("gradient_clipping")
    if value == "auto":
        config["gradient_clipping"] = wanted
        return
    value = float(value or 0.0)
    if not math.isclose(value, wanted):
        raise SimCITInputError(
            f"DeepSpeed clips gradients at its gradient_clipping {value:g} (0: none), not at the recipe's "
            f"max_grad_norm {wanted:g}: set deepspeed_config.gradient_clipping to {wanted:g} (or 'auto') in the "
            f"accelerate config, or max_grad_norm to {value:g} in the recipe")


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


def gather_rng_states(accelerator: Any) -> list[dict[str, Any]]:
    """Every process's RNG state (python ``random``, numpy, torch and CUDA where present), in process order,
    on every process: what a checkpoint stores so that each process resumes its own random streams.

    A collective under several processes: every process must call it (one process: no communication).
    """
    from ..utils.serialization import rng_state

    if accelerator.num_processes == 1:
        return [rng_state()]
    from accelerate.utils import gather_object

    return gather_object([rng_state()])


def process_seed(seed: int, process_index: int) -> int:
    """A seed of its own for each process, derived from ``(seed, process_index)`` by numpy's SeedSequence.

    Why not ``seed + process_index``: process 0 would restart the exact numbers the model's initialisation drew
    after ``set_seed(seed)``, and process 1 of a run with seed 42 would draw what process 0 of a run with
    seed 43 draws.
    """
    import numpy as np

    return int(np.random.SeedSequence([seed, process_index]).generate_state(1)[0])


def seed_process_streams(accelerator: Any, seed: int) -> None:
    """Under several processes, reseed python ``random``, numpy and torch (and CUDA) on each process with
    :func:`process_seed`, so each process draws its own noise for its own rows; on one process nothing changes
    (the run stays bitwise identical to one without this call).

    Call it after everything that must be identical on every process (model initialisation) and before the
    first random draw of training (and before the first checkpoint, which stores each process's state).
    """
    if accelerator.num_processes > 1:
        from accelerate.utils import set_seed

        set_seed(process_seed(seed, accelerator.process_index))
