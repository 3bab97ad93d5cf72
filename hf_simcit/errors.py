"""User-facing errors.

Every problem caused by the user's input (a file, a column, an item id, a config value) raises
:class:`SimCITInputError` with a one-line message that names the culprit. The CLI prints that line and
exits non-zero instead of showing a traceback; library users can catch it like any ``ValueError``.
"""

from __future__ import annotations


class SimCITInputError(ValueError):
    """Bad input from the user: the message says what is wrong and where (file, line, column, item)."""


def where(path: object, line: int | None = None) -> str:
    """Format a ``file:line`` location for error messages."""
    return f"{path}:{line}" if line is not None else str(path)
