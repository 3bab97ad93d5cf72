"""Content kNN: rank items by the cosine of their embedding to the user's recent history, no training.

The non-learned reference for anything an item embedding (and so a SID built from it) can carry: with the text
embedding it is the content baseline a cold item can reach; with text + a sequential collaborative embedding and
only the last item (``last=1``), it is the "what usually comes next" baseline a generator has to beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import SimCITInputError


def content_knn_scores(
    embeddings: torch.Tensor, histories: Sequence[Sequence[int]], last: int | None = None
) -> torch.Tensor:
    """Cosine of every item to the sum of the user's last ``last`` history items (all when None).

    Args:
        embeddings: ``(num_items, dim)``; rows are L2-normalised here (an all-zero row scores 0).
        histories: per user, item indices in time order.

    Returns:
        ``(num_users, num_items)`` float32 scores; the user's history items are ``-inf`` (never recommended).
    """
    if last is not None and last < 1:
        raise SimCITInputError(f"content kNN: last must be at least 1 (or None for the whole history), got {last}")
    empty = next((row for row, history in enumerate(histories) if not len(history)), None)
    if empty is not None:   # no item to be similar to: every score would be 0 and the ranking item order
        raise SimCITInputError(f"content kNN: history {empty} is empty; there is nothing to rank by")
    items = torch.nn.functional.normalize(torch.as_tensor(embeddings, dtype=torch.float32), dim=-1)

    def flat(rows):  # (row of each entry, item of each entry)
        return (torch.repeat_interleave(torch.arange(len(rows)), torch.tensor([len(r) for r in rows], dtype=torch.long)),
                torch.tensor([i for r in rows for i in r], dtype=torch.long))

    seen_users, seen = flat([list(h) for h in histories])
    if seen.numel() and (seen.min() < 0 or seen.max() >= len(items)):
        raise SimCITInputError(f"content kNN: history item outside 0..{len(items) - 1}")
    users, used = flat([list(h)[-last:] for h in histories]) if last else (seen_users, seen)
    scores = torch.zeros(len(histories), items.shape[1]).index_add_(0, users, items[used]) @ items.T
    scores[seen_users, seen] = -torch.inf
    return scores


def content_knn_rankings(
    embeddings: torch.Tensor, histories: Sequence[Sequence[int]], k: int, last: int | None = None,
    batch_size: int = 2048,
) -> torch.Tensor:
    """``(num_users, k)`` item indices, best first, of :func:`content_knn_scores`, a batch of users at a time
    (a Beauty split's full score matrix would take 1 GB)."""
    return torch.cat([content_knn_scores(embeddings, histories[start:start + batch_size], last).topk(k).indices
                      for start in range(0, len(histories), batch_size)])
