"""How many places hold each concept in ``hf_simcit`` (issue "One place per concept"), counted from the code.

Why: the consolidation is only real if the counts say so; each count is an AST rule over the package source,
printed with the places it found so a reader can check it.

- ``decoders_in_package``: public functions named ``*beam_search`` (a decoder implementation).
- ``metric_implementations``: functions that compute the NDCG discount themselves (a ``log2`` call).
- ``sid_classes``: concrete classes that are a SID source (define ``extend_tokenizer`` and ``item_token_ids``).
- ``duplicates_pairs``: the pair count the ``duplicates`` command prints for ``hf_simcit``.

Writes ``benchmarks/results/structure.json`` and appends a table to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hf_simcit"
COMMAND = "python benchmarks/structure.py"


def _modules(package: Path) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(package.rglob("*.py")):
        yield str(path.relative_to(package.parent)), ast.parse(path.read_text(), filename=str(path))


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def _is_protocol(cls: ast.ClassDef) -> bool:
    return any((base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")) == "Protocol"
               for base in cls.bases)


def count_places(package: Path = PACKAGE) -> dict[str, list[str]]:
    """Each concept -> the ``module:name`` places that implement it."""
    places: dict[str, list[str]] = {"decoders_in_package": [], "metric_implementations": [], "sid_classes": []}
    for module, tree in _modules(package):
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name.endswith("beam_search") and not node.name.startswith("_"):
                    places["decoders_in_package"].append(f"{module}:{node.name}")
                if "log2" in _called_names(node):
                    places["metric_implementations"].append(f"{module}:{node.name}")
            elif isinstance(node, ast.ClassDef) and not _is_protocol(node):
                methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
                if {"extend_tokenizer", "item_token_ids"} <= methods:
                    places["sid_classes"].append(f"{module}:{node.name}")
    return places


def duplicates_pairs(package: Path = PACKAGE, seconds: int = 120) -> int:
    """The ``N pairs of places`` figure of ``duplicates`` run in the package folder."""
    out = subprocess.run(["duplicates", "--seconds", str(seconds)], cwd=package, capture_output=True, text=True,
                         check=True).stdout
    found = re.search(r"^(\d+) pairs? of places", out, flags=re.M)
    if found:
        return int(found.group(1))
    if re.search(r"^no pairs", out, flags=re.M | re.I):
        return 0
    raise RuntimeError(f"could not read the pair count from duplicates' output:\n{out[:2000]}")


def main(argv: list[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "structure.json"))
    parser.add_argument("--results-md", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = parser.parse_args(argv)

    places = count_places()
    counts = {name: len(found) for name, found in places.items()}
    counts["duplicates_pairs"] = duplicates_pairs()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(counts, indent=2) + "\n")

    rows = ["| concept | count | places |", "| --- | ---: | --- |"]
    rows += [f"| {name} | {counts[name]} | {', '.join(f'`{p}`' for p in places.get(name, [])) or '-'} |"
             for name in counts]
    table = "\n".join(rows)
    print(table)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open(args.results_md, "a") as md:
        md.write(f"\n## Package structure: one place per concept ({stamp})\n\nCommand: `{COMMAND}` "
                 f"(writes `benchmarks/results/structure.json`)\n\n{table}\n")
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
