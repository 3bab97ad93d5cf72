"""Two non-learned baselines on exactly the generator's splits: the user's own history, and global popularity.

Why: where users come back to the same items (check-ins: 60% of Foursquare NYC test targets are already in
the user's 20-item history), "recommend what the user did most often" is a strong ranking that needs no
training, and a model can look good by learning to copy. Next to the learned rows these two show how much of
a score is repeat consumption (``history``) and how much is the popularity skew (``popularity``).

- ``popularity``: the training split's most frequent targets, the same list for every user.
- ``history``: the items of the user's history by how often they occur there, ties broken by recency (most
  recent first), then the most popular training items not in the history until the list is full.

Both rank the full catalogue (distinct, valid items) and are scored with the generators' metric code
(:func:`hf_simcit.metrics.ranking_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import SimCITInputError

METHODS = ("history", "popularity")


def item_popularity(targets: Sequence[int], num_items: int) -> np.ndarray:
    """``(num_items,)`` int64 counts: how often each item is a target of the training split (every training
    example once, so repeat interactions count each time; validation and test targets never enter)."""
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if num_items < 1:
        raise SimCITInputError(f"num_items must be >= 1, got {num_items}")
    bad = targets[(targets < 0) | (targets >= num_items)]
    if bad.size:
        raise SimCITInputError(f"training target(s) {bad[:5].tolist()} outside 0..{num_items - 1}")
    return np.bincount(targets, minlength=num_items)


def popularity_order(popularity: np.ndarray) -> np.ndarray:
    """Item indices, most popular first; equal counts in item order (lower index first)."""
    popularity = np.asarray(popularity)
    if popularity.ndim != 1 or popularity.size == 0:
        raise SimCITInputError(f"popularity must be a non-empty 1-d array of counts, got shape {popularity.shape}")
    return np.argsort(-popularity, kind="stable")


def history_order(history: Sequence[int]) -> list[int]:
    """The distinct items of ``history`` (oldest first) by count, ties by last occurrence, most recent first."""
    count: dict[int, int] = {}
    last: dict[int, int] = {}
    for position, item in enumerate(history):
        item = int(item)
        count[item] = count.get(item, 0) + 1
        last[item] = position
    return sorted(count, key=lambda i: (-count[i], -last[i]))


def _check_histories(histories: Sequence[Sequence[int]], num_items: int) -> None:
    for row, history in enumerate(histories):
        bad = [int(i) for i in history if not 0 <= int(i) < num_items]
        if bad:
            raise SimCITInputError(f"row {row}: item index(es) {bad[:5]} outside 0..{num_items - 1}")


def rank_popular(histories: Sequence[Sequence[int]], popularity: np.ndarray, top: int) -> torch.Tensor:
    """``(n, min(top, num_items))`` item indices: the most popular items, the same list for every history."""
    order = popularity_order(popularity)
    if top < 1:
        raise SimCITInputError(f"top must be >= 1, got {top}")
    _check_histories(histories, len(order))
    head = torch.as_tensor(order[:top], dtype=torch.long)
    return head.expand(len(histories), -1).clone()


def rank_history(histories: Sequence[Sequence[int]], popularity: np.ndarray, top: int) -> torch.Tensor:
    """``(n, min(top, num_items))`` item indices: each history's items by :func:`history_order`, then the
    most popular items outside the history."""
    order = popularity_order(popularity)
    if top < 1:
        raise SimCITInputError(f"top must be >= 1, got {top}")
    _check_histories(histories, len(order))
    width = min(top, len(order))
    out = torch.empty(len(histories), width, dtype=torch.long)
    for row, history in enumerate(histories):
        ranked = history_order(history)[:width]
        seen = {int(i) for i in history}
        for item in order:
            if len(ranked) >= width:
                break
            if int(item) not in seen:
                ranked.append(int(item))
        out[row] = torch.as_tensor(ranked, dtype=torch.long)
    return out


def rank_baseline(method: str, histories: Sequence[Sequence[int]], popularity: np.ndarray,
                  top: int) -> torch.Tensor:
    """:func:`rank_history` or :func:`rank_popular` by name (``"history"``, ``"popularity"``)."""
    if method == "history":
        return rank_history(histories, popularity, top)
    if method == "popularity":
        return rank_popular(histories, popularity, top)
    raise SimCITInputError(f"unknown baseline {method!r}; choose one of {', '.join(METHODS)}")


def evaluate_baseline(method: str, split: Any, popularity: np.ndarray, ks: Sequence[int] = (5, 10),
                      max_examples: int | None = None, return_rankings: bool = False) -> dict[str, Any]:
    """Recall/NDCG@K and MRR of a baseline on ``split`` (``history``, ``target`` columns), full ranking, with
    the same metric code and keys as :func:`hf_simcit.recommender.evaluation.evaluate_recommender`.

    ``popularity``: :func:`item_popularity` of the *training* split. ``return_rankings`` adds the ``(n, max(ks))``
    ranked item indices under ``"rankings"``.
    """
    from ..metrics.ranking import ranking_metrics
    from ..recommender.evaluation import count_invalid

    n = len(split) if max_examples is None else min(len(split), int(max_examples))
    rows = split[:n]
    targets = torch.as_tensor(rows["target"], dtype=torch.long)
    ranked = rank_baseline(method, rows["history"], popularity, max(ks))
    num_items = len(popularity)
    bad = targets[(targets < 0) | (targets >= num_items)]
    if bad.numel():
        raise SimCITInputError(f"evaluation target(s) {bad[:5].tolist()} outside 0..{num_items - 1}")
    invalid = count_invalid(ranked, num_items)
    metrics: dict[str, Any] = ranking_metrics(ranked, targets, ks)
    metrics["invalid_items"] = invalid
    metrics["num_examples"] = n
    if return_rankings:
        metrics["rankings"] = ranked
    return metrics


def repeat_statistics(histories: Sequence[Sequence[int]], targets: Sequence[int], k: int = 10) -> dict[str, int]:
    """What the ``history`` baseline can reach: ``users``; ``repeat_targets``, users whose target is already in
    their history (only those can be hit by a history item); ``full_histories``, users with at least ``k``
    distinct history items (their top ``k`` is history only, no popular item)."""
    repeats = sum(int(t) in {int(i) for i in h} for h, t in zip(histories, targets))
    full = sum(len({int(i) for i in h}) >= k for h in histories)
    return {"users": len(histories), "repeat_targets": repeats, "full_histories": full, "k": k}
