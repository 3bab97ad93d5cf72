"""Where the benchmarks' figures go, said once: the machine-readable figures to ``benchmarks/results/<name>.json``,
the table and the command that made it as one section appended to ``benchmarks/RESULTS.md``.

The scripts in ``benchmarks/`` import it as ``import reporting`` (their folder is on ``sys.path`` when they run
as ``python benchmarks/<name>.py``, and the tests' ``benchmark_module`` puts it there too)."""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
RESULTS_DIR = ROOT / "benchmarks" / "results"


def results_path(name: str) -> Path:
    """``benchmarks/results/<name>.json``."""
    return RESULTS_DIR / f"{name}.json"


def write_json(name_or_path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as JSON indented by two spaces with a final newline, to ``results_path(name)`` for a
    name (a ``str``) or to the ``Path`` given; its folder is made if missing. Returns the path written."""
    path = name_or_path if isinstance(name_or_path, Path) else results_path(name_or_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def update_json(name_or_path: str | Path, update: Callable[[Any], Any]) -> Path:
    """Read, change and write a results file that other runs may change at the same time (one benchmark's rows
    split over processes, each joining the file when it ends): ``update(current or None) -> payload`` runs under
    an exclusive lock, so that no run's rows are lost to another's write. A damaged file is one input error."""
    from filelock import FileLock

    from hf_simcit.utils.serialization import read_json

    path = name_or_path if isinstance(name_or_path, Path) else results_path(name_or_path)
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]   # one lock per file, outside the tree
    with FileLock(Path(tempfile.gettempdir()) / f"hf_simcit-results-{key}.lock"):
        return write_json(path, update(read_json(path)))


def append_results(text: str, path: str | Path | None = None) -> None:
    """Append ``text`` (a whole section) to ``path`` (default RESULTS.md) in one write: other runs append to
    the same file."""
    with open(RESULTS_MD if path is None else path, "a", encoding="utf-8") as handle:
        handle.write(text)


def command_line(program: str, argv: list[str] | None = None) -> str:
    """The command a RESULTS section quotes: ``program`` then ``argv`` (default ``sys.argv[1:]``), space-separated."""
    return " ".join([program, *(sys.argv[1:] if argv is None else argv)])


def utc_minute(when: datetime | None = None) -> str:
    """``when`` (default now) as ``YYYY-MM-DD HH:MM UTC``, the stamp of a RESULTS section's heading or date."""
    return f"{when or datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"


def utc_iso(when: datetime | None = None) -> str:
    """``when`` (default now) as ``YYYY-MM-DDTHH:MM:SSZ``, the ``date`` of a results JSON."""
    return f"{when or datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
