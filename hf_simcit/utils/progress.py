"""Progress bars of the Hugging Face libraries, off for one block and restored after it.

Why one helper: ``datasets`` and ``transformers`` each keep a process-wide switch; a library call that turns it
off must put it back as it found it (also after an error), or every later caller loses its bars.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


def _switch(library: str) -> tuple[Callable[[], bool], Callable[[], None], Callable[[], None]]:
    """``(is_enabled, disable, enable)`` of ``library``'s progress bars."""
    if library == "datasets":
        import datasets

        return datasets.is_progress_bar_enabled, datasets.disable_progress_bars, datasets.enable_progress_bars
    if library == "transformers":
        from transformers.utils import logging

        return logging.is_progress_bar_enabled, logging.disable_progress_bar, logging.enable_progress_bar
    raise ValueError(f"no progress-bar switch for {library!r}; use 'datasets' or 'transformers'")


@contextlib.contextmanager
def progress_bars_off(library: str) -> Iterator[None]:
    """Turn ``library``'s (``"datasets"`` or ``"transformers"``) progress bars off inside the block only."""
    is_enabled, disable, enable = _switch(library)
    enabled = is_enabled()
    disable()
    try:
        yield
    finally:
        if enabled:
            enable()


__all__ = ["progress_bars_off"]
