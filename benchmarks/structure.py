"""How many places hold each concept in ``hf_simcit`` (issue "One place per concept"), counted from the code.

Why: the consolidation is only real if the counts say so; each count is an AST rule over the package source,
printed with the places it found so a reader can check it.

- ``decoders_in_package``: public functions named ``*beam_search`` (a decoder implementation).
- ``metric_implementations``: functions that compute the NDCG discount themselves (a ``log2`` call).
- ``sid_classes``: concrete classes that are a SID source (define ``extend_tokenizer`` and ``item_token_ids``).
- ``left_padders``: functions that left-pad token rows (write a row into ``[..., width - len(row):]``): the
  recommender's prompt padders and SASRec's history encoder.
- ``stage_tables``: literals that list five or more pipeline stage names (as strings, dict keys or the first
  argument of a call): the pipeline's stage table(s), and the CLI's command table, which shares the names.
- ``constant_copies``: module-level tuples of strings defined again, with the same value, in another module.
- ``checkpoint_managers``: classes (counted once) or free functions that delete checkpoint folders: they call
  ``rmtree`` and name a checkpoint (a string, name or attribute containing "checkpoint").
- ``duplicates_pairs``: the pair count the ``duplicates`` command prints for ``hf_simcit``.

Writes ``benchmarks/results/structure.json`` and appends a table to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import reporting

ROOT = reporting.ROOT
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


STAGE_NAMES = {"prepare", "features", "lgmd", "quantizer", "assign", "recommender", "evaluate", "baselines",
               "report", "push"}


def _left_pads(function: ast.AST) -> bool:
    """Whether ``function`` assigns into ``x[..., width - len(row):]`` (a row right-aligned: left padding)."""
    for node in ast.walk(function):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if not isinstance(target, ast.Subscript):
                continue
            parts = target.slice.elts if isinstance(target.slice, ast.Tuple) else [target.slice]
            for part in parts:
                lower = part.lower if isinstance(part, ast.Slice) else None
                if (isinstance(lower, ast.BinOp) and isinstance(lower.op, ast.Sub)
                        and isinstance(lower.right, ast.Call) and getattr(lower.right.func, "id", "") == "len"):
                    return True
    return False


def _stage_names(node: ast.AST) -> set[str]:
    """Stage names a literal lists: string elements or keys, or the first string argument of call elements."""
    elements = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", [])
    names = set()
    for element in elements:
        if isinstance(element, ast.Call) and element.args:
            element = element.args[0]
        if isinstance(element, ast.Constant) and element.value in STAGE_NAMES:
            names.add(element.value)
    return names


def _string_tuples(tree: ast.Module) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Module-level ``NAME = ("a", "b", ...)`` assignments (two strings or more)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple) and len(node.value.elts) > 1 and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.value.elts):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield target.id, tuple(e.value for e in node.value.elts)


def _rotates_checkpoints(function: ast.AST) -> bool:
    """Whether ``function`` deletes folders (``rmtree``) and names a checkpoint: a checkpoint rotation."""
    if "rmtree" not in _called_names(function):
        return False
    for node in ast.walk(function):
        text = (node.value if isinstance(node, ast.Constant) and isinstance(node.value, str)
                else node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else "")
        if "checkpoint" in text.lower():
            return True
    return False


def count_places(package: Path = PACKAGE) -> dict[str, list[str]]:
    """Each concept -> the ``module:name`` places that implement it."""
    places: dict[str, list[str]] = {"decoders_in_package": [], "metric_implementations": [], "sid_classes": [],
                                    "left_padders": [], "stage_tables": [], "constant_copies": [],
                                    "checkpoint_managers": []}
    first_definition: dict[tuple[str, ...], str] = {}
    for module, tree in _modules(package):
        for name, value in _string_tuples(tree):
            if value in first_definition and not first_definition[value].startswith(f"{module}:"):
                places["constant_copies"].append(f"{module}:{name} (= {first_definition[value]})")
            first_definition.setdefault(value, f"{module}:{name}")
        in_classes = {id(item) for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef) for item in ast.walk(cls)
                      if item is not cls}
        for node in ast.walk(tree):
            # a class that rotates counts once, for whichever of its methods do it
            rotating_class = isinstance(node, ast.ClassDef) and any(
                _rotates_checkpoints(item) for item in node.body if isinstance(item, ast.FunctionDef))
            if rotating_class or (isinstance(node, ast.FunctionDef) and id(node) not in in_classes
                                  and _rotates_checkpoints(node)):
                places["checkpoint_managers"].append(f"{module}:{node.name}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name.endswith("beam_search") and not node.name.startswith("_"):
                    places["decoders_in_package"].append(f"{module}:{node.name}")
                if "log2" in _called_names(node):
                    places["metric_implementations"].append(f"{module}:{node.name}")
                if _left_pads(node):
                    places["left_padders"].append(f"{module}:{node.name}")
            elif isinstance(node, ast.ClassDef) and not _is_protocol(node):
                methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
                if {"extend_tokenizer", "item_token_ids"} <= methods:
                    places["sid_classes"].append(f"{module}:{node.name}")
            elif isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)) and len(_stage_names(node)) >= 5:
                places["stage_tables"].append(f"{module}:{node.lineno}")
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
    parser.add_argument("--package", default=str(PACKAGE), help="the package folder to count (e.g. an older "
                        "commit's: git archive REV hf_simcit | tar -x -C /tmp/old)")
    parser.add_argument("--output", default=str(reporting.results_path("structure")),
                        help="'' writes no JSON")
    parser.add_argument("--results-md", default=str(reporting.RESULTS_MD), help="'' appends nothing")
    args = parser.parse_args(argv)

    package = Path(args.package)
    places = count_places(package)
    counts = {name: len(found) for name, found in places.items()}
    counts["duplicates_pairs"] = duplicates_pairs(package)
    if args.output:
        reporting.write_json(Path(args.output), counts)

    rows = ["| concept | count | places |", "| --- | ---: | --- |"]
    rows += [f"| {name} | {counts[name]} | {', '.join(f'`{p}`' for p in places.get(name, [])) or '-'} |"
             for name in counts]
    table = "\n".join(rows)
    print(table)
    if not args.results_md:
        return counts
    reporting.append_results(f"\n## Package structure: one place per concept ({reporting.utc_minute()})\n\n"
                             f"Command: `{COMMAND}` (writes `benchmarks/results/structure.json`)\n\n{table}\n",
                             args.results_md)
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
