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
# keys that were renamed: an older recipe (or command line) still reads, with a FutureWarning. ``resume`` (a
# bool) became transformers' ``resume_from_checkpoint``, whose "true"/"false" mean what ``resume`` meant
RENAMED_KEYS = {"resume": "resume_from_checkpoint"}

__all__ = ["RECIPE_SECTIONS", "check_recipe_values", "mapping_fields", "parse_overrides", "parse_positive_ints", "read_recipe",
           "recipe_dataclasses"]


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


# ------------------------------------------------------------------------------------------ typed values
POSITIVE_SUFFIXES = ("batch_size", "num_beams", "max_history", "max_examples", "max_train_examples")  # >= 1 when set
TRUE_WORDS, FALSE_WORDS = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
# model keys naming a local folder or a Hub id: a value written as a local path (/x, ./x, ../x, ~/x) must exist
MODEL_PATH_KEYS = ("model_name_or_path", "text_encoder", "image_encoder")


def parse_positive_ints(text: Any, what: str) -> tuple[int, ...]:
    """``"5,10"`` (or ``[5, 10]``) -> ``(5, 10)``; anything else is one error naming ``what`` and the value."""
    parts = [p.strip() for p in str(text).split(",")] if not isinstance(text, (list, tuple)) else list(text)
    try:
        values = tuple(int(p) for p in parts if str(p).strip())
    except (TypeError, ValueError):
        values = ()
    if not values or any(v < 1 for v in values):
        raise SimCITInputError(f"{what} must be comma-separated positive integers (e.g. 5,10), got {text!r}")
    return values


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind)).replace("typing.", "")


def _coerce(kind: Any, value: Any, key: str, where: str) -> Any:
    """``value`` as field type ``kind`` (a string is converted the way a command line would); else one error."""
    import types
    import typing

    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = sorted((a for a in args if a is not type(None)), key=lambda a: a is str)  # "3" -> int first
        for option in options:
            try:
                return _coerce(option, value, key, where)
            except SimCITInputError:
                continue
        names = [_type_name(a) for a in options] + (["null"] if type(None) in args else [])
        raise SimCITInputError(f"{where}: {key} must be {' or '.join(names)}, got {value!r}")
    if value is None:
        raise SimCITInputError(f"{where}: {key} must be a {_type_name(kind)}, got null")
    if origin in (list, tuple) or kind in (list, tuple):
        item = args[0] if args else Any
        values = value if isinstance(value, (list, tuple)) else (
            [v for v in value.replace(",", " ").split()] if isinstance(value, str) else [value])
        return [_coerce(item, v, f"{key}[{i}]", where) for i, v in enumerate(values)]
    if origin is dict or kind is dict:
        if isinstance(value, dict):
            return value
        raise SimCITInputError(f"{where}: {key} must be a mapping, got {value!r}")
    wrong = SimCITInputError(f"{where}: {key} must be {'an' if kind is int else 'a'} {_type_name(kind)}, "
                             f"got {value!r}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in TRUE_WORDS | FALSE_WORDS:
            return word in TRUE_WORDS
        raise wrong
    if kind is int:
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, int):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise wrong from None
        if number.is_integer():
            return int(number)
        raise wrong
    if kind is float:
        if isinstance(value, bool):
            raise wrong
        try:
            return float(value)
        except (TypeError, ValueError):
            raise wrong from None
    if kind is str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (str, int, float)):
            return str(value)
        raise wrong
    return value


def check_recipe_values(types: Collection[type], values: dict[str, Any], where: str) -> dict[str, Any]:
    """The values of a recipe (any mix of keys of the dataclasses ``types``) converted to their field types.

    Why: ``HfArgumentParser.parse_dict`` checks nothing, so ``max_steps: abc`` would surface as a TypeError
    minutes later, after the stages before it ran. Unknown keys, values of the wrong type, non-positive
    batch sizes / beams / history lengths and bad ``*ks`` lists are one error naming ``where`` and the key.
    """
    import typing

    hints: dict[str, Any] = {}
    for t in types:
        hints |= {f.name: typing.get_type_hints(t).get(f.name, f.type) for f in dataclasses.fields(t)}
    values = _renamed(values, hints, where)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise SimCITInputError(f"{where}: unknown key {unknown[0]!r}")
    checked = {}
    for key, value in values.items():
        value = _coerce(hints[key], value, key, where)
        if isinstance(value, int) and not isinstance(value, bool) and key.endswith(POSITIVE_SUFFIXES) and value < 1:
            raise SimCITInputError(f"{where}: {key} must be at least 1, got {value}")
        if key.endswith("ks") and isinstance(value, (str, list)):
            parse_positive_ints(value, f"{where}: {key}")
        if key in MODEL_PATH_KEYS and isinstance(value, str) and value.startswith(("/", "./", "../", "~")) \
                and not Path(value).expanduser().exists():
            raise SimCITInputError(f"{where}: {key} {value!r} does not exist")
        checked[key] = value
    return checked


def _renamed(values: dict[str, Any], known: Collection[str], where: str) -> dict[str, Any]:
    """``values`` with the old names of :data:`RENAMED_KEYS` under their new ones; the later of the two wins (a
    command-line override comes after the recipe's keys)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        new = RENAMED_KEYS.get(key)
        if new is not None and key not in known and new in known:
            import warnings

            warnings.warn(f"{where}: {key!r} is now {new!r}", FutureWarning, stacklevel=3)
            out.pop(new, None)
            key = new
        out[key] = value
    return out


def recipe_dataclasses(types: tuple[type, ...], values: dict[str, Any], where: str) -> tuple[Any, ...]:
    """``values`` checked (:func:`check_recipe_values`) and read into one instance of each of ``types``.

    The one reader behind every stage recipe (stage commands and the pipeline), so every stage's recipe is
    checked the same way before any stage runs.
    """
    from transformers import HfArgumentParser

    checked = check_recipe_values(types, values, where)
    try:
        return tuple(HfArgumentParser(types).parse_dict(checked))
    except (TypeError, ValueError) as err:
        if isinstance(err, SimCITInputError):
            raise
        raise SimCITInputError(f"{where}: {err}") from None


def parse_overrides(argv: list[str] | None, where: str = "command line") -> dict[str, Any]:
    """``--key value``, ``--key=value``, ``--key v1 v2`` (a list) and a bare ``--flag`` (true) -> a dict of
    strings; :func:`recipe_dataclasses` converts them to the fields' types."""
    out: dict[str, Any] = {}
    key = None
    for token in argv or []:
        if token.startswith("--") and len(token) > 2:
            name, sep, value = token[2:].partition("=")
            key = name.replace("-", "_")
            out[key] = value if sep else []
            if sep:
                key = None
        elif key is None:
            raise SimCITInputError(f"{where}: unexpected argument {token!r}; overrides are --key value")
        else:
            out[key].append(token)
    return {k: ("true" if v == [] else v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in out.items()}
