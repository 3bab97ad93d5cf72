"""The dense item head (LIGER): the generator also predicts the next item's content embedding.

Why: a generator trained on the warm items gives a SID path it never saw as a target almost no probability, so
items that join the catalogue after training (cold-start items, ``add_cold_start_items``) rank poorly by their
SIDs. With this head, the hidden state that predicts an item's first SID token is also projected onto the
item's content embedding (e.g. its MiniLM text vector) and trained contrastively against the other target items
of the batch. Any item with a content embedding, trained on or not, is then scored by cosine similarity:
Yang et al. (2024), "Unifying Generative and Dense Retrieval for Sequential Recommendation".

The head is a bias-free ``nn.Linear(hidden_size, embedding_dim)`` held by the causal LM as ``dense_item_head``,
so the optimizer, checkpoints and DDP see it like any other weight; the recommender folder stores it in its own
file (:data:`DENSE_HEAD_NAME`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import SimCITInputError
from ..generation.beam_search import prepare_prompts
from ..generation.recommend import Recommendations, rerank_with_item_scores
from .data import IGNORE_INDEX

DENSE_HEAD_ATTR = "dense_item_head"
DENSE_HEAD_NAME = "dense_item_head.safetensors"
DENSE_EMBEDDINGS_NAME = "dense_item_embeddings.safetensors"   # the items' content vectors the head ranks
DENSE_NEGATIVES = ("batch", "catalogue")   # the InfoNCE's negatives: the batch's other targets, or every item


def _base(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def attach_dense_head(model: Any, embedding_dim: int) -> torch.nn.Linear:
    """Give ``model`` (a causal LM) a fresh head ``hidden_size -> embedding_dim``; returns it."""
    head = torch.nn.Linear(model.config.hidden_size, int(embedding_dim), bias=False)
    head.to(device=model.device, dtype=model.dtype)
    setattr(_base(model), DENSE_HEAD_ATTR, head)
    return head


def dense_head_of(model: Any) -> torch.nn.Linear | None:
    """The model's dense item head, or ``None``."""
    return getattr(_base(model), DENSE_HEAD_ATTR, None)


def check_item_embeddings(item_embeddings: Any, num_items: int, embedding_dim: int) -> torch.Tensor:
    """``(num_items, embedding_dim)`` float tensor, or one clear error naming what does not fit."""
    embeddings = torch.as_tensor(item_embeddings, dtype=torch.float32)
    if embeddings.ndim != 2 or embeddings.shape != (num_items, embedding_dim):
        raise SimCITInputError(f"item embeddings for the dense head must be ({num_items}, {embedding_dim}) "
                               f"(items x dense_head_dim), got {tuple(embeddings.shape)}")
    if not bool(torch.isfinite(embeddings).all()):
        row = int((~torch.isfinite(embeddings)).any(1).nonzero()[0])
        raise SimCITInputError(f"item embedding of item {row} is not finite (NaN or inf)")
    return embeddings


class DenseItemLoss:
    """InfoNCE of the head's prediction at each target item's first SID position against that item's content
    embedding, with the batch's other target items (``negatives="batch"``, LIGER's) or every item of the SID
    table (``"catalogue"``: a full softmax like SASRec's, free of the batch's bias towards popular items, at
    ``num_items x D`` more multiply-adds per target) as the negatives.

    Args:
        model: the unwrapped model holding the head.
        item_token_ids: ``(num_items, num_levels)``, each item's SID token ids; they identify the target item of
            a labelled run of SID tokens (a run cut by ``-100``, such as a dropped validation target, is skipped).
        item_embeddings: ``(num_items, D)`` content embeddings (cosine-normalised here).
        temperature: softmax temperature of the cosine similarities.
        negatives: ``"batch"`` or ``"catalogue"``.
    """

    def __init__(self, model: Any, item_token_ids: torch.Tensor, item_embeddings: torch.Tensor,
                 temperature: float = 0.07, negatives: str = "batch"):
        if temperature <= 0:
            raise SimCITInputError(f"dense_temperature must be positive, got {temperature}")
        if negatives not in DENSE_NEGATIVES:
            raise SimCITInputError(f"dense_negatives must be one of {', '.join(DENSE_NEGATIVES)}, got {negatives!r}")
        self.negatives = negatives
        self.head = dense_head_of(model)
        if self.head is None:
            raise SimCITInputError("the model has no dense item head (dense_head_dim is 0)")
        self.embeddings = F.normalize(check_item_embeddings(item_embeddings, item_token_ids.shape[0],
                                                            self.head.out_features), dim=-1)
        self.levels = item_token_ids.shape[1]
        self.first_tokens = torch.unique(item_token_ids[:, 0])
        self.item_of = {tuple(row): i for i, row in enumerate(item_token_ids.tolist())}
        self.temperature = float(temperature)

    def target_items(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions ``(N, 2)`` of ``targets`` ``(B, T)`` whose label starts an item's SID, and the items ``(N,)``."""
        padded = F.pad(targets, (0, self.levels - 1), value=IGNORE_INDEX)
        starts = torch.isin(targets, self.first_tokens.to(targets.device)).nonzero()
        found, items = [], []
        for b, t in starts.tolist():
            item = self.item_of.get(tuple(padded[b, t:t + self.levels].tolist()))
            if item is not None:
                found.append((b, t))
                items.append(item)
        return (torch.as_tensor(found, dtype=torch.long).view(-1, 2),
                torch.as_tensor(items, dtype=torch.long))

    def __call__(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean InfoNCE over the batch's target items; ``hidden`` ``(B, T, d)`` predicts ``targets`` ``(B, T)``."""
        where, items = self.target_items(targets)
        if items.numel() == 0:
            return hidden.sum() * 0.0   # keeps the graph (and DDP's bookkeeping) for a batch without targets
        query = F.normalize(self.head(hidden[where[:, 0], where[:, 1]]).float(), dim=-1)      # (N, D)
        if self.negatives == "catalogue":
            keys, label = self.embeddings, items                                               # (num_items, D)
        else:
            candidates, label = torch.unique(items, return_inverse=True)
            keys = self.embeddings[candidates]                                                 # (C, D)
        return F.cross_entropy(query @ keys.to(query.device).T / self.temperature, label.to(query.device))


def dense_item_scores(model: Any, prompts: Sequence[Sequence[int]], item_embeddings: torch.Tensor,
                      pad_token_id: int, batch_size: int = 128) -> torch.Tensor:
    """``(len(prompts), num_items)`` cosine similarity of the head's prediction after each prompt (the state that
    predicts the next item's first SID token) to every item's content embedding ``(num_items, D)``."""
    return dense_queries(model, prompts, pad_token_id, batch_size) @ unit_keys(item_embeddings).T


def unit_keys(item_embeddings: Any) -> torch.Tensor:
    """``(num_items, D)`` float32 item embeddings scaled to unit length (the cosine's keys), on the CPU."""
    return F.normalize(torch.as_tensor(item_embeddings, dtype=torch.float32).cpu(), dim=-1)


@torch.no_grad()
def dense_queries(model: Any, prompts: Sequence[Sequence[int]], pad_token_id: int,
                  batch_size: int = 128) -> torch.Tensor:
    """``(len(prompts), D)``: the head's prediction after each prompt, unit length, on the CPU."""
    head = dense_head_of(model)
    if head is None:
        raise SimCITInputError("the recommender has no dense item head (trained with dense_head_dim 0)")
    device = next(model.parameters()).device
    decoder = _base(model).get_decoder()
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(prompts), batch_size):
        # left-padded, positions from the mask (as the beam search): the last column is every prompt's last token
        ids, mask = prepare_prompts(list(prompts[start:start + batch_size]), pad_token_id=pad_token_id, device=device)
        hidden = decoder(input_ids=ids, attention_mask=mask,
                         position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).last_hidden_state
        out.append(F.normalize(head(hidden[:, -1]).float(), dim=-1).cpu())
    if was_training:
        model.train()
    return torch.cat(out) if out else torch.empty(0, head.out_features)


@dataclass
class HybridRanking:
    """LIGER's hybrid ranking: the SID beam's candidates re-ordered by ``log P(SID) + weight * cos / temperature``,
    the dense head's cosine to each candidate's content embedding at the scale it was trained at (its InfoNCE
    logit), so ``weight`` 1 is the plain product of the two models and 0 the beam's own order.

    Why: the beam search ranks by SID likelihood alone, and near-equal SID paths leave its order noisy; the head
    scores each item directly from its content. On Beauty it lifts the test NDCG@10 of the model's own beam by
    6-8%, but training the head (weight 1) cost the beam as much, so the hybrid was level with a head-free
    generator there (``benchmarks/RESULTS.md``, one seed). Choose ``weight`` on validation users.

    Args:
        item_embeddings: ``(num_items, D)``, the embeddings the head was trained on, in the SID table's order.
        weight: the head's share, >= 0.
        temperature: the head's training temperature (``training.dense_temperature``).
    """

    item_embeddings: torch.Tensor
    weight: float = 1.0
    temperature: float = 0.07

    def __post_init__(self):
        if not (self.weight >= 0 and self.weight < float("inf")):
            raise SimCITInputError(f"hybrid ranking weight must be finite and >= 0, got {self.weight}")
        if not self.temperature > 0:
            raise SimCITInputError(f"hybrid ranking temperature must be positive, got {self.temperature}")
        self._keys = unit_keys(self.item_embeddings)   # once, not for every batch

    def check(self, model: Any, num_items: int) -> None:
        """One clear error if ``model`` has no head or the embeddings do not fit it and the catalogue."""
        head = dense_head_of(model)
        if head is None:
            raise SimCITInputError("hybrid ranking needs a recommender with a dense item head (dense_head_dim > 0)")
        self.item_embeddings = check_item_embeddings(self.item_embeddings, num_items, head.out_features)

    def cosines(self, model: Any, prompts: Sequence[Sequence[int]], pad_token_id: int) -> torch.Tensor:
        """``(len(prompts), num_items)`` the head's cosine to every item after each prompt: one forward pass
        that any number of weights (and the new items' places) can share."""
        return dense_queries(model, prompts, pad_token_id, batch_size=len(prompts)) @ self._keys.T

    def rerank(self, ranked: Recommendations, cosines: torch.Tensor, k: int | None = None) -> Recommendations:
        """``ranked`` re-ordered by ``log P(SID) + weight * cosines / temperature``, the best ``k`` kept."""
        return rerank_with_item_scores(ranked, cosines / self.temperature, self.weight, k)

    def __call__(self, model: Any, prompts: Sequence[Sequence[int]], ranked: Recommendations, pad_token_id: int,
                 k: int | None = None) -> Recommendations:
        """``ranked`` (the beam's candidates for ``prompts``) re-ordered, the best ``k`` kept."""
        cosines = self.cosines(model, prompts, pad_token_id) if self.weight else \
            torch.zeros(len(prompts), len(self._keys))   # weight 0: the beam's order, no forward pass
        return self.rerank(ranked, cosines, k)


def hybrid_ranking_of(rec: Any, weight: float | None = None) -> HybridRanking | None:
    """The hybrid ranking of a loaded :class:`~.modeling.Recommender` at ``weight`` (``None``: the folder's own
    ``hybrid_weight``, chosen on validation at training), with the item embeddings and temperature its folder
    saved, checked against its head; ``None`` for weight 0 (the beam's own order)."""
    if weight is None:
        weight = rec.hybrid_weight
    if weight == 0:
        return None
    if dense_head_of(rec.model) is not None and rec.item_embeddings is None:
        raise SimCITInputError(f"the recommender has a dense item head but no saved item embeddings "
                               f"({DENSE_EMBEDDINGS_NAME}); save it again with this version")
    embeddings = rec.item_embeddings if rec.item_embeddings is not None else torch.empty(0, 0)
    ranking = HybridRanking(embeddings, weight, rec.dense_temperature or 0.07)
    ranking.check(rec.model, rec.item_token_ids.shape[0])
    return ranking
