"""The SID side of the recommender: which LLM tokens spell each item's semantic ID.

Why: the generator only needs ``item_token_ids`` (row ``i`` = the LLM token ids of item ``i``'s SID, one per
level). :class:`SIDTable` holds raw codes aligned to a data set's item order (from any SID tokenizer: SimCIT,
RQ-VAE, RQ-KMeans, random IDs, a ``.npy`` of codes) and hands the LLM side to the equivalent
``SimCITTokenizer`` (``hf_simcit.tokenization_simcit``), which is also accepted directly. Both spell level ``l`` code ``c`` as ``<{chr(ord('a') + l)}_{c}>``, e.g. ``<a_12><b_3><c_200>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import SimCITInputError
from ..tokenization_simcit import sid_token  # one spelling of SID tokens for the whole package


def sid_vocabulary(codebook_sizes: Sequence[int]) -> list[str]:
    """Every SID token string, level by level, code by code."""
    return [sid_token(level, code) for level, size in enumerate(codebook_sizes) for code in range(int(size))]


class SIDSource(Protocol):
    """What the recommender needs from a semantic-ID tokenizer (``SimCITTokenizer`` or :class:`SIDTable`)."""

    def extend_tokenizer(self, llm_tokenizer: Any) -> Any: ...

    def item_token_ids(self, llm_tokenizer: Any) -> torch.LongTensor: ...


class SIDTable:
    """Item index -> SID codes, with the two methods the recommender needs.

    Args:
        codes: ``(num_items, num_levels)`` integer array; row ``i`` is item ``i``'s SID (must be unique rows).
        item_ids: raw item ids (``str``), row-aligned with ``codes``; defaults to ``"0", "1", ...``.
        codebook_sizes: codes per level; defaults to ``codes.max(0) + 1``.
    """

    def __init__(self, codes: np.ndarray, item_ids: Sequence[str] | None = None,
                 codebook_sizes: Sequence[int] | None = None):
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[0] == 0:
            raise SimCITInputError(f"SID codes must be a non-empty (num_items, num_levels) array, got {codes.shape}")
        self.codes = codes
        self.item_ids = [str(i) for i in (item_ids if item_ids is not None else range(codes.shape[0]))]
        if len(self.item_ids) != codes.shape[0]:
            raise SimCITInputError(f"{len(self.item_ids)} item ids for {codes.shape[0]} SID rows")
        sizes = codebook_sizes if codebook_sizes is not None else (codes.max(axis=0) + 1).tolist()
        self.codebook_sizes = [int(s) for s in sizes]
        if len(self.codebook_sizes) != codes.shape[1] or (codes < 0).any() or \
                (codes >= np.asarray(self.codebook_sizes)).any():
            raise SimCITInputError(f"SID codes out of range for codebook sizes {self.codebook_sizes}")
        _, first, counts = np.unique(codes, axis=0, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = int(first[np.argmax(counts > 1)])
            raise SimCITInputError(
                f"{int((counts > 1).sum())} SIDs are shared by several items (e.g. item {self.item_ids[dup]!r});"
                " resolve collisions (disambiguation level) before training the recommender")
        self._index_of = {item: i for i, item in enumerate(self.item_ids)}
        self._sid_tokenizer = None

    @property
    def num_items(self) -> int:
        return self.codes.shape[0]

    @property
    def num_levels(self) -> int:
        return self.codes.shape[1]

    def index_of(self, item_ids: Sequence[str]) -> list[int]:
        """Raw item ids -> item indices; unknown ids raise an error that names them."""
        unknown = [i for i in item_ids if str(i) not in self._index_of]
        if unknown:
            raise SimCITInputError(f"items not in the SID table: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}")
        return [self._index_of[str(i)] for i in item_ids]

    def sid_tokenizer(self):
        """The equivalent :class:`~hf_simcit.tokenization_simcit.SimCITTokenizer` (built once)."""
        if self._sid_tokenizer is None:
            from ..tokenization_simcit import SimCITTokenizer

            self._sid_tokenizer = SimCITTokenizer.from_codes(self.codes, self.item_ids, self.codebook_sizes)
        return self._sid_tokenizer

    def extend_tokenizer(self, llm_tokenizer: Any) -> Any:
        """Add every SID token to ``llm_tokenizer`` (in place, also returned); refuse tokens it already has."""
        return self.sid_tokenizer().extend_tokenizer(llm_tokenizer)

    def item_token_ids(self, llm_tokenizer: Any) -> torch.LongTensor:
        """``(num_items, num_levels)`` LLM token ids of every item's SID (row ``i`` = item index ``i``)."""
        return self.sid_tokenizer().item_token_ids(llm_tokenizer)


def item_token_table(sid_source: SIDSource, llm_tokenizer: Any) -> torch.LongTensor:
    """``item_token_ids`` from either source, validated: 2-D, int64, rows distinct."""
    table = sid_source.item_token_ids(llm_tokenizer)
    table = torch.as_tensor(table, dtype=torch.long)
    if table.ndim != 2:
        raise SimCITInputError(f"item_token_ids must be (num_items, num_levels), got shape {tuple(table.shape)}")
    return table
