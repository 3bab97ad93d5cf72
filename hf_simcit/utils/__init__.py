"""Small shared helpers: atomic artifact writes, pickle-free training-state checkpoints, recipe files.

Finding, rotating and resuming checkpoints: :mod:`hf_simcit.training.checkpointing`."""

from .recipes import read_recipe
from .serialization import (
    atomic_directory,
    load_training_state,
    save_training_state,
)

__all__ = ["atomic_directory", "load_training_state", "read_recipe", "save_training_state"]
