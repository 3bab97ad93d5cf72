"""SASRec (Kang & McAuley, 2018), compact: the classic baseline on exactly the generator's splits.

Why our own: it must read the same ``DatasetDict`` (``history`` -> ``target``), train on the same targets
and be ranked with the same full-ranking metric code as the generative recommender, so the comparison has
no preprocessing or protocol gap. Causal self-attention over item embeddings, full-softmax cross entropy
over the whole catalogue, scores = last hidden state x item table.

Two objectives (:attr:`SASRecConfig.objective`):

* ``"all_positions"`` (default, the strong published set-up, e.g. Klenitskiy & Vasilev 2023 "SASRec+"): one
  window of <= ``max_len + 1`` items per user, cross entropy at every position, so one forward pass
  supervises every training target of the window. The windows come from
  :func:`hf_simcit.data.training_sequences_from_splits` + :func:`hf_simcit.data.training_windows`, which
  rebuild the users' sequences from the leave-one-out splits and carry every target of ``splits["train"]``
  exactly once per epoch (held-out validation/test targets stay masked, as the prefix split drops them).
* ``"last_position"`` (RecBole's objective): one example per prefix of ``splits["train"]``, loss on the last
  position only; ``max_len`` times the encoder work per target.

Item representation (:attr:`SASRecConfig.sid_sizes`): one learned vector per item id (the classic model), or
the *sum of learned embeddings of the item's SID codes* (one table per SID level), used for the input and the
output alike. Why SIDs: items that share a SID prefix share parameters (RQ codes are additive, so the sum
mirrors the quantizer's own reconstruction), and an item that had no interaction in training is still
scored, from its SID; the ranking stays exact over the catalogue (no beam). It is the SID model closest to
SASRec, the bridge between the ID baseline and the token generator.

Positions count from the first (oldest) item of the visible sequence, for training and scoring alike, and
are computed from the non-padding tokens, so padding (left or right, any amount) never changes a score.
Why from the start, not back from the most recent item: under ``all_positions`` the target at index ``j``
of a window sees ``items[:j]``; counted from the start those items get positions ``0..j-1`` in training and
exactly the same positions when that history is scored, whereas counting back from the end would give them
``max_len - L + ..`` in training (``L`` = window length) but ``max_len - j + ..`` at scoring time.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import SimCITInputError
from ..training.early_stopping import EarlyStopping
from ..utils.dropout import Dropout, check_probability

IGNORE_INDEX = -100
OBJECTIVES = ("all_positions", "last_position")
LAYER_NORMS = ("pre", "post")


@dataclass
class SASRecConfig:
    """SASRec hyper-parameters; the defaults are the strong published Beauty set-up (see module docstring).

    ``inner_size`` 256 and ``dropout`` 0.5 are RecBole's SASRec defaults and the original paper's dropout for
    the sparse Amazon data; truncated-normal init (std 0.02), AdamW at 1e-3. ``hidden_size`` 128, not RecBole's
    64: on Beauty our 2 x 64 tests 6% below the published R@10 (0.0806 vs 0.0859, 3 seeds) and 2 x 128 reaches it
    (0.0865), and validation chooses it too; small data may choose 64 on its own validation (ML-100K does, so its
    pipeline recipe sets it). Figures: ``benchmarks/results/recommend-{beauty,ml-100k}-sasrec-h*-seeds.json``.
    ``batch_size`` counts user windows (``all_positions``) or prefix examples (``last_position``).
    ``num_epochs`` is a cap: training stops after ``patience`` validation evaluations (every ``eval_every``
    epochs, NDCG@max(ks) on ``eval_max_examples`` validation users sampled with
    :func:`hf_simcit.data.sample_rows`, None = all) without improvement (of the value or of its trailing mean
    over ``patience_window`` evaluations, as the generator's rule), and the best state is restored;
    ``eval_max_examples=0``: no validation, all ``num_epochs`` trained and the last state kept (a final fit).
    ``max_len`` should equal the data's history cap (20 for the prepared datasets): longer histories are
    truncated to it, and training contexts never exceed it nor the splits' longest history.
    ``layer_norm`` ``"pre"``: item embeddings scaled by sqrt(d), pre-LN blocks and a final LayerNorm (Kang &
    McAuley's code); ``"post"``: LayerNorm of item + position embeddings, post-LN blocks, no scaling
    (RecBole's SASRec), for a like-for-like comparison with RecBole.
    ``sid_sizes`` (codes per SID level, e.g. ``[256, 256, 256, 7]``): items are the sums of their SID codes'
    embeddings; the model then needs the ``(num_items, levels)`` code table (``SASRec(config, item_codes)``).
    ``negatives``: 0 = cross entropy over the whole catalogue; ``N`` = sampled softmax, the target against
    ``N`` items drawn uniformly for each target (a draw equal to the target is masked), as eSASRec
    (arXiv 2508.06450) trains SASRec (measured on Beauty: below the full softmax, RESULTS.md); scoring always ranks the whole catalogue.
    ``eval_exclude_history``: the early stopping's validation ranks without each user's history items (RecBole's
    protocol, for data without repeat consumption), so the checkpoint is chosen by the metric that protocol reports.
    """

    num_items: int
    max_len: int = 20
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    inner_size: int = 256
    dropout: float = 0.5
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    num_epochs: int = 200
    patience: int = 10
    patience_window: int = 1
    eval_every: int = 1
    eval_max_examples: int | None = None
    objective: str = "all_positions"
    layer_norm: str = "pre"
    initializer_range: float = 0.02
    sid_sizes: list[int] | None = None
    negatives: int = 0
    eval_exclude_history: bool = False
    seed: int = 42

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise SimCITInputError(f"SASRecConfig.objective must be one of {', '.join(OBJECTIVES)}; "
                                   f"got {self.objective!r}")
        if self.layer_norm not in LAYER_NORMS:
            raise SimCITInputError(f"SASRecConfig.layer_norm must be one of {', '.join(LAYER_NORMS)}; "
                                   f"got {self.layer_norm!r}")
        for name in ("num_items", "max_len", "hidden_size", "num_layers", "num_heads", "inner_size",
                     "batch_size", "num_epochs", "patience", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise SimCITInputError(f"SASRecConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.sid_sizes is not None and (not self.sid_sizes or min(self.sid_sizes) < 1):
            raise SimCITInputError(f"SASRecConfig.sid_sizes must list >= 1 code per level, got {self.sid_sizes!r}")
        if self.negatives < 0:
            raise SimCITInputError(f"SASRecConfig.negatives must be >= 0 (0: the full softmax), got {self.negatives}")
        check_probability(self.dropout, "SASRecConfig.dropout")
        if self.eval_max_examples is not None and self.eval_max_examples < 0:
            raise SimCITInputError(f"SASRecConfig.eval_max_examples must be >= 0 or None, got {self.eval_max_examples}")
        EarlyStopping(self.patience, self.patience_window)      # a bad window stops here, with one line
        if self.hidden_size % self.num_heads:
            raise SimCITInputError(f"SASRecConfig.hidden_size ({self.hidden_size}) must be divisible by "
                                   f"num_heads ({self.num_heads})")


class SASRec(nn.Module):
    """Input ``(B, T)`` item indices + 1 (0 = padding, left-padded for scoring); output ``(B, num_items)``.

    ``item_codes``: ``(num_items, levels)`` SID codes, required with ``config.sid_sizes`` (see the module
    docstring); kept as a buffer, so the item table follows the codes of the catalogue it ranks.
    """

    def __init__(self, config: SASRecConfig, item_codes: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        d = config.hidden_size
        if config.sid_sizes is None:
            if item_codes is not None:
                raise SimCITInputError("SASRec: item_codes given but config.sid_sizes is None")
            self.item_embedding = nn.Embedding(config.num_items + 1, d, padding_idx=0)
        else:
            self.code_embedding = nn.Embedding(sum(config.sid_sizes), d)
            self.register_buffer("item_codes", _offset_codes(item_codes, config), persistent=True)
        self.position_embedding = nn.Embedding(config.max_len, d)
        self.dropout = Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(d, config.num_heads, dim_feedforward=config.inner_size,
                                           dropout=config.dropout, activation="gelu", batch_first=True,
                                           norm_first=config.layer_norm == "pre")
        # the blocks' residual and FFN dropouts drawn as the embeddings' (attention dropout stays torch's)
        layer.dropout, layer.dropout1, layer.dropout2 = (Dropout(config.dropout) for _ in range(3))
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        # pre-LN normalises the encoder's output, post-LN its input (the blocks end in a LayerNorm)
        self.final_norm = nn.LayerNorm(d) if config.layer_norm == "pre" else nn.Identity()
        self.embedding_norm = nn.LayerNorm(d) if config.layer_norm == "post" else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        """Truncated normal (std ``initializer_range``) for every matrix, zero biases, unit LayerNorms.

        Why: PyTorch's defaults (Xavier/Kaiming uniform) give the attention and FFN weights a far larger
        scale than the 0.02-std embeddings; the published SASRec/BERT-style set-ups use one small std.
        """
        std = self.config.initializer_range
        for name, param in self.named_parameters():
            if param.dim() >= 2:
                nn.init.trunc_normal_(param, std=std, a=-2 * std, b=2 * std)
            elif name.endswith("bias"):
                nn.init.zeros_(param)
        if self.config.sid_sizes is None:
            with torch.no_grad():
                self.item_embedding.weight[0].zero_()

    def set_item_codes(self, item_codes: torch.Tensor) -> SASRec:
        """Rank another catalogue from now on, e.g. the training catalogue plus cold-start items with SIDs from
        the trained quantizer: ``(num_items', levels)`` codes within ``config.sid_sizes``; no retraining."""
        from dataclasses import replace

        if self.config.sid_sizes is None:
            raise SimCITInputError("set_item_codes needs a SASRec over SIDs (config.sid_sizes); an id model "
                                   "cannot rank items it never saw")
        config = replace(self.config, num_items=len(item_codes))
        self.item_codes = _offset_codes(item_codes, config).to(self.item_codes.device)
        self.config = config
        return self

    def item_table(self) -> torch.Tensor:
        """``(num_items + 1, d)``: row 0 the (zero) padding, row ``i + 1`` item ``i``'s embedding."""
        if self.config.sid_sizes is None:
            return self.item_embedding.weight
        items = self.code_embedding(self.item_codes).sum(1)                     # (num_items, d)
        return torch.cat([items.new_zeros(1, items.shape[1]), items])

    def hidden_states(self, sequences: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Final-normed hidden states ``(B, T, d)`` at every position (the training objective's input).

        Position ids count the real items from the oldest one (``cumsum`` over the non-padding mask). ``table``:
        :meth:`item_table`, when the caller already composed it (a SASRec over SIDs sums codes to build it).
        """
        real = sequences != 0
        positions = (real.long().cumsum(1) - 1).clamp(min=0)
        table = self.item_table() if table is None else table
        hidden = nn.functional.embedding(sequences, table, padding_idx=0)
        if self.config.layer_norm == "pre":
            hidden = hidden * self.config.hidden_size ** 0.5
        hidden = self.dropout(self.embedding_norm(hidden + self.position_embedding(positions)))
        hidden = self.encoder(hidden, mask=attention_mask(sequences, self.config.num_heads))
        return self.final_norm(hidden)

    def item_scores(self, hidden: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``(..., num_items)`` of hidden states against the (shared) item table."""
        return hidden @ (self.item_table() if table is None else table)[1:].T

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """Scores of the next item after the last column (left padding: the most recent item)."""
        table = self.item_table()                                   # composed once for input and output
        return self.item_scores(self.hidden_states(sequences, table)[:, -1], table)


def _offset_codes(item_codes: torch.Tensor | None, config: SASRecConfig) -> torch.Tensor:
    """The ``(num_items, levels)`` codes as rows of the one code table (level ``l`` offset by the sizes before it)."""
    if item_codes is None:
        raise SimCITInputError("SASRec with sid_sizes needs item_codes: the (num_items, levels) SID code table")
    codes = torch.as_tensor(item_codes, dtype=torch.long)
    sizes = torch.as_tensor(config.sid_sizes, dtype=torch.long)
    if codes.ndim != 2 or codes.shape != (config.num_items, len(sizes)):
        raise SimCITInputError(f"SASRec item_codes: expected shape ({config.num_items}, {len(sizes)}) (items x SID "
                               f"levels), got {tuple(codes.shape)}")
    bad = (codes < 0) | (codes >= sizes)
    if bad.any():
        item, level = (int(x) for x in bad.nonzero()[0])
        raise SimCITInputError(f"SASRec item_codes: item {item} has code {int(codes[item, level])} at level {level}, "
                               f"outside 0..{int(sizes[level]) - 1}")
    return codes + torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])


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


def _batch_scores(model: SASRec, batch: torch.Tensor, exclude_history: bool) -> torch.Tensor:
    """``(B, num_items)`` scores of encoded histories; ``exclude_history``: ``-inf`` on each history's items."""
    scores = model(batch)
    if exclude_history:   # one spare column takes the padding's writes
        scores = torch.cat([scores, scores.new_zeros(len(batch), 1)], dim=1)
        scores = scores.scatter(1, torch.where(batch > 0, batch - 1, model.config.num_items), float("-inf"))
        scores = scores[:, :-1]
    return scores


@torch.no_grad()
def _rank_encoded(model: SASRec, sequences: torch.Tensor, top: int, batch_size: int,
                  device: str | torch.device, exclude_history: bool = False) -> torch.Tensor:
    model.eval()
    top = min(top, model.config.num_items)
    out = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start:start + batch_size].to(device)
        out.append(_batch_scores(model, batch, exclude_history).topk(top, dim=-1).indices.cpu())
    return torch.cat(out) if out else torch.empty(0, top, dtype=torch.long)


@torch.no_grad()
def score_items(model: SASRec, histories: Sequence[Sequence[int]], batch_size: int = 512,
                device: str | torch.device = "cpu", exclude_history: bool = False) -> torch.Tensor:
    """The full ``(n, num_items)`` score matrix (for rankings assembled elsewhere, e.g. places reserved for
    new items); :func:`rank_items` keeps only each row's top items and needs far less memory."""
    model.eval()
    sequences = encode_histories(histories, model.config.max_len, model.config.num_items)
    parts = [_batch_scores(model, sequences[start:start + batch_size].to(device), exclude_history).cpu()
             for start in range(0, len(sequences), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0, model.config.num_items)


def rank_items(model: SASRec, histories: Sequence[Sequence[int]], top: int, batch_size: int = 512,
               device: str | torch.device = "cpu", exclude_history: bool = False) -> torch.Tensor:
    """Top-``top`` item indices ``(n, top)`` over the full catalogue for each history; ``exclude_history``:
    never one of the history's (last ``max_len``) items, as :func:`hf_simcit.training.evaluate_recommender`."""
    sequences = encode_histories(histories, model.config.max_len, model.config.num_items)
    return _rank_encoded(model, sequences, top, batch_size, device, exclude_history)


def evaluate_sasrec(model: SASRec, split: Any, ks: Sequence[int] = (5, 10), max_examples: int | None = None,
                    device: str | torch.device = "cpu", seed: int = 0, exclude_history: bool = False
                    ) -> dict[str, float]:
    """Full-ranking Recall/NDCG@ks and MRR on ``split`` (``max_examples`` rows sampled with
    :func:`hf_simcit.data.sample_rows`, a fixed seeded random sample; None = every row); ``exclude_history``:
    the history's items are never ranked (RecBole's protocol)."""
    from ..data import sample_rows
    from ..metrics.ranking import ranking_metrics

    rows = sample_rows(len(split), max_examples, seed)
    part = split[rows] if len(rows) < len(split) else split[:]
    ranked = rank_items(model, part["history"], max(ks), device=device, exclude_history=exclude_history)
    metrics = ranking_metrics(ranked, torch.as_tensor(part["target"]), ks)
    metrics["num_examples"] = len(rows)
    return metrics


# --------------------------------------------------------------------------------------------------------
# Training data: left-padded (input, labels) rows; labels = IGNORE_INDEX where no loss is carried
# --------------------------------------------------------------------------------------------------------
def _columns(split: Any) -> dict[str, list]:
    return split[:] if hasattr(split, "column_names") else split


def all_position_examples(splits: Any, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One row per user window: inputs ``(N, max_len)`` (items + 1, left-padded) and labels ``(N, max_len)``
    (the next item's index where that item is a training target, else ``IGNORE_INDEX``).

    A window holds at most ``min(max_len, longest history in the splits)`` context items, so no training
    target sees more history than a prompt would show it.
    """
    from ..data import training_sequences_from_splits, training_windows

    train, validation, test = (_columns(splits[k]) for k in ("train", "validation", "test"))
    try:
        sequences = training_sequences_from_splits(train, validation, test)
    except SimCITInputError as err:
        raise SimCITInputError(str(err).replace("objective 'prefix'",
                                                "SASRecConfig(objective='last_position')")) from err
    cap = max((len(h) for part in (train, validation, test) for h in part["history"]), default=1)
    windows = training_windows(sequences, max_history=max(1, min(max_len, cap)), stride=None)
    inputs = torch.zeros(len(windows), max_len, dtype=torch.long)
    labels = torch.full((len(windows), max_len), IGNORE_INDEX, dtype=torch.long)
    for row, window in enumerate(windows):
        if window.is_target[0]:   # predict_first=False: the first item of a window is context only
            raise AssertionError("training_windows marked a window's first item as a target")
        items = torch.as_tensor(window.items, dtype=torch.long)
        flags = torch.as_tensor(window.is_target[1:], dtype=torch.bool)
        n = len(window.items) - 1
        inputs[row, max_len - n:] = items[:-1] + 1
        labels[row, max_len - n:] = torch.where(flags, items[1:], IGNORE_INDEX)
    return inputs, labels


def last_position_examples(splits: Any, max_len: int, num_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One row per ``splits["train"]`` example: its encoded history, label = target at the last column."""
    train = _columns(splits["train"])
    keep = [i for i, h in enumerate(train["history"]) if len(h) > 0]
    inputs = encode_histories([train["history"][i] for i in keep], max_len, num_items)
    labels = torch.full_like(inputs, IGNORE_INDEX)
    labels[:, -1] = torch.as_tensor([int(train["target"][i]) for i in keep], dtype=torch.long)
    return inputs, labels


def length_grouped_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                           group_batches: int = 50) -> list[torch.Tensor]:
    """Seeded random batches of similar length: shuffle, sort chunks of ``batch_size * group_batches`` rows
    by length, cut into batches, shuffle the batches. Why: a batch is padded to its longest row only, and
    most users are short, so this cuts the padded positions the encoder computes."""
    order = torch.randperm(len(lengths), generator=generator)
    batches: list[torch.Tensor] = []
    for start in range(0, len(order), batch_size * group_batches):
        part = order[start:start + batch_size * group_batches]
        part = part[torch.argsort(lengths[part], descending=True, stable=True)]
        batches.extend(part.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _sample_metrics(model: SASRec, sequences: torch.Tensor, targets: torch.Tensor, ks: Sequence[int],
                    device: torch.device, exclude_history: bool = False) -> dict[str, float]:
    """Metrics of the fixed validation sample (pre-encoded once); a seam for tests."""
    from ..metrics.ranking import ranking_metrics

    return ranking_metrics(_rank_encoded(model, sequences, max(ks), 512, device, exclude_history), targets, ks)


def sampled_softmax_loss(hidden: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, negatives: int,
                         generator: torch.Generator | None) -> torch.Tensor:
    """Cross entropy of each target against ``negatives`` uniformly drawn items (its own draw per target).

    ``hidden``: ``(n, d)``; ``table``: ``(num_items + 1, d)`` (row 0 padding); ``targets``: ``(n,)`` item
    indices. A draw that hits its row's target is masked, so the target is never its own negative.
    """
    num_items = table.shape[0] - 1
    drawn = torch.randint(0, num_items, (len(targets), negatives), generator=generator).to(targets.device)
    candidates = torch.cat([targets[:, None], drawn], dim=1)                        # (n, 1 + negatives)
    hit = torch.cat([torch.zeros_like(targets[:, None], dtype=torch.bool), drawn == targets[:, None]], dim=1)
    logits = torch.einsum("nd,nkd->nk", hidden, table[candidates + 1]).masked_fill(hit, float("-inf"))
    return nn.functional.cross_entropy(logits, torch.zeros_like(targets))


def training_step(model: SASRec, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, labels: torch.Tensor,
                  negative_generator: torch.Generator | None = None) -> tuple[float, int]:
    """One optimizer step of ``train_sasrec`` on a batch; returns (mean CE per labelled target, targets).

    ``inputs``/``labels``: ``(B, T)`` item windows and their next items (``IGNORE_INDEX`` where unlabelled).
    The output layer runs only at labelled positions; with ``model.config.negatives`` the softmax is sampled
    (``negative_generator`` draws the negatives; ``None``: torch's default generator). A function of its own so
    that ``benchmarks/dropout_speed.py`` times the trainer's very step.
    """
    chosen = labels != IGNORE_INDEX
    table = model.item_table()                                        # composed once per step
    hidden = model.hidden_states(inputs, table)[chosen]                 # (targets, d): no wasted logits
    if model.config.negatives:
        loss = sampled_softmax_loss(hidden, table, labels[chosen], model.config.negatives, negative_generator)
    else:
        loss = nn.functional.cross_entropy(model.item_scores(hidden, table), labels[chosen])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), int(chosen.sum())


def train_sasrec(splits: Any, config: SASRecConfig, *, device: str | torch.device | None = None,
                 ks: Sequence[int] = (5, 10), max_steps: int | None = None, verbose: bool = True,
                 item_codes: torch.Tensor | None = None,
                 evaluate_splits: Sequence[str] = ("validation", "test")) -> tuple[SASRec, dict[str, Any]]:
    """Train with ``config.objective``, early-stop on validation NDCG@max(ks), return the best model and
    ``{"validation", "test"`` (the full ``evaluate_splits``; a caller that scores a split itself leaves it out),
    ``"epochs", "steps", "best_epoch", "train_s"`` (training seconds,
    evaluation excluded), ``"history"}``: one entry per evaluated epoch, ``{"epoch", "step", "seconds"``
    (cumulative training seconds), ``"loss"`` (mean CE per target), validation-sample metrics ``}``.

    ``max_steps`` caps the optimizer steps (a training budget equal to the generator's); ``patience`` counts
    evaluations without improvement. ``item_codes``: the ``(num_items, levels)`` SID codes of a SASRec over SIDs
    (``config.sid_sizes``).
    """
    from tqdm.auto import tqdm

    from ..data import sample_rows

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(config.seed)
    model = SASRec(config, item_codes).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.objective == "all_positions":
        inputs, labels = all_position_examples(splits, config.max_len)
    else:
        inputs, labels = last_position_examples(splits, config.max_len, config.num_items)
    if len(inputs) == 0:
        raise SimCITInputError("SASRec: the training split has no usable example")
    lengths = (inputs != 0).sum(1)
    validation = splits["validation"]
    rows = [] if config.eval_max_examples == 0 else sample_rows(len(validation), config.eval_max_examples,
                                                                 config.seed)
    sample = validation[rows]
    sample_inputs = encode_histories(sample["history"], config.max_len, config.num_items)
    sample_targets = torch.as_tensor(sample["target"], dtype=torch.long)

    key = f"ndcg@{max(ks)}"
    stopping = EarlyStopping(config.patience, config.patience_window)
    best_state, best_epoch, step, history = None, -1, 0, []
    train_s, epoch = 0.0, -1
    generator = torch.Generator().manual_seed(config.seed)
    negative_generator = torch.Generator().manual_seed(config.seed + 1)     # batch order stays as without
    for epoch in range(config.num_epochs):
        start_time = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        batches = length_grouped_batches(lengths, config.batch_size, generator)
        for idx in tqdm(batches, desc=f"SASRec epoch {epoch}", leave=False, disable=not verbose):
            width = int(lengths[idx].max())
            loss, n = training_step(model, optimizer, inputs[idx, -width:].to(device),
                                    labels[idx, -width:].to(device), negative_generator)
            total, count, step = total + loss * n, count + n, step + 1
            if max_steps is not None and step >= max_steps:
                break
        train_s += time.perf_counter() - start_time
        capped = max_steps is not None and step >= max_steps
        last = capped or epoch == config.num_epochs - 1
        if ((epoch + 1) % config.eval_every and not last) or not rows:
            continue
        metrics = _sample_metrics(model, sample_inputs, sample_targets, ks, device, config.eval_exclude_history)
        history.append({"epoch": epoch, "step": step, "seconds": round(train_s, 4),
                        "loss": total / max(count, 1), **metrics})
        if verbose:
            print(f"SASRec epoch {epoch}: loss {total / max(count, 1):.4f} validation {key} {metrics[key]:.4f} "
                  f"({train_s:.0f} s training)")
        if stopping.update(metrics[key]):
            best_epoch, best_state = epoch, copy.deepcopy(model.state_dict())
        if stopping.should_stop or capped:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    result = {**{name: evaluate_sasrec(model, splits[name], ks, device=device) for name in evaluate_splits},
              "epochs": epoch + 1, "steps": step, "best_epoch": best_epoch, "train_s": round(train_s, 2),
              "history": history}
    return model, result
