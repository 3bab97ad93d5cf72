"""k-core filtering, id indexing and the leave-one-out split.

All functions are pure: they take sequences and return new ones plus counts, so the statistics can say
exactly what was removed and why.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..errors import SimCITInputError


@dataclass
class KCoreReport:
    """What iterative k-core filtering removed."""

    rounds: int = 0
    removed_users: int = 0
    removed_items: int = 0
    removed_interactions: int = 0


def k_core(
    sequences: dict[str, list[str]], min_user_interactions: int, min_item_interactions: int
) -> tuple[dict[str, list[str]], KCoreReport]:
    """Iteratively drop users with fewer than ``min_user_interactions`` and items with fewer than
    ``min_item_interactions`` interactions until both hold (repeat interactions count each time).

    The relative order of each user's remaining items is kept.
    """
    if min_user_interactions < 0 or min_item_interactions < 0:
        raise SimCITInputError("k-core thresholds must be >= 0")
    report = KCoreReport()
    current = {u: list(s) for u, s in sequences.items() if s}
    report.removed_users += len(sequences) - len(current)
    all_items = {i for s in sequences.values() for i in s}
    total_before = sum(len(s) for s in sequences.values())
    while True:
        item_counts = Counter(i for s in current.values() for i in s)
        rare = {i for i, c in item_counts.items() if c < min_item_interactions}
        changed = False
        if rare:
            current = {u: [i for i in s if i not in rare] for u, s in current.items()}
            changed = True
        short = [u for u, s in current.items() if len(s) < min_user_interactions or not s]
        if short:
            for u in short:
                del current[u]
            changed = True
        if not changed:
            break
        report.rounds += 1
    remaining_items = {i for s in current.values() for i in s}
    report.removed_users = len(sequences) - len(current)
    report.removed_items = len(all_items) - len(remaining_items)
    report.removed_interactions = total_before - sum(len(s) for s in current.values())
    return current, report


def natural_sort_key(raw_id: str) -> tuple[int, int | str]:
    """Numeric ids sort numerically (``"2" < "10"``), others lexicographically after them."""
    return (0, int(raw_id)) if raw_id.isdigit() else (1, raw_id)


def index_ids(raw_ids: set[str] | list[str]) -> dict[str, int]:
    """Raw id -> 0-based index, in natural order (stable across runs and machines)."""
    return {raw: index for index, raw in enumerate(sorted(set(raw_ids), key=natural_sort_key))}


@dataclass
class LeaveOneOutSplit:
    """Columns of the three splits, as plain lists (``history`` entries are item indices, oldest first)."""

    train: dict[str, list] = field(default_factory=lambda: {"user_id": [], "history": [], "target": []})
    validation: dict[str, list] = field(default_factory=lambda: {"user_id": [], "history": [], "target": []})
    test: dict[str, list] = field(default_factory=lambda: {"user_id": [], "history": [], "target": []})
    users_too_short: int = 0
    train_targets_dropped_as_eval_targets: int = 0


def leave_one_out(
    sequences: list[list[int]],
    *,
    max_history: int = 20,
    train_examples: str = "all",
    min_history: int = 1,
) -> LeaveOneOutSplit:
    """Leave-one-out per user: last item -> test, second to last -> validation, earlier -> training.

    Args:
        sequences: ``sequences[u]`` = user ``u``'s item indices in time order.
        max_history: histories keep only the most recent ``max_history`` items.
        train_examples: ``"all"``: every earlier prefix is its own training example (targets at positions
            ``min_history .. n-3``); ``"last"``: only the longest one (target at ``n-3``).
        min_history: the shortest history a training example may have.

    Users with fewer than 3 interactions cannot be split and are counted in ``users_too_short``.
    A training example whose target equals the user's validation or test target is dropped (and counted), so
    no evaluation target ever appears as a training target of the same user.
    """
    if train_examples not in {"all", "last"}:
        raise SimCITInputError(f"train_examples must be 'all' or 'last', got {train_examples!r}")
    if max_history < 1:
        raise SimCITInputError(f"max_history must be >= 1, got {max_history}")
    split = LeaveOneOutSplit()

    def add(part: dict[str, list], user: int, seq: list[int], position: int) -> None:
        part["user_id"].append(user)
        part["history"].append(seq[max(0, position - max_history) : position])
        part["target"].append(seq[position])

    for user, seq in enumerate(sequences):
        n = len(seq)
        if n < 3:
            split.users_too_short += 1
            continue
        add(split.test, user, seq, n - 1)
        add(split.validation, user, seq, n - 2)
        held_out = {seq[n - 1], seq[n - 2]}
        first = max(min_history, 1) if train_examples == "all" else n - 3
        for position in range(max(first, 1), n - 2):
            if seq[position] in held_out:
                split.train_targets_dropped_as_eval_targets += 1
                continue
            add(split.train, user, seq, position)
    return split
