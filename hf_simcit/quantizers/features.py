"""Item features for quantizers: the ``<modality>_embedding`` columns of an item table as tensors + masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import SimCITInputError

EMBEDDING_SUFFIX = "_embedding"


@dataclass
class ItemFeatures:
    """``features[m]``: ``(n, d_m)`` float32 (zeros where absent); ``masks[m]``: ``(n,)`` bool; ``item_ids``: ``n``."""

    features: dict[str, torch.FloatTensor]
    masks: dict[str, torch.BoolTensor]
    item_ids: list[str]

    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    @property
    def dims(self) -> list[int]:
        return [int(x.shape[1]) for x in self.features.values()]

    def __len__(self) -> int:
        return len(self.item_ids)

    def select(self, modalities: Sequence[str]) -> ItemFeatures:
        """The same items with only ``modalities``, in that order; a modality they lack is one clear error."""
        missing = [m for m in modalities if m not in self.features]
        if missing:
            raise SimCITInputError(f"features lack modality {missing[0]!r} (column {missing[0]}{EMBEDDING_SUFFIX})")
        return ItemFeatures({m: self.features[m] for m in modalities}, {m: self.masks[m] for m in modalities},
                            self.item_ids)

    def subset(self, rows: torch.LongTensor) -> ItemFeatures:
        rows = torch.as_tensor(rows, dtype=torch.long)
        return ItemFeatures(
            {m: x[rows] for m, x in self.features.items()},
            {m: x[rows] for m, x in self.masks.items()},
            [self.item_ids[int(i)] for i in rows],
        )


def check_item_ids(item_ids: Sequence) -> list[str]:
    """Item ids as strings; duplicates raise naming both rows."""
    seen: dict[str, int] = {}
    out = []
    for row, item in enumerate(item_ids):
        item = str(item)
        if item in seen:
            raise SimCITInputError(
                f"duplicate item id {item!r} in column item_id (rows {seen[item]} and {row}); item ids must be unique"
            )
        seen[item] = row
        out.append(item)
    return out


def read_item_table(path: str, field_name: str = "features_path"):
    """The item table saved at ``path`` (``hf-simcit features`` output); one clear line if it is not there."""
    from pathlib import Path

    from datasets import load_from_disk

    if not Path(path).exists():
        raise SimCITInputError(f"{field_name} {str(path)!r} does not exist; run `hf-simcit features` first")
    items = load_from_disk(str(path))
    if hasattr(items, "keys"):  # a DatasetDict saved by mistake: take its only split
        items = items[next(iter(items.keys()))]
    return items


def load_item_features(items, modalities: Sequence[str] | None = None) -> ItemFeatures:
    """Read an item table (``datasets.Dataset``, row ``i`` = item index ``i``) into :class:`ItemFeatures`.

    ``modalities=None`` takes every ``<m>_embedding`` column. Raises :class:`SimCITInputError` for unknown
    columns, ragged or non-finite vectors, a modality missing for every item, an item with no modality at all,
    and duplicate item ids.
    """
    from ..features import modality_tensors

    if modalities is None:
        modalities = [c[: -len(EMBEDDING_SUFFIX)] for c in items.column_names if c.endswith(EMBEDDING_SUFFIX)]
        if not modalities:
            raise SimCITInputError(
                f"the item table has no <modality>_embedding column (columns: {items.column_names}); "
                "run `hf-simcit features` first"
            )
    if "item_id" not in items.column_names:
        raise SimCITInputError(f"the item table has no item_id column (columns: {items.column_names})")
    item_ids = check_item_ids(items["item_id"])
    tensors = modality_tensors(items, list(modalities))
    features = {m: x for m, (x, _) in tensors.items()}
    masks = {m: mask for m, (_, mask) in tensors.items()}
    check_features(features, masks, item_ids)
    return ItemFeatures(features, masks, item_ids)


def check_features(
    features: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor] | None = None,
    item_ids: Sequence[str] | None = None,
    expected_dims: dict[str, int] | None = None,
) -> tuple[dict[str, torch.FloatTensor], dict[str, torch.BoolTensor]]:
    """Validate in-memory features: same row count, right sizes, finite where present, no modality absent
    everywhere, no item without any modality. Returns float32 features and bool masks (all True if omitted)."""
    if not features:
        raise SimCITInputError("no item features given; name at least one modality (e.g. text)")

    def label(row: int) -> str:
        return f"item {item_ids[row]!r} (row {row})" if item_ids is not None else f"item at row {row}"

    out_features, out_masks = {}, {}
    num_items = None
    for name, values in features.items():
        column = f"{name}{EMBEDDING_SUFFIX}"
        values = torch.as_tensor(values, dtype=torch.float32)
        if values.dim() != 2:
            raise SimCITInputError(f"column {column!r}: expected (num_items, dim), got shape {tuple(values.shape)}")
        if num_items is None:
            num_items = values.shape[0]
        elif values.shape[0] != num_items:
            raise SimCITInputError(f"column {column!r} has {values.shape[0]} rows, other modalities {num_items}")
        if expected_dims is not None and name in expected_dims and values.shape[1] != expected_dims[name]:
            raise SimCITInputError(
                f"column {column!r} has {values.shape[1]} values per item; the quantizer expects "
                f"{expected_dims[name]}"
            )
        mask = None if masks is None else masks.get(name)
        mask = torch.ones(num_items, dtype=torch.bool) if mask is None else torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape != (num_items,):
            raise SimCITInputError(f"mask of column {column!r} has shape {tuple(mask.shape)}, expected ({num_items},)")
        if num_items and not bool(mask.any()):
            raise SimCITInputError(
                f"column {column!r}: the modality is missing for every item; drop it from the modalities"
            )
        bad = (mask & ~torch.isfinite(values).all(dim=1)).nonzero().flatten()
        if bad.numel():
            raise SimCITInputError(f"column {column!r}: {label(int(bad[0]))} has NaN/inf values")
        out_features[name] = torch.where(mask[:, None], values, torch.zeros_like(values))
        out_masks[name] = mask
    if item_ids is not None and len(item_ids) != num_items:
        raise SimCITInputError(f"{len(item_ids)} item ids for {num_items} feature rows")
    orphans = (~torch.stack(list(out_masks.values()), 1).any(1)).nonzero().flatten()
    if orphans.numel():
        raise SimCITInputError(f"{label(int(orphans[0]))} has none of the modalities {list(features)}")
    return out_features, out_masks


__all__ = ["ItemFeatures", "load_item_features", "read_item_table", "check_features", "check_item_ids"]
