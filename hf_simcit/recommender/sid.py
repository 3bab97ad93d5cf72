"""The SID side of the recommender: which LLM tokens spell each item's semantic ID.

Why: the generator only needs ``item_token_ids`` (row ``i`` = the LLM token ids of item ``i``'s SID, one per
level). The one SID source is :class:`~hf_simcit.tokenization_simcit.SimCITTokenizer`: SIDs from any tokenizer
(SimCIT, RQ-VAE, RQ-KMeans, random IDs, a ``.npy`` of codes) become one with ``SimCITTokenizer.from_codes``,
and ``SimCITTokenizer.aligned_to(item_ids)`` puts its rows in a data set's item order. Level ``l`` code ``c``
is spelled ``<{chr(ord('a') + l)}_{c}>``, e.g. ``<a_12><b_3><c_200>``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from ..errors import SimCITInputError


class SIDSource(Protocol):
    """What the recommender needs from a semantic-ID tokenizer (``SimCITTokenizer`` has both)."""

    def extend_tokenizer(self, llm_tokenizer: Any) -> Any: ...

    def item_token_ids(self, llm_tokenizer: Any) -> torch.LongTensor: ...


def item_token_table(sid_source: SIDSource, llm_tokenizer: Any) -> torch.LongTensor:
    """``item_token_ids`` of the SID source, validated: 2-D, int64."""
    table = sid_source.item_token_ids(llm_tokenizer)
    table = torch.as_tensor(table, dtype=torch.long)
    if table.ndim != 2:
        raise SimCITInputError(f"item_token_ids must be (num_items, num_levels), got shape {tuple(table.shape)}")
    return table
