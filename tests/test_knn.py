"""hf_simcit.baselines.knn: items ranked by cosine to the user's recent history, history never recommended."""

from __future__ import annotations

import pytest
import torch

from hf_simcit.baselines.knn import content_knn_rankings, content_knn_scores
from hf_simcit.errors import SimCITInputError

# items 0-2 point along x (at different lengths), 3-5 along y, 6 in between
EMBEDDINGS = torch.tensor([[1, 0], [2, 0.1], [3, 0.3], [0, 1], [0.1, 2], [0.3, 3], [1, 1]], dtype=torch.float32)


def test_scores_are_cosines_to_the_recent_history_and_history_is_excluded():
    scores = content_knn_scores(EMBEDDINGS, [[0, 3], [3, 0]], last=1)
    unit = torch.nn.functional.normalize(EMBEDDINGS, dim=-1)
    torch.testing.assert_close(scores[0, [1, 2, 4, 5, 6]], unit[[1, 2, 4, 5, 6]] @ unit[3])  # the last item: 3
    torch.testing.assert_close(scores[1, [1, 2, 4, 5, 6]], unit[[1, 2, 4, 5, 6]] @ unit[0])
    assert torch.isinf(scores[:, [0, 3]]).all() and (scores[:, [0, 3]] < 0).all()
    # the whole history: the sum of both, so the item in between comes first
    assert content_knn_rankings(EMBEDDINGS, [[0, 3]], 1).tolist() == [[6]]
    assert content_knn_rankings(EMBEDDINGS, [[0, 3]], 2, last=1).tolist() == [[4, 5]]


def test_rankings_in_batches_equal_one_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 8, generator=g)
    histories = [torch.randint(0, 50, (int(n),), generator=g).tolist() for n in torch.randint(1, 6, (23,), generator=g)]
    whole = content_knn_rankings(x, histories, 10, last=2, batch_size=100)
    assert torch.equal(content_knn_rankings(x, histories, 10, last=2, batch_size=4), whole)
    assert not any(set(row.tolist()) & set(h) for row, h in zip(whole, histories))


def test_bad_input_names_the_problem():
    with pytest.raises(SimCITInputError, match="last must be at least 1"):
        content_knn_scores(EMBEDDINGS, [[0]], last=0)
    with pytest.raises(SimCITInputError, match="history item outside 0..6"):
        content_knn_scores(EMBEDDINGS, [[0, 7]])
    with pytest.raises(SimCITInputError, match="history 1 is empty; there is nothing to rank by"):
        content_knn_scores(EMBEDDINGS, [[0], []])          # not the lowest item indices by default
