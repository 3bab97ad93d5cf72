"""Reading recipe YAML files: one loader for the stage recipes, the stage commands and the pipeline.

A recipe is a mapping of argument names to values. Stage recipes may group their keys in the sections
``model:``, ``data:`` and ``training:`` (the recommender's layout); the sections are merged into one flat dict,
so sectioned and flat recipes read the same. Every problem with the file itself is one
:class:`~hf_simcit.errors.SimCITInputError` naming the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ..errors import SimCITInputError

RECIPE_SECTIONS = ("model", "data", "training")

__all__ = ["RECIPE_SECTIONS", "mapping_fields", "read_recipe"]


def read_recipe(
    path: str | os.PathLike,
    *,
    sections: Collection[str] = RECIPE_SECTIONS,
    mappings: Collection[str] = (),
    what: str = "recipe",
) -> dict[str, Any]:
    """The recipe at ``path`` as one flat dict (an empty file: ``{}``).

    The keys of each section in ``sections`` holding a mapping are merged into the top level, in file order
    (a later key wins, as with flat keys); a section name holding anything else is an ordinary key. Only the
    sections and the keys named in ``mappings`` (arguments whose value is a mapping, see
    :func:`mapping_fields`) may hold a mapping. Errors naming the file: it does not exist
    (``"<what> '<path>' does not exist"``), it is not valid YAML, it is not a mapping, another key holds a
    mapping (an unknown or misspelt section).
    """
    path = Path(path)
    if not path.is_file():
        raise SimCITInputError(f"{what} {str(path)!r} does not exist")
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SimCITInputError(f"{path}: not valid YAML ({err})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SimCITInputError(f"{path}: expected a mapping of {what} keys, got a {type(raw).__name__}")
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in sections and isinstance(value, dict):
            for name, item in value.items():
                flat[name] = _plain(path, name, item, sections, mappings)
        else:       # also a section name holding a plain value: an argument (features' and lgmd's data: PATH)
            flat[key] = _plain(path, key, value, sections, mappings)
    return flat


def _plain(path: Path, key: Any, value: Any, sections: Collection[str], mappings: Collection[str]) -> Any:
    if isinstance(value, dict) and key not in mappings:
        where = f"sections are {', '.join(sections)}" if sections else "this recipe has no sections"
        raise SimCITInputError(f"{path}: unknown section {key!r} (a key holding a mapping; {where})")
    return value


def mapping_fields(*types: type) -> set[str]:
    """Names of the dataclass fields whose type is (or may be) a mapping, e.g. ``dict | str | None``: the keys
    :func:`read_recipe` lets hold a mapping.

    Read from the class annotations as written: ``HfArgumentParser`` rewrites the fields' ``type`` in place
    (``dict | str | None`` becomes ``str``) once a parser for the class has been built.
    """
    names = set()
    for t in types:
        written = {name: annotation for cls in reversed(t.__mro__)
                   for name, annotation in getattr(cls, "__annotations__", {}).items()}
        names |= {f.name for f in dataclasses.fields(t)
                  if re.search(r"\b(dict|Dict|Mapping)\b", str(written.get(f.name, f.type)))}
    return names
