"""Random-ID baseline: each item gets uniformly random codes, a fixed function of its features (so new items
get IDs without any fitting and the same item always gets the same ID)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from .base import SemanticIDQuantizer


class RandomIDQuantizer(SemanticIDQuantizer):
    """Codes drawn uniformly from ``K`` per level, seeded by a hash of the item's feature bytes and ``seed``."""

    name = "random"

    def fit(self, features, masks=None) -> RandomIDQuantizer:
        self._inputs(features, masks, fitting=True)
        return self

    def encode(self, features, masks=None) -> torch.LongTensor:
        rows = self._inputs(features, masks, fitting=False).numpy()
        codes = np.empty((len(rows), self.num_levels), dtype=np.int64)
        salt = self.seed.to_bytes(8, "little", signed=True)
        for index, row in enumerate(rows):
            digest = hashlib.blake2b(row.tobytes(), digest_size=8 * self.num_levels, salt=salt[:8]).digest()
            words = np.frombuffer(digest, dtype=np.uint64)
            codes[index] = (words % np.uint64(self.codebook_size)).astype(np.int64)
        return torch.from_numpy(codes)
