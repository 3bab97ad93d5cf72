"""The training loss of the generative recommender: cross entropy on the labelled SID tokens only.

Why not the model's own ``labels=`` loss: a causal LM computes its output layer at every position of the
batch (``(B, T, V)`` logits), while the full-sequence objective labels only the target items' SID tokens and
the prefix objective only the last item's. Here the final hidden states are taken once, the positions that
carry a label are selected, and the output layer runs on those alone; for a pretrained LLM (a base vocabulary
of tens of thousands of tokens) the softmax also runs over the SID rows only, which is what the trie-constrained
decoder ranks. For a config-built model the softmax keeps the whole (tiny) vocabulary, so the loss equals
the model's own.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import SimCITInputError
from .data import IGNORE_INDEX

LARGE_BASE_VOCABULARY = 1024


class LabelledTokenLoss:
    """``loss = LabelledTokenLoss(model, sid_token_ids)(prepared_model, batch)``.

    Args:
        model: the unwrapped model (``PreTrainedModel`` or ``PeftModel``); its final norm is hooked to read
            the hidden states and its output embedding gives the weight.
        sid_token_ids: the SID token ids, one contiguous range at the end of the vocabulary.
        softmax_over: ``"sid"`` (the SID rows only), ``"vocab"`` (the whole vocabulary) or ``"auto"``
            (``"sid"`` when the base vocabulary has at least ``LARGE_BASE_VOCABULARY`` tokens).
        text_labels: labels that are not SID tokens (item-text alignment examples) are scored over the whole
            vocabulary while SID labels keep the ``softmax_over`` rows; off, such a label is an error.
        dense: a :class:`~hf_simcit.recommender.dense.DenseItemLoss` on the same hidden states, added with
            weight ``dense_weight`` (the dense item head's objective).
    """

    def __init__(self, model: Any, sid_token_ids: list[int], softmax_over: str = "auto", text_labels: bool = False,
                 dense: Any = None, dense_weight: float = 1.0):
        if softmax_over not in ("auto", "sid", "vocab"):
            raise SimCITInputError(f"softmax_over must be 'auto', 'sid' or 'vocab', got {softmax_over!r}")
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.norm = getattr(base.get_decoder(), "norm", None)
        if self.norm is None:
            raise SimCITInputError(f"{type(base).__name__} has no final norm to read hidden states from; train "
                                   "with the model's own loss (labelled_loss: false)")
        self.head = base.get_output_embeddings()
        first, last = min(sid_token_ids), max(sid_token_ids)
        if last - first + 1 != len(sid_token_ids):
            raise SimCITInputError("SID token ids are not one contiguous range")
        if softmax_over == "auto":
            softmax_over = "sid" if first >= LARGE_BASE_VOCABULARY else "vocab"
        self.sid_rows = slice(first, last + 1) if softmax_over == "sid" else None
        self.text_labels = bool(text_labels)
        self.dense, self.dense_weight = dense, float(dense_weight)
        self._hidden: torch.Tensor | None = None
        self.norm.register_forward_hook(self._keep)

    def _keep(self, module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if self._armed:
            self._hidden = output

    _armed = False

    def __call__(self, model: Any, batch: dict[str, torch.Tensor],
                 normalizer: torch.Tensor | float | None = None) -> torch.Tensor:
        """Cross entropy summed over the labelled tokens of ``batch`` (``input_ids``, ``attention_mask``,
        ``labels``, all ``(B, T)``) and divided by ``normalizer`` (default: their number, i.e. the mean);
        ``model`` is the prepared (possibly DDP-wrapped) model.

        Why a normalizer: full-sequence batches carry different numbers of labelled tokens, so under DDP each
        process's own mean, averaged over processes, is not the mean over the global batch; dividing by
        (global count / processes) makes the averaged gradient exactly the global batch's.
        """
        labels = batch["labels"]
        self._armed = True
        try:
            # logits_to_keep=1: the model computes its output layer for one position only; DDP still sees a
            # forward call through its wrapper, so gradient synchronisation works as usual
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=1)
            hidden = self._hidden
        finally:
            self._armed, self._hidden = False, None
        if hidden is None:
            raise RuntimeError("the final norm did not run in the forward pass")
        token_loss = self._token_loss(hidden, labels, normalizer)
        if self.dense is None:
            return token_loss
        return token_loss + self.dense_weight * self.dense(hidden[:, :-1], labels[:, 1:])

    def _token_loss(self, hidden: torch.Tensor, labels: torch.Tensor,
                    normalizer: torch.Tensor | float | None) -> torch.Tensor:
        targets = labels[:, 1:]
        where = targets != IGNORE_INDEX                                   # (B, T-1)
        selected = hidden[:, :-1][where]                                  # (N, d)
        targets = targets[where]                                          # (N,)
        text = None
        if self.sid_rows is not None and self.text_labels:
            # item-text alignment labels words: those positions take the softmax over the whole vocabulary
            text = (targets < self.sid_rows.start) | (targets >= self.sid_rows.stop)
            if bool(text.any()):
                text_loss = torch.nn.functional.cross_entropy(self.head(selected[text]).float(), targets[text],
                                                              reduction="sum")
                selected, targets = selected[~text], targets[~text]
            else:
                text = None
        if self.sid_rows is None:
            logits = self.head(selected)
        elif isinstance(self.head, torch.nn.Linear):
            bias = None if self.head.bias is None else self.head.bias[self.sid_rows]
            logits = torch.nn.functional.linear(selected, self.head.weight[self.sid_rows], bias)
            targets = targets - self.sid_rows.start
        else:   # a peft wrapper (trainable SID rows): its forward applies the trained rows
            logits = self.head(selected)[:, self.sid_rows]
            targets = targets - self.sid_rows.start
        if targets.numel() and self.sid_rows is not None and int(targets.min()) < 0:
            raise SimCITInputError("a label is not a SID token; use softmax_over 'vocab' (e.g. with add_eos)")
        if text is not None:
            total = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum") + text_loss
            count = targets.numel() + int(text.sum())
            return total / (count if normalizer is None else normalizer)
        if normalizer is None:
            return torch.nn.functional.cross_entropy(logits.float(), targets)
        return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum") / normalizer
