"""Embedding columns of the item table: writing them (nulls where a modality is absent) and reading them back
as tensors plus a presence mask, with the input checks every consumer relies on.

A modality ``m`` lives in the column ``<m>_embedding`` (``list<float32>``). An item without that modality has a
null there, never a zero vector pretending to be data; :func:`modality_tensors` turns the nulls into a mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Dataset

from ..errors import SimCITInputError

EMBEDDING_SUFFIX = "_embedding"


def embedding_column(modality: str) -> str:
    """``"text" -> "text_embedding"`` (a name that already ends in ``_embedding`` is kept)."""
    return modality if modality.endswith(EMBEDDING_SUFFIX) else f"{modality}{EMBEDDING_SUFFIX}"


def item_label(items: Dataset | None, row: int) -> str:
    """``item 'B004756YJA' (row 3)`` for error messages; falls back to the row number."""
    if items is not None and "item_id" in items.column_names:
        return f"item {items[int(row)]['item_id']!r} (row {int(row)})"
    return f"item at row {int(row)}"


def check_embeddings(
    embeddings: np.ndarray, present: np.ndarray, name: str, items: Dataset | None = None
) -> None:
    """Raise :class:`SimCITInputError` for a wrong shape, NaN/inf in a present row, or no present row at all."""
    if embeddings.ndim != 2 or present.shape != (embeddings.shape[0],):
        raise SimCITInputError(
            f"column {name!r}: expected embeddings (n, d) and a mask (n,), got {embeddings.shape} and {present.shape}"
        )
    if items is not None and embeddings.shape[0] != len(items):
        raise SimCITInputError(
            f"column {name!r}: {embeddings.shape[0]} embeddings for an item table of {len(items)} rows"
        )
    if not present.any():
        raise SimCITInputError(
            f"column {name!r}: the modality is missing for every item; drop it from the modalities or fix its input"
        )
    finite = np.isfinite(embeddings).all(axis=1)
    bad = np.flatnonzero(present & ~finite)
    if bad.size:
        raise SimCITInputError(f"column {name!r}: {item_label(items, bad[0])} has NaN/inf values")


def add_embedding_column(
    items: Dataset,
    modality: str,
    embeddings: np.ndarray,
    present: np.ndarray,
    new_fingerprint: str | None = None,
) -> Dataset:
    """Return ``items`` with ``<modality>_embedding`` (``list<float32>``; null where ``present`` is False).

    Args:
        embeddings: ``(num_items, dim)``; rows where ``present`` is False are ignored.
        present: ``(num_items,)`` bool.
    """
    name = embedding_column(modality)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    present = np.asarray(present, dtype=bool)
    check_embeddings(embeddings, present, name, items)
    dim = embeddings.shape[1]
    lengths = np.where(present, dim, 0)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = pa.array(embeddings[present].reshape(-1), type=pa.float32())
    column = pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(~present))
    if name in items.column_names:
        items = items.remove_columns(name)
    return items.add_column(name, column, new_fingerprint=new_fingerprint)


def modality_tensors(
    items: Dataset, modalities: Sequence[str]
) -> dict[str, tuple[torch.FloatTensor, torch.BoolTensor]]:
    """Read embedding columns as tensors.

    Args:
        items: item table (row ``i`` = item index ``i``) with ``<m>_embedding`` columns.
        modalities: modality names (``"text"``) or column names (``"text_embedding"``).

    Returns:
        ``{modality: (features (num_items, d_m) float32, present (num_items,) bool)}``; ``features`` is zero
        where ``present`` is False (the mask, not the zeros, says the modality is absent).

    Raises:
        SimCITInputError: unknown column, not a list column, rows of different lengths, NaN/inf, or a modality
            missing for every item.
    """
    if not modalities:
        raise SimCITInputError("no modalities given; name at least one embedding column (e.g. text)")
    out: dict[str, tuple[torch.FloatTensor, torch.BoolTensor]] = {}
    for modality in modalities:
        name = embedding_column(modality)
        if name not in items.column_names:
            available = [c for c in items.column_names if c.endswith(EMBEDDING_SUFFIX)]
            raise SimCITInputError(
                f"unknown modality column {name!r}; the item table has {available or 'no embedding columns'} "
                "(run `hf-simcit features` with this modality)"
            )
        column = items.data.column(name).combine_chunks()
        if isinstance(column, pa.ChunkedArray):  # an empty table
            column = pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)
        if not (
            pa.types.is_list(column.type)
            or pa.types.is_large_list(column.type)
            or pa.types.is_fixed_size_list(column.type)
        ):
            raise SimCITInputError(
                f"column {name!r} has type {column.type}; expected a list of floats per item"
            )
        present = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        lengths = np.asarray(pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False))
        present_lengths = lengths[present]
        if not present.any():
            raise SimCITInputError(f"column {name!r}: the modality is missing (null) for every item")
        dim = int(present_lengths[0])
        wrong = np.flatnonzero(present & (lengths != dim))
        if dim == 0 or wrong.size:
            row = int(wrong[0]) if wrong.size else int(np.flatnonzero(present)[0])
            raise SimCITInputError(
                f"column {name!r}: {item_label(items, row)} has {int(lengths[row])} values, expected {dim} "
                "(every present item needs the same, non-zero dimension)"
            )
        values = column.flatten()
        if values.null_count:
            nulls = np.asarray(values.is_null().to_numpy(zero_copy_only=False))
            row = int(np.flatnonzero(present)[int(np.flatnonzero(nulls)[0]) // dim])
            raise SimCITInputError(f"column {name!r}: {item_label(items, row)} has a null inside its vector")
        flat = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float32)
        features = np.zeros((len(present), dim), dtype=np.float32)
        features[present] = flat.reshape(-1, dim)
        check_embeddings(features, present, name, items)
        key = modality[: -len(EMBEDDING_SUFFIX)] if modality.endswith(EMBEDDING_SUFFIX) else modality
        out[key] = (torch.from_numpy(features), torch.from_numpy(present))
    return out
