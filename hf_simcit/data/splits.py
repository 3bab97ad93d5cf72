"""k-core filtering, id indexing and the leave-one-out split.

All functions are pure: they take sequences and return new ones plus counts, so the statistics can say
exactly what was removed and why.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

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


# --------------------------------------------------------------------------------------------------------
# One sequence per user: the full-sequence training objective
# --------------------------------------------------------------------------------------------------------
@dataclass
class TrainingWindow:
    """A window of one user's training items and which of them are targets counted in this window.

    ``items``: item indices, oldest first (at most ``max_history + 1``). ``is_target[j]``: item ``j`` is a
    training target whose loss this window carries (its context is ``items[:j]``).
    """

    user_id: int
    items: list[int]
    is_target: list[bool]


def training_windows(
    train_sequences: dict[int, tuple[list[int], set[int]]],
    *,
    max_history: int = 20,
    stride: int | None = None,
    predict_first: bool = False,
) -> list[TrainingWindow]:
    """Cut each user's training sequence into windows that together carry every training target once.

    Args:
        train_sequences: ``user_id -> (items, held_out)``: the items before the validation target, oldest
            first, and the user's validation/test targets (a training target equal to one is masked, as
            :func:`leave_one_out` drops that example).
        max_history: a window holds at most ``max_history + 1`` items, so a target sees at most the
            ``max_history`` items a prompt would show it.
        stride: items between the starts of consecutive windows of a long user (default ``max_history``:
            consecutive windows share one item, the last window ends with the user's last item). Each target
            is counted in the first window that holds it past that window's first item, so in later windows a
            target sees between ``max_history + 1 - stride`` and ``max_history`` items of context (a prompt
            shows ``max_history``); a smaller stride gives longer contexts at more positions per epoch, and
            ``stride=1`` reproduces the prompts' contexts exactly, at the prefix objective's cost.
        predict_first: also predict each user's first item from the empty context (BOS only); the prefix
            examples never do.

    Why: one forward pass over a user's window supervises every target in it; the prefix objective
    (one example per target) recomputes the same prefixes ``max_history`` times.
    """
    if max_history < 1:
        raise SimCITInputError(f"max_history must be >= 1, got {max_history}")
    stride = max_history if stride is None else int(stride)
    if not 1 <= stride <= max_history:
        raise SimCITInputError(f"window stride must be in 1..max_history ({max_history}), got {stride}")
    size = max_history + 1
    windows: list[TrainingWindow] = []
    for user, (items, held_out) in train_sequences.items():
        n = len(items)
        if n == 0 or (n == 1 and not predict_first):
            continue
        starts = list(range(0, max(n - size, 0) + 1, stride))
        if starts[-1] + size < n:
            starts.append(n - size)              # the last window ends with the user's last training item
        counted_until = 0                        # positions < counted_until already carry their loss
        for start in starts:
            end = min(start + size, n)
            first = start + 1 if start > 0 or not predict_first else 0
            first = max(first, counted_until)
            flags = [False] * (end - start)
            for position in range(first, end):
                flags[position - start] = items[position] not in held_out
            counted_until = end
            if any(flags):
                windows.append(TrainingWindow(int(user), list(items[start:end]), flags))
    return windows


def training_sequences_from_splits(train: dict[str, list] | Any, validation: dict[str, list] | Any,
                                   test: dict[str, list] | Any) -> dict[int, tuple[list[int], set[int]]]:
    """Recover each user's training items (and validation/test targets) from leave-one-out splits.

    The split columns are all that the training code is sure to have; rebuilding the sequences from them
    (and checking that :func:`leave_one_out` on the result gives back exactly these splits) guarantees that
    the full-sequence objective supervises exactly the prefix examples' targets. Splits it cannot reproduce
    (``train_examples="last"``, hand-edited rows) raise an error naming the first user that differs.
    """
    columns = [{k: list(part[k]) for k in ("user_id", "history", "target")} for part in (train, validation, test)]
    train_c, valid_c, test_c = columns
    max_history = max((len(h) for part in columns for h in part["history"]), default=1) or 1
    by_user: dict[int, list[tuple[list[int], int]]] = {}
    for user, history, target in zip(train_c["user_id"], train_c["history"], train_c["target"]):
        by_user.setdefault(int(user), []).append((list(history), int(target)))
    test_of = {int(u): (list(h), int(t)) for u, h, t in zip(test_c["user_id"], test_c["history"], test_c["target"])}
    result: dict[int, tuple[list[int], set[int]]] = {}
    eval_targets: dict[int, list[int]] = {}
    for user, history, target in zip(valid_c["user_id"], valid_c["history"], valid_c["target"]):
        user = int(user)
        if user not in test_of:
            raise SimCITInputError(f"user_id {user} has a validation example but no test example")
        items: list[int] = []
        for h, t in by_user.get(user, []):
            items.extend(_continuation(items, h, max_history))
            items.append(t)
        items.extend(_continuation(items, list(history), max_history))
        result[user] = (items, {int(target), test_of[user][1]})
        eval_targets[user] = [int(target), test_of[user][1]]
    # the check: the rebuilt sequences must split into exactly the given examples
    users = list(result)
    full = [result[u][0] + eval_targets[u] for u in users]
    again = leave_one_out(full, max_history=max_history)
    for name, given, rebuilt in (("train", train_c, again.train), ("validation", valid_c, again.validation),
                                 ("test", test_c, again.test)):
        rebuilt = {**rebuilt, "user_id": [users[i] for i in rebuilt["user_id"]]}
        for key in ("user_id", "history", "target"):
            given_rows, rebuilt_rows = [_plain(v) for v in given[key]], [_plain(v) for v in rebuilt[key]]
            if given_rows != rebuilt_rows:
                row = next((i for i, (a, b) in enumerate(zip(given_rows, rebuilt_rows)) if a != b),
                           min(len(given_rows), len(rebuilt_rows)))      # else the shorter one ends first
                user = (given if row < len(given_rows) else rebuilt)["user_id"][row]
                raise SimCITInputError(
                    f"{name} split, row {row} (user_id {user}): the examples are not every prefix "
                    "of one leave-one-out sequence per user (train_examples='last' or edited rows), so the "
                    "full-sequence objective cannot reproduce them; use objective 'prefix'")
    return result


def _continuation(items: list[int], history: list[int], max_history: int) -> list[int]:
    """The items of ``history`` that come after ``items`` (the targets its examples dropped), shortest first."""
    if len(history) < max_history:           # an untruncated history is the whole prefix
        return history[len(items):] if history[:len(items)] == items else history
    for gap in range(len(history) + 1):
        joined = items + history[len(history) - gap:]
        if len(joined) >= len(history) and joined[-len(history):] == history:
            return history[len(history) - gap:]
    return history


def _plain(value: Any) -> Any:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else int(value)


def sample_rows(num_rows: int, size: int | None, seed: int) -> list[int]:
    """A fixed, seeded random sample of ``size`` row indices (sorted), or every row when ``size`` is None
    or at least ``num_rows``.

    Why random, not the first rows: the users early in a split are not a random sample (ids follow the
    raw files' order), and checkpoint selection on them ranked methods differently from the full split.
    """
    if size is None or size >= num_rows:
        return list(range(num_rows))
    if size < 1:
        raise SimCITInputError(f"sample size must be >= 1 or None, got {size}")
    import numpy as np

    return sorted(np.random.default_rng(seed).choice(num_rows, size=int(size), replace=False).tolist())
