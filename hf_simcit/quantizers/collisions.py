"""Making semantic IDs unique: an extra disambiguation level (TIGER) or a balanced Sinkhorn-Knopp re-assignment
of the last level (LC-Rec / LETTER).

Both also place *new* (cold-start) items next to an existing table without touching it: a new item never takes
a SID (or a last-level code within its prefix) that an existing item holds.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from ..errors import SimCITInputError


def _as_codes(codes, name: str = "codes") -> np.ndarray:
    array = np.asarray(codes)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise SimCITInputError(f"{name} must be an integer array (num_items, num_levels), got {array.dtype} "
                               f"{array.shape}")
    return array.astype(np.int64)


def add_disambiguation_level(codes, existing_codes=None, order=None) -> np.ndarray:
    """Append a level that numbers the items sharing a SID ``0, 1, 2, ...``: ``(n, L + 1)``.

    Inside a group the items are numbered in ascending ``order`` (``(n,)`` sort keys, ties in item order);
    ``None`` numbers them in item order. Item order is rarely neutral (ids are often given out in order of
    first appearance, which follows popularity), so a generator can learn "code 0" as a popularity prior;
    :func:`~hf_simcit.quantizers.resolve_collisions` offers orders that do not follow item order.

    ``existing_codes`` ``(m, L + 1)``: a table that already has the level; new items continue after the numbers
    its items use for the same prefix, so no new SID equals an existing one.
    """
    codes = _as_codes(codes)
    used: dict[tuple[int, ...], set[int]] = defaultdict(set)
    if existing_codes is not None:
        existing = _as_codes(existing_codes, "existing_codes")
        if existing.shape[1] != codes.shape[1] + 1:
            raise SimCITInputError(
                f"existing_codes have {existing.shape[1]} levels; with a disambiguation level they need "
                f"{codes.shape[1] + 1} (the new codes have {codes.shape[1]})"
            )
        for row in existing.tolist():
            used[tuple(row[:-1])].add(row[-1])
    if order is None:
        visit = range(len(codes))
    else:
        keys = np.asarray(order)
        if keys.shape != (len(codes),):
            raise SimCITInputError(f"order must hold one sort key per item ({len(codes)},), got {keys.shape}")
        visit = np.argsort(keys, kind="stable").tolist()
    rows = codes.tolist()
    suffix = np.zeros(len(codes), dtype=np.int64)
    for index in visit:
        taken = used[tuple(rows[index])]
        number = 0
        while number in taken:
            number += 1
        taken.add(number)
        suffix[index] = number
    return np.concatenate([codes, suffix[:, None]], axis=1)


def sinkhorn(cost: torch.Tensor, epsilon: float = 0.05, iterations: int = 100) -> torch.Tensor:
    """Balanced transport plan ``(g, F)`` for ``g <= F`` items over ``F`` slots: rows sum to 1, columns to ``g/F``.

    Log-domain Sinkhorn-Knopp on ``cost`` scaled to unit spread, so ``epsilon`` is scale-free.
    """
    cost = cost.double()
    spread = (cost.max() - cost.min()).clamp_min(1e-12)
    log_plan = -(cost - cost.min()) / (spread * epsilon)
    num_items, num_slots = cost.shape
    log_column_mass = torch.log(torch.tensor(num_items / num_slots, dtype=torch.float64))
    for _ in range(iterations):
        log_plan = log_plan - torch.logsumexp(log_plan, dim=1, keepdim=True)
        log_plan = log_plan - torch.logsumexp(log_plan, dim=0, keepdim=True) + log_column_mass
    log_plan = log_plan - torch.logsumexp(log_plan, dim=1, keepdim=True)
    return log_plan.exp()


def _round_plan(plan: torch.Tensor) -> list[int]:
    """Greedy rounding: the most probable (item, slot) pairs first, each item and slot used once."""
    num_items = plan.shape[0]
    order = torch.argsort(plan.flatten(), descending=True).tolist()
    choice = [-1] * num_items
    taken = set()
    remaining = num_items
    for flat in order:
        item, slot = divmod(flat, plan.shape[1])
        if choice[item] >= 0 or slot in taken:
            continue
        choice[item] = slot
        taken.add(slot)
        remaining -= 1
        if not remaining:
            break
    return choice


def sinkhorn_reassign_last_level(
    codes, distances=None, existing_codes=None, codebook_size: int | None = None, epsilon: float = 0.05
) -> np.ndarray:
    """Give colliding items distinct last-level codes, keeping the prefix (all other levels): ``(n, L)``.

    Within a prefix group, the item nearest to an occupied codeword keeps it; the others are moved to free
    codes of that level by a balanced Sinkhorn-Knopp plan on their distances ``(n, K)`` to the last codebook
    (rounded greedily), so a crowded prefix spreads over its nearest free codes. Codes held by
    ``existing_codes`` ``(m, L)`` are never given out. A prefix with more than ``K`` items cannot be resolved
    this way (use the disambiguation level).
    """
    codes = _as_codes(codes)
    num_items, num_levels = codes.shape
    size = int(codebook_size) if codebook_size is not None else int(codes[:, -1].max(initial=0)) + 1
    if distances is None:
        distances = np.zeros((num_items, size))
        distances[np.arange(num_items), codes[:, -1]] = -1.0
    distances = torch.as_tensor(np.asarray(distances), dtype=torch.float64)
    if distances.shape != (num_items, size):
        raise SimCITInputError(
            f"distances have shape {tuple(distances.shape)}; expected (num_items, last codebook size) = "
            f"({num_items}, {size})"
        )
    occupied: dict[tuple[int, ...], set[int]] = defaultdict(set)
    if existing_codes is not None:
        existing = _as_codes(existing_codes, "existing_codes")
        if existing.shape[1] != num_levels:
            raise SimCITInputError(
                f"existing_codes have {existing.shape[1]} levels but the new codes have {num_levels}"
            )
        for row in existing.tolist():
            occupied[tuple(row[:-1])].add(row[-1])
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, row in enumerate(codes.tolist()):
        groups[tuple(row[:-1])].append(index)
    result = codes.copy()
    for prefix, members in groups.items():
        taken = occupied[prefix]
        keepers: dict[int, int] = {}
        for index in members:
            code = int(codes[index, -1])
            if code in taken:
                continue
            best = keepers.get(code)
            if best is None or distances[index, code] < distances[best, code]:
                keepers[code] = index
        movers = [index for index in members if keepers.get(int(codes[index, -1])) != index]
        if not movers:
            continue
        free = [code for code in range(size) if code not in taken and code not in keepers]
        if len(movers) > len(free):
            raise SimCITInputError(
                f"{len(members) + len(taken)} items share the SID prefix {list(prefix)} but its last level has "
                f"only {size} codes; resolve collisions with the disambiguation level (resolve='level')"
            )
        plan = sinkhorn(distances[movers][:, free], epsilon=epsilon)
        for index, slot in zip(movers, _round_plan(plan)):
            result[index, -1] = free[slot]
    return result


__all__ = ["add_disambiguation_level", "sinkhorn", "sinkhorn_reassign_last_level"]
