"""SASRec (Kang & McAuley, 2018), compact: the classic baseline on exactly the generator's splits.

Why our own: it must read the same ``DatasetDict`` (``history`` -> ``target``), train on the same examples
and be ranked with the same full-ranking metric code as the generative recommender, so the comparison has
no preprocessing or protocol gap. Causal self-attention over item embeddings, full-softmax cross entropy
over the whole catalogue (the "tuned" SASRec of recent re-runs), scores = last hidden state x item table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import SimCITInputError


@dataclass
class SASRecConfig:
    num_items: int
    max_len: int = 20
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    num_epochs: int = 30
    patience: int = 5
    eval_max_examples: int | None = None
    seed: int = 42


class SASRec(nn.Module):
    """Input ``(B, T)`` item indices + 1 (0 = padding, left-padded); output ``(B, num_items)`` scores."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.item_embedding = nn.Embedding(config.num_items + 1, d, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_len, d)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(d, config.num_heads, dim_feedforward=d, dropout=config.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(d)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        length = sequences.shape[1]
        # positions count back from the most recent item, so the amount of left padding never matters
        positions = torch.arange(length, device=sequences.device) + (self.config.max_len - length)
        hidden = self.item_embedding(sequences) * math.sqrt(self.config.hidden_size)
        hidden = self.dropout(hidden + self.position_embedding(positions))
        hidden = self.encoder(hidden, mask=attention_mask(sequences, self.config.num_heads))
        last = self.final_norm(hidden[:, -1])                                  # (B, d)
        return last @ self.item_embedding.weight[1:].T                         # (B, num_items)


def attention_mask(sequences: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Boolean ``(B * num_heads, T, T)`` mask (True = blocked): causal, padding keys blocked, but every query
    may always attend to itself.

    Why not ``mask=causal, src_key_padding_mask=padding``: with left padding the padded query rows would then
    have every key blocked. The slow (autograd) path survives that, but under ``torch.no_grad()`` in eval mode
    PyTorch's fused encoder fast path turns those rows into NaN, the NaN reaches the real tokens' values in the
    next layer (0 * NaN), and every history shorter than ``max_len`` was scored NaN -> a garbage ranking.
    """
    length = sequences.shape[1]
    causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=sequences.device), diagonal=1)
    eye = torch.eye(length, dtype=torch.bool, device=sequences.device)
    blocked = (causal | (sequences == 0)[:, None, :]) & ~eye                     # (B, T, T)
    return blocked.repeat_interleave(num_heads, dim=0)


def encode_histories(histories: Sequence[Sequence[int]], max_len: int, num_items: int) -> torch.Tensor:
    """Left-pad (and keep the last ``max_len`` of) each history; items shift by +1 so that 0 is padding."""
    out = torch.zeros(len(histories), max_len, dtype=torch.long)
    for row, history in enumerate(histories):
        tail = list(history)[-max_len:]
        if not tail:
            raise SimCITInputError(f"row {row}: empty history")
        bad = [i for i in tail if not 0 <= int(i) < num_items]
        if bad:
            raise SimCITInputError(f"row {row}: item index(es) {bad[:5]} outside 0..{num_items - 1}")
        out[row, max_len - len(tail):] = torch.as_tensor(tail) + 1
    return out


@torch.no_grad()
def rank_items(model: SASRec, histories: Sequence[Sequence[int]], top: int, batch_size: int = 512,
               device: str | torch.device = "cpu") -> torch.Tensor:
    """Top-``top`` item indices ``(n, top)`` over the full catalogue for each history."""
    model.eval()
    out = []
    for start in range(0, len(histories), batch_size):
        seqs = encode_histories(histories[start:start + batch_size], model.config.max_len,
                                model.config.num_items).to(device)
        out.append(model(seqs).topk(min(top, model.config.num_items), dim=-1).indices.cpu())
    return torch.cat(out) if out else torch.empty(0, top, dtype=torch.long)


def evaluate_sasrec(model: SASRec, split: Any, ks: Sequence[int] = (5, 10), max_examples: int | None = None,
                    device: str | torch.device = "cpu") -> dict[str, float]:
    from ..training.evaluation import ranking_metrics

    n = len(split) if max_examples is None else min(len(split), max_examples)
    ranked = rank_items(model, split[:n]["history"], max(ks), device=device)
    metrics = ranking_metrics(ranked, torch.as_tensor(split[:n]["target"]), ks)
    metrics["num_examples"] = n
    return metrics


def train_sasrec(splits: Any, config: SASRecConfig, *, device: str | torch.device | None = None,
                 ks: Sequence[int] = (5, 10), max_steps: int | None = None, verbose: bool = True
                 ) -> tuple[SASRec, dict[str, Any]]:
    """Train on ``splits["train"]`` (every history -> target pair once per epoch), early-stop on validation
    NDCG@max(ks), return the best model and ``{"validation": ..., "test": ..., "epochs": ..., "steps": ...}``.

    ``max_steps`` caps the optimizer steps (a training budget equal to the generator's).
    """
    from tqdm.auto import tqdm

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(config.seed)
    model = SASRec(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    train = splits["train"].filter(lambda h: len(h) > 0, input_columns="history")
    sequences = encode_histories(train["history"], config.max_len, config.num_items)
    targets = torch.as_tensor(train["target"], dtype=torch.long)
    key = f"ndcg@{max(ks)}"
    best, best_state, bad_epochs, step, history = -1.0, None, 0, 0, []
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(config.num_epochs):
        model.train()
        order = torch.randperm(len(targets), generator=generator)
        total = 0.0
        batches = range(0, len(order), config.batch_size)
        for start in tqdm(batches, desc=f"SASRec epoch {epoch}", leave=False, disable=not verbose):
            idx = order[start:start + config.batch_size]
            loss = nn.functional.cross_entropy(model(sequences[idx].to(device)), targets[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        metrics = evaluate_sasrec(model, splits["validation"], ks, config.eval_max_examples, device)
        history.append({"epoch": epoch, "step": step, "loss": total / len(order), **metrics})
        if verbose:
            print(f"SASRec epoch {epoch}: loss {total / len(order):.4f} validation {key} {metrics[key]:.4f}")
        if metrics[key] > best:
            best, bad_epochs = metrics[key], 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
            if bad_epochs >= config.patience:
                break
        if max_steps is not None and step >= max_steps:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    result = {"validation": evaluate_sasrec(model, splits["validation"], ks, device=device),
              "test": evaluate_sasrec(model, splits["test"], ks, device=device),
              "epochs": len(history), "steps": step, "history": history}
    return model, result
