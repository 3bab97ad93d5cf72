"""benchmarks/reporting.py: the command line every RESULTS section and results JSON quotes."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import benchmark_module

ROOT = Path(__file__).resolve().parents[1]


def test_command_line_quotes_the_given_arguments_and_only_them(monkeypatch):
    reporting = benchmark_module("reporting")
    monkeypatch.setattr(sys, "argv", ["pytest", "-q", "tests"])
    # called from code with an explicit, empty argument list: never the test runner's own arguments
    assert reporting.command_line("python benchmarks/quantizers.py", []) == "python benchmarks/quantizers.py"
    assert reporting.command_line("python b.py", ["--seed", "1"]) == "python b.py --seed 1"
    assert reporting.command_line("python b.py") == "python b.py -q tests"     # from the shell: sys.argv


def test_update_json_loses_no_update_of_processes_writing_the_same_file_at_once(tmp_path):
    """Two processes, started together, each add 30 keys to one results file, read-change-write every time: all
    60 are there (without the lock, a write made between another process's read and write drops that one's keys)."""
    import json
    import subprocess
    import time

    path, go = tmp_path / "rows.json", tmp_path / "go"
    script = ("import sys, time; sys.path.insert(0, 'benchmarks'); from pathlib import Path; import reporting\n"
              f"path, go = Path({str(path)!r}), Path({str(go)!r})\n"
              "reporting.update_json(path.with_name(sys.argv[1] + '.json'), lambda cur: {})   # imports done\n"
              "path.with_name(sys.argv[1] + '.ready').touch()\n"
              "while not go.exists():\n"
              "    time.sleep(0.01)\n"
              "for i in range(30):\n"
              "    def add(cur, i=i):\n"
              "        time.sleep(0.01)   # the window between the read and the write\n"
              "        return (cur or {}) | {f'{sys.argv[1]}-{i}': i}\n"
              "    reporting.update_json(path, add)\n")
    runs = [subprocess.Popen([sys.executable, "-c", script, name], cwd=str(ROOT), stderr=subprocess.PIPE, text=True)
            for name in ("a", "b")]
    deadline = time.time() + 120
    while not all((tmp_path / f"{name}.ready").exists() for name in ("a", "b")) and time.time() < deadline:
        time.sleep(0.05)
    go.touch()
    for run in runs:
        assert run.wait(timeout=120) == 0, run.stderr.read()
    assert len(json.loads(path.read_text())) == 60


def test_update_json_names_a_damaged_file_in_one_line(tmp_path):
    import pytest

    from hf_simcit.errors import SimCITInputError

    reporting = benchmark_module("reporting")
    path = tmp_path / "rows.json"
    path.write_text('{"rows": [1, 2')
    with pytest.raises(SimCITInputError, match=r"rows.json:1: not valid JSON"):
        reporting.update_json(path, lambda current: current)
    assert path.read_text() == '{"rows": [1, 2'      # nothing written
