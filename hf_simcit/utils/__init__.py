"""Small shared helpers: atomic artifact writes, pickle-free training-state checkpoints, recipe files."""

from .recipes import read_recipe
from .serialization import (
    atomic_directory,
    latest_checkpoint,
    load_training_state,
    save_training_state,
)

__all__ = ["atomic_directory", "latest_checkpoint", "load_training_state", "read_recipe", "save_training_state"]
