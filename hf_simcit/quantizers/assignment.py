"""``assign_semantic_ids``: quantizer + item features -> unique semantic IDs + collision statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import SimCITInputError
from .collisions import add_disambiguation_level, sinkhorn_reassign_last_level
from .residual import codebook_statistics

RESOLVE_METHODS = ("level", "sinkhorn", "none")
# how resolve="level" numbers the items inside a group of items sharing a SID
DISAMBIGUATION_ORDERS = ("index", "distance", "random")


@dataclass
class SemanticIDAssignment:
    """Result of :func:`assign_semantic_ids`.

    Attributes:
        codes: ``(n, L')`` int64 unique SIDs (``L' = L + 1`` with ``resolve="level"``, else ``L``).
        raw_codes: ``(n, L)`` codes straight from the quantizer.
        codebook_sizes: codes per level of ``codes`` (the disambiguation level's size included).
        resolve: the method used.
        raw_statistics: :func:`codebook_statistics` of ``raw_codes`` (``collision_rate`` is the raw rate).
        statistics: the same for ``codes`` (``collision_rate`` 0 unless ``resolve="none"``).
        reassigned_items: items whose SID differs from their raw code (the disambiguation level not counted).
        disambiguation_order: how ``resolve="level"`` numbered the items of a group (see :func:`resolve_collisions`).
    """

    codes: np.ndarray
    raw_codes: np.ndarray
    codebook_sizes: list[int]
    resolve: str
    raw_statistics: dict[str, Any] = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)
    reassigned_items: int = 0
    disambiguation_order: str = "index"
    disambiguation_seed: int | None = None  # the seed of a "random" order (None otherwise)

    @property
    def raw_collision_rate(self) -> float:
        return self.raw_statistics["collision_rate"]

    def summary(self) -> dict[str, Any]:
        return {
            "num_items": int(len(self.codes)),
            "resolve": self.resolve,
            "num_levels": int(self.codes.shape[1]),
            "codebook_sizes": self.codebook_sizes,
            "raw_collision_rate": self.raw_statistics["collision_rate"],
            "raw_distinct_sids": self.raw_statistics["distinct_sids"],
            "raw_max_items_per_sid": self.raw_statistics["max_items_per_sid"],
            "usage": self.raw_statistics["usage"],
            "perplexity": self.raw_statistics["perplexity"],
            "unique_share": self.statistics["unique_share"],
            "reassigned_items": self.reassigned_items,
            "disambiguation_order": self.disambiguation_order,
            "disambiguation_seed": self.disambiguation_seed,
        }


def resolve_collisions(
    raw_codes,
    codebook_sizes: list[int],
    resolve: str = "level",
    distances=None,
    existing_codes=None,
    disambiguation_size: int | None = None,
    disambiguation_order: str = "index",
    disambiguation_seed: int = 0,
) -> SemanticIDAssignment:
    """Make raw codes ``(n, L)`` unique (see :func:`assign_semantic_ids` for the arguments)."""
    if resolve not in RESOLVE_METHODS:
        raise SimCITInputError(f"resolve must be one of {RESOLVE_METHODS}, got {resolve!r}")
    if disambiguation_order not in DISAMBIGUATION_ORDERS:
        raise SimCITInputError(
            f"disambiguation_order must be one of {DISAMBIGUATION_ORDERS}, got {disambiguation_order!r}"
        )
    raw = np.asarray(raw_codes, dtype=np.int64)
    if raw.ndim != 2 or raw.shape[1] != len(codebook_sizes):
        raise SimCITInputError(f"raw codes of shape {raw.shape} do not match codebook_sizes {codebook_sizes}")
    existing = None if existing_codes is None else np.asarray(existing_codes, dtype=np.int64)
    sizes = list(codebook_sizes)
    if resolve == "level":
        codes = add_disambiguation_level(raw, existing, _disambiguation_keys(
            raw, disambiguation_order, distances, disambiguation_seed))
        needed = int(codes[:, -1].max(initial=0)) + 1
        if existing is not None and disambiguation_size is None:
            raise SimCITInputError(
                "adding items to an existing table with a disambiguation level needs its size "
                "(disambiguation_size = the tokenizer's last codebook size)"
            )
        # headroom for cold-start items: twice the largest group, and at least the last level's K
        size = disambiguation_size if disambiguation_size is not None else max(2 * needed, sizes[-1])
        if needed > size:
            raise SimCITInputError(
                f"{needed} items would share one SID but the disambiguation level has only {size} codes; "
                "retrain the quantizer, or rebuild the SIDs with a larger disambiguation_size"
            )
        sizes = [*sizes, int(size)]
        reassigned = 0
    elif resolve == "sinkhorn":
        codes = sinkhorn_reassign_last_level(raw, distances, existing, codebook_size=sizes[-1])
        reassigned = int((codes != raw).any(axis=1).sum())
    else:
        codes, reassigned = raw.copy(), 0
    return SemanticIDAssignment(
        codes=codes,
        raw_codes=raw,
        codebook_sizes=sizes,
        resolve=resolve,
        raw_statistics=codebook_statistics(raw, list(codebook_sizes)),
        statistics=codebook_statistics(codes, sizes),
        reassigned_items=reassigned,
        disambiguation_order=disambiguation_order if resolve == "level" else "index",
        disambiguation_seed=int(disambiguation_seed) if resolve == "level" and disambiguation_order == "random"
        else None,
    )


def _disambiguation_keys(raw: np.ndarray, order: str, distances, seed: int) -> np.ndarray | None:
    """Sort keys for :func:`add_disambiguation_level`: ``None`` (item order), the distance of each item to its
    own last-level codeword (nearest first), or a seeded random permutation (independent of item order)."""
    if order == "index":
        return None
    if order == "random":
        return np.random.default_rng(seed).permutation(len(raw))
    if distances is None:
        raise SimCITInputError(
            "disambiguation_order='distance' needs the items' last-level distances (a quantizer with "
            "last_level_distances, or distances=...)"
        )
    distances = np.asarray(distances, dtype=np.float64)
    if distances.ndim != 2 or distances.shape[0] != len(raw) or distances.shape[1] <= int(raw[:, -1].max(initial=0)):
        raise SimCITInputError(f"distances have shape {distances.shape}; expected ({len(raw)}, last codebook size)")
    return distances[np.arange(len(raw)), raw[:, -1]]


def assign_semantic_ids(
    quantizer,
    features: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor] | None = None,
    *,
    resolve: str = "level",
    existing_codes=None,
    disambiguation_size: int | None = None,
    disambiguation_order: str = "index",
    disambiguation_seed: int = 0,
) -> SemanticIDAssignment:
    """Encode items with a trained quantizer and make their semantic IDs unique.

    Args:
        quantizer: a :class:`~hf_simcit.modeling_simcit.SimCITQuantizer` or a baseline (anything with
            ``encode(features, masks) -> (n, L)``, ``codebook_sizes`` and, for ``"sinkhorn"``,
            ``last_level_distances(features, masks) -> (n, K)``).
        features: ``{modality: (n, d_m)}`` item features; ``masks``: ``{modality: (n,) bool}`` (True = present).
        resolve: ``"level"`` appends a disambiguation level numbering items that share a SID (TIGER);
            ``"sinkhorn"`` moves colliding items to free last-level codes of their prefix by a balanced
            Sinkhorn-Knopp assignment (LC-Rec/LETTER; keeps ``L`` levels); ``"none"`` keeps raw codes.
        existing_codes: for cold start, the SIDs ``(m, L')`` already given out (e.g. ``tokenizer.codes``): the
            new items' SIDs avoid all of them; the existing ones are not changed.
        disambiguation_size: codes of the disambiguation level (default ``max(2 * largest group, K)``, room
            for cold-start items; with
            ``existing_codes`` it must be the existing table's).
        disambiguation_order: with ``"level"``, how the items of a group are numbered: ``"index"`` (item
            order, the default; TIGER), ``"distance"`` (nearest to the group's last-level codeword first; needs
            ``last_level_distances``) or ``"random"`` (a permutation seeded by ``disambiguation_seed``). Item
            order often follows first appearance in the data, i.e. popularity, which a generator can exploit
            as "predict the group, then code 0"; the other two orders carry no such signal.

    Returns:
        :class:`SemanticIDAssignment` (``.codes`` unique ``(n, L')`` int64, ``.raw_collision_rate``, per-level
        ``usage``/``perplexity`` in ``.raw_statistics``, ``.codebook_sizes``).
    """
    sizes = list(quantizer.codebook_sizes)
    if existing_codes is not None:
        existing = np.asarray(existing_codes)
        expected = len(sizes) + (1 if resolve == "level" else 0)
        if existing.ndim != 2 or existing.shape[1] != expected:
            raise SimCITInputError(
                f"existing SIDs have shape {existing.shape}; with resolve={resolve!r} they need {expected} levels"
            )
    raw = quantizer.encode(features, masks)
    raw = raw.numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
    distances = None
    if resolve == "sinkhorn" or (resolve == "level" and disambiguation_order == "distance"):
        distances = quantizer.last_level_distances(features, masks)
        if distances is not None:
            distances = distances.numpy() if isinstance(distances, torch.Tensor) else np.asarray(distances)
    return resolve_collisions(raw, sizes, resolve, distances, existing_codes, disambiguation_size,
                              disambiguation_order, disambiguation_seed)




ASSIGNMENT_FILE = "sid_assignment.json"


def load_quantizer(directory):
    """Load a trained quantizer folder: a SimCIT model (``config.json``) or a baseline (``quantizer_config.json``)."""
    import json

    from ..safe_files import check_safe_folder

    directory = check_safe_folder(directory)   # every file is copied by assign: nothing unsafe may be there
    if (directory / "config.json").exists():
        from ..modeling_simcit import SimCITQuantizer

        return SimCITQuantizer.from_pretrained(directory).eval()
    if (directory / "quantizer_config.json").exists():
        from . import BASELINES

        kind = json.loads((directory / "quantizer_config.json").read_text())["quantizer"]
        return BASELINES[kind].from_pretrained(directory)
    raise SimCITInputError(f"{directory} holds no quantizer (no config.json or quantizer_config.json)")


def _quantizer_modalities(quantizer) -> list[str] | None:
    config = getattr(quantizer, "config", None)
    return list(config.modality_names) if config is not None else getattr(quantizer, "modalities", None)


def save_semantic_ids(
    quantizer_dir,
    items,
    resolve: str = "level",
    output_dir=None,
    disambiguation_order: str = "index",
    disambiguation_seed: int = 0,
):
    """The ``assign`` stage: trained quantizer + item table -> unique SIDs -> :class:`SimCITTokenizer`.

    The tokenizer (``sid_table.json`` + tokenizer files) and ``sid_assignment.json`` (collision statistics) are
    written INTO the quantizer folder (or a copy at ``output_dir``), atomically, so that one folder holds the
    model and its tokenizer (one Hub repo). ``items`` is a ``datasets.Dataset`` item table or a path to one.
    Returns ``(tokenizer, assignment)``.
    """
    import json
    import shutil
    from pathlib import Path

    from ..tokenization_simcit import SimCITTokenizer
    from ..utils.serialization import atomic_directory
    from .features import load_item_features

    quantizer_dir = Path(quantizer_dir)
    quantizer = load_quantizer(quantizer_dir)
    if isinstance(items, (str, Path)):
        from datasets import load_from_disk

        if not Path(items).exists():
            raise SimCITInputError(f"item table {str(items)!r} does not exist; run `hf-simcit features` first")
        items = load_from_disk(str(items))
    features = load_item_features(items, _quantizer_modalities(quantizer))
    assignment = assign_semantic_ids(quantizer, features.features, features.masks, resolve=resolve,
                                     disambiguation_order=disambiguation_order,
                                     disambiguation_seed=disambiguation_seed)
    tokenizer = SimCITTokenizer.from_codes(assignment.codes, features.item_ids, assignment.codebook_sizes)
    target = Path(output_dir) if output_dir is not None else quantizer_dir
    with atomic_directory(target) as tmp:
        for path in quantizer_dir.iterdir():
            if path.is_file():
                shutil.copy2(path, tmp / path.name)
        tokenizer.save_pretrained(tmp)
        (tmp / ASSIGNMENT_FILE).write_text(json.dumps(assignment.summary(), indent=2))
    return tokenizer, assignment


def cold_start_assignment(quantizer, tokenizer, features, masks=None, info=None) -> SemanticIDAssignment:
    """SIDs for new items that avoid every SID of ``tokenizer`` (nothing is changed or saved).

    ``info``: the folder's ``sid_assignment.json`` (how the table was built: ``resolve``,
    ``disambiguation_order``, ``disambiguation_seed``; :meth:`SemanticIDAssignment.summary`); the new items are
    resolved the same way. Used by :func:`add_cold_start_items` and by the demo app, which places a new item in
    memory.
    """
    info = info or {}
    resolve = info.get("resolve", "level")
    return assign_semantic_ids(
        quantizer, features, masks, resolve=resolve, existing_codes=tokenizer.codes.numpy(),
        disambiguation_size=tokenizer.codebook_sizes[-1] if resolve == "level" else None,
        disambiguation_order=info.get("disambiguation_order", "index"),
        disambiguation_seed=info.get("disambiguation_seed") or 0,
    )


def add_cold_start_items(quantizer_dir, features, masks=None, item_ids=None, save: bool = True):
    """Give new items SIDs from the trained quantizer without retraining, avoiding every existing SID.

    Loads the quantizer and its :class:`SimCITTokenizer` from ``quantizer_dir``, encodes the new items, resolves
    collisions against the existing table with the method the table was built with, appends them to the
    tokenizer (saved back into the folder when ``save``). Returns ``(tokenizer, assignment)``.
    """
    import json
    from pathlib import Path

    from ..tokenization_simcit import SimCITTokenizer
    from .features import check_features, check_item_ids

    quantizer_dir = Path(quantizer_dir)
    quantizer = load_quantizer(quantizer_dir)
    tokenizer = SimCITTokenizer.from_pretrained(quantizer_dir)
    info_path = quantizer_dir / ASSIGNMENT_FILE
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    features, masks = check_features(features, masks, item_ids)
    item_ids = check_item_ids(item_ids if item_ids is not None else [])
    clash = [item for item in item_ids if item in set(tokenizer.item_ids)]
    if clash:
        raise SimCITInputError(f"new item id {clash[0]!r} already has a SID in {quantizer_dir}")
    assignment = cold_start_assignment(quantizer, tokenizer, features, masks, info)
    tokenizer.add_items(assignment.codes, item_ids)
    if save:
        tokenizer.save_pretrained(quantizer_dir)
    return tokenizer, assignment


__all__ = [
    "ASSIGNMENT_FILE",
    "DISAMBIGUATION_ORDERS",
    "RESOLVE_METHODS",
    "SemanticIDAssignment",
    "add_cold_start_items",
    "assign_semantic_ids",
    "cold_start_assignment",
    "load_quantizer",
    "resolve_collisions",
    "save_semantic_ids",
]
