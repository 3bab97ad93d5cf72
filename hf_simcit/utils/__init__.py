"""Small shared helpers: atomic artifact writes and pickle-free training-state checkpoints."""

from .serialization import (
    atomic_directory,
    latest_checkpoint,
    load_training_state,
    save_training_state,
)

__all__ = ["atomic_directory", "latest_checkpoint", "load_training_state", "save_training_state"]
