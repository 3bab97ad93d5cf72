"""Geographic modality for POIs: latitude/longitude -> unit-sphere xyz + multi-scale random Fourier features.

Why this form: raw degrees distort distances (a degree of longitude shrinks with latitude) and are nearly
constant within a city. A point on the unit sphere is distortion-free; random Fourier features of the position
(in km) at scale ``s`` have inner products that approximate ``exp(-d^2 / (2 s^2))`` for two POIs ``d`` km apart
(Rahimi & Recht), so the Euclidean distance between feature vectors grows with the true distance at every scale
from a street block to a region. All directions are drawn from a fixed seed: the same POI always gets the same
vector.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import SimCITInputError

EARTH_RADIUS_KM = 6371.0088
DEFAULT_SCALES_KM = (0.25, 1.0, 4.0, 16.0, 64.0)


def lat_lon_to_xyz(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Degrees -> points on the unit sphere, ``(n, 3)``."""
    lat, lon = np.radians(latitude), np.radians(longitude)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)


def geo_feature_dim(num_scales: int, num_frequencies: int) -> int:
    return 3 + 2 * num_scales * num_frequencies


def _coordinates(
    values: Sequence[object], name: str, low: float, high: float, item_ids
) -> tuple[np.ndarray, np.ndarray]:
    present = np.array([value is not None for value in values], dtype=bool)
    out = np.zeros(len(values), dtype=np.float64)
    for row in np.flatnonzero(present):
        value = values[row]
        label = f"item {item_ids[row]!r} (row {row})" if item_ids is not None else f"row {row}"
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SimCITInputError(f"column {name!r}: {label} has non-numeric value {value!r}") from None
        if not np.isfinite(number):
            raise SimCITInputError(f"column {name!r}: {label} is {number}; use null for an unknown position")
        if not low <= number <= high:
            raise SimCITInputError(f"column {name!r}: {label} is {number}, outside [{low:g}, {high:g}]")
        out[row] = number
    return out, present


def geo_features(
    latitude: Sequence[float | None],
    longitude: Sequence[float | None],
    *,
    scales_km: Sequence[float] = DEFAULT_SCALES_KM,
    num_frequencies: int = 32,
    xyz_weight: float = 1.0,
    seed: int = 0,
    item_ids: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features of POI positions.

    Args:
        latitude, longitude: degrees, one per item; None where unknown (both must be known).
        scales_km: length scales of the Fourier blocks.
        num_frequencies: random directions per scale (each gives a cos and a sin).

    Returns:
        ``embeddings`` ``(num_items, 3 + 2 * len(scales_km) * num_frequencies)`` float32, unit norm where
        present, zero elsewhere, and ``present`` ``(num_items,)`` bool.
    """
    if len(latitude) != len(longitude):
        raise SimCITInputError(f"{len(latitude)} latitudes but {len(longitude)} longitudes")
    if not scales_km or any(float(s) <= 0 for s in scales_km):
        raise SimCITInputError(f"geo scales_km must be positive numbers, got {list(scales_km)}")
    if num_frequencies < 1:
        raise SimCITInputError(f"geo num_frequencies must be positive, got {num_frequencies}")
    lat, lat_present = _coordinates(latitude, "latitude", -90.0, 90.0, item_ids)
    lon, lon_present = _coordinates(longitude, "longitude", -180.0, 180.0, item_ids)
    present = lat_present & lon_present
    xyz = lat_lon_to_xyz(lat, lon)  # (n, 3)
    position_km = xyz * EARTH_RADIUS_KM

    rng = np.random.default_rng(seed)
    blocks = [xyz * xyz_weight]
    for scale in scales_km:
        directions = rng.standard_normal((3, num_frequencies))  # (3, F)
        phase = position_km @ directions / float(scale)  # (n, F)
        block = np.concatenate([np.cos(phase), np.sin(phase)], axis=1) / np.sqrt(
            num_frequencies * len(scales_km)
        )
        blocks.append(block)
    features = np.concatenate(blocks, axis=1)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    features[~present] = 0.0
    return features.astype(np.float32), present
