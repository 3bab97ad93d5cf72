"""Shared residual-quantizer pieces: k-means, residual k-means, and codebook statistics.

Why here: SimCIT (k-means initialisation), RQ-VAE (k-means initialisation) and RQ-KMeans (the whole method) use
the same few routines, and every quantizer is judged by the same statistics over the whole catalogue.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def squared_distances(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``||x_i - c_k||^2`` as ``(n, K)`` via one matrix product (faster than ``cdist`` on CPU)."""
    return ((points * points).sum(1, keepdim=True) - 2 * points @ centroids.T + (centroids * centroids).sum(1)).clamp_min(0)


def kmeans(
    points: torch.Tensor,
    num_clusters: int,
    iterations: int = 20,
    seed: int = 0,
    sample_size: int | None = 65536,
) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding; returns centroids ``(num_clusters, D)``.

    Empty clusters are re-seeded with the points farthest from their centroid, so every code is used at the
    end (when there are at least ``num_clusters`` distinct points). With fewer points than clusters the extra
    centroids are jittered copies of points.
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    n = points.shape[0]
    if n == 0:
        raise ValueError("k-means needs at least one point")
    if sample_size is not None and n > sample_size:
        points = points[torch.randperm(n, generator=generator)[:sample_size]]
        n = sample_size
    if n <= num_clusters:
        extra = points[torch.randint(n, (num_clusters - n,), generator=generator)]
        scale = points.std().clamp_min(1e-3) * 1e-2
        jitter = torch.randn(extra.shape, generator=generator) * scale
        return torch.cat([points, extra + jitter])
    # k-means++ seeding on a subsample (the full set only matters for the Lloyd steps)
    seed_points = points[torch.randperm(n, generator=generator)[: min(n, 8 * num_clusters)]]
    centroids = torch.empty(num_clusters, points.shape[1])
    centroids[0] = seed_points[0]
    closest = ((seed_points - centroids[0]) ** 2).sum(-1)
    for index in range(1, num_clusters):
        total = float(closest.sum())
        probs = closest / total if total > 0 else torch.full_like(closest, 1.0 / len(closest))
        centroids[index] = seed_points[torch.multinomial(probs, 1, generator=generator)]
        closest = torch.minimum(closest, ((seed_points - centroids[index]) ** 2).sum(-1))
    for _ in range(iterations):
        distances = squared_distances(points, centroids)
        assignment = distances.argmin(-1)
        counts = torch.bincount(assignment, minlength=num_clusters)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty, None]
        empty = (~nonempty).nonzero().flatten()
        if empty.numel():
            own = distances.gather(1, assignment[:, None]).squeeze(1)
            far = own.argsort(descending=True)[: empty.numel()]
            centroids[empty] = points[far]
    return centroids


def residual_kmeans(
    points: torch.Tensor, num_levels: int, codebook_size: int, iterations: int = 20, seed: int = 0
) -> tuple[torch.Tensor, torch.LongTensor]:
    """k-means on the residuals, level after level: codebooks ``(L, K, D)`` and codes ``(n, L)``."""
    residual = torch.as_tensor(points, dtype=torch.float32).clone()
    codebooks, codes = [], []
    for level in range(num_levels):
        centroids = kmeans(residual, codebook_size, iterations=iterations, seed=seed + level)
        level_codes = squared_distances(residual, centroids).argmin(-1)
        residual = residual - centroids[level_codes]
        codebooks.append(centroids)
        codes.append(level_codes)
    return torch.stack(codebooks), torch.stack(codes, dim=-1)


def collision_rate(codes: Any) -> float:
    """Share of items whose full code row equals at least one other item's row."""
    codes = np.asarray(codes)
    if len(codes) == 0:
        return 0.0
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return float((counts[inverse.reshape(-1)] > 1).mean())


def codebook_statistics(codes: Any, codebook_sizes: list[int]) -> dict[str, Any]:
    """Catalogue-wide quality of codes ``(n, L)``.

    Returns ``usage`` (share of the ``K_l`` codes used, per level), ``perplexity`` (``exp`` of the entropy of the
    code distribution, per level; ``K_l`` at best, for any ``K_l``), ``collision_rate`` (share of items sharing
    their SID), ``unique_share`` (``1 - collision_rate``), ``distinct_sids`` and ``max_items_per_sid``.
    """
    codes = np.asarray(codes, dtype=np.int64)
    num_items = codes.shape[0]
    usage, perplexity = [], []
    for level, size in enumerate(codebook_sizes):
        counts = np.bincount(codes[:, level], minlength=size).astype(np.float64) if num_items else np.zeros(size)
        usage.append(float((counts > 0).sum() / size))
        probs = counts[counts > 0] / max(num_items, 1)
        perplexity.append(float(math.exp(-(probs * np.log(probs)).sum())) if num_items else 0.0)
    if num_items:
        _, counts = np.unique(codes, axis=0, return_counts=True)
        distinct, biggest = int(len(counts)), int(counts.max())
    else:
        distinct, biggest = 0, 0
    rate = collision_rate(codes)
    return {
        "usage": usage,
        "perplexity": perplexity,
        "collision_rate": rate,
        "unique_share": 1.0 - rate,
        "distinct_sids": distinct,
        "max_items_per_sid": biggest,
    }


__all__ = ["squared_distances", "kmeans", "residual_kmeans", "collision_rate", "codebook_statistics"]
