"""RQ-KMeans baseline: residual k-means on the (concatenated) item features, no gradient training."""

from __future__ import annotations

import torch

from .base import SemanticIDQuantizer
from .residual import residual_kmeans, squared_distances


class RQKMeansQuantizer(SemanticIDQuantizer):
    """``L`` levels of k-means on residuals; codes are the nearest centroid at each level."""

    name = "rqkmeans"

    def __init__(self, num_levels: int = 3, codebook_size: int = 256, seed: int = 0, iterations: int = 20):
        super().__init__(num_levels, codebook_size, seed)
        self.iterations = int(iterations)
        self.codebooks: torch.Tensor | None = None

    def fit(self, features, masks=None) -> RQKMeansQuantizer:
        points = self._inputs(features, masks, fitting=True)
        self.codebooks, _ = residual_kmeans(points, self.num_levels, self.codebook_size, self.iterations, self.seed)
        return self

    def _walk(self, features, masks) -> tuple[torch.LongTensor, torch.FloatTensor]:
        residual = self._inputs(features, masks, fitting=False)
        codes, distances = [], None
        for codebook in self.codebooks:
            distances = squared_distances(residual, codebook)
            level_codes = distances.argmin(-1)
            residual = residual - codebook[level_codes]
            codes.append(level_codes)
        return torch.stack(codes, dim=-1), distances

    def encode(self, features, masks=None) -> torch.LongTensor:
        return self._walk(features, masks)[0]

    def last_level_distances(self, features, masks=None) -> torch.FloatTensor:
        return self._walk(features, masks)[1]

    def _config(self):
        return {**super()._config(), "iterations": self.iterations}

    def _state(self):
        return {"codebooks": self.codebooks}

    def _load_state(self, state):
        self.codebooks = state["codebooks"]
