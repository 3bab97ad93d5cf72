"""benchmarks/reporting.py: the command line every RESULTS section and results JSON quotes."""

from __future__ import annotations

import sys

from conftest import benchmark_module


def test_command_line_quotes_the_given_arguments_and_only_them(monkeypatch):
    reporting = benchmark_module("reporting")
    monkeypatch.setattr(sys, "argv", ["pytest", "-q", "tests"])
    # called from code with an explicit, empty argument list: never the test runner's own arguments
    assert reporting.command_line("python benchmarks/quantizers.py", []) == "python benchmarks/quantizers.py"
    assert reporting.command_line("python b.py", ["--seed", "1"]) == "python b.py --seed 1"
    assert reporting.command_line("python b.py") == "python b.py -q tests"     # from the shell: sys.argv
