"""Training examples for the generative recommender: SID token sequences with labels.

Two objectives:
- ``full_sequence`` (default for the ``plain`` template): one sequence per user window
  (:func:`hf_simcit.data.training_windows`), loss on every SID token of every training target in it, so one
  forward pass supervises every target that the prefix examples would supervise one at a time.
- ``prefix``: one example per (history -> target) row of the training split, loss on the target's SID only
  (the ``chat`` template, and an option for ``plain``).

Why token ids, not text: with the ``plain`` template a prompt is just the history's SID tokens one after the
other, so we concatenate rows of ``item_token_ids`` directly (no string round trip, no tokenizer surprises).
The ``chat`` template wraps the same SID strings in the model's chat template for instruction-tuned LLMs.
Labels are ``-100`` everywhere except on the target's SID tokens (and the optional end-of-sequence token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import SimCITInputError

IGNORE_INDEX = -100

DEFAULT_INSTRUCTION = (
    "Here are the items a user interacted with, oldest first: {history}. Predict the next item the user will "
    "interact with."
)


@dataclass
class PromptTemplate:
    """How a history becomes a prompt.

    ``plain``: ``[bos] sid(h_1) sid(h_2) ... sid(h_n)`` then the target ``sid(t) [eos]`` (small models).
    ``chat``: the tokenizer's chat template with one user turn ``instruction.format(history=...)`` and the
    target SID as the assistant's answer (instruction-tuned LLMs).
    """

    kind: str = "plain"
    instruction: str = DEFAULT_INSTRUCTION
    add_eos: bool = False
    history_separator: str = ", "

    def __post_init__(self):
        if self.kind not in ("plain", "chat"):
            raise SimCITInputError(f"prompt template must be 'plain' or 'chat', got {self.kind!r}")


class SIDPromptFormatter:
    """Turns item-index histories and targets into LLM token ids.

    Args:
        tokenizer: the LLM tokenizer, already extended with the SID tokens.
        item_token_ids: ``(num_items, num_levels)`` LongTensor, row ``i`` = token ids of item ``i``'s SID.
        template: a :class:`PromptTemplate`.
    """

    def __init__(self, tokenizer: Any, item_token_ids: torch.Tensor, template: PromptTemplate | None = None):
        self.tokenizer = tokenizer
        self.template = template or PromptTemplate()
        self.table = [list(map(int, row)) for row in torch.as_tensor(item_token_ids).tolist()]
        self.num_items = len(self.table)
        self.num_levels = len(self.table[0]) if self.table else 0
        if self.template.kind == "chat":
            if getattr(tokenizer, "chat_template", None) is None:
                raise SimCITInputError("prompt template 'chat' needs a tokenizer with a chat_template; use 'plain'")
            self.sid_strings = ["".join(tokenizer.convert_ids_to_tokens(row)) for row in self.table]

    # -- validation -------------------------------------------------------------------------------------
    def check_items(self, items: Sequence[int], where: str) -> None:
        bad = sorted({int(i) for i in items if not 0 <= int(i) < self.num_items})
        if bad:
            raise SimCITInputError(
                f"{where}: item index(es) {bad[:10]} not in the SID table (it has {self.num_items} items, "
                "0..{}); re-run `assign` on the same prepared data".format(self.num_items - 1))

    # -- prompts ----------------------------------------------------------------------------------------
    def prompt_ids(self, history: Sequence[int], where: str = "history") -> list[int]:
        """Token ids of the prompt for one history (item indices, oldest first)."""
        if len(history) == 0:
            raise SimCITInputError(f"{where}: empty history; a recommendation needs at least one past item")
        self.check_items(history, where)
        if self.template.kind == "plain":
            ids = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
            for item in history:
                ids.extend(self.table[int(item)])
            return ids
        return self._chat_prompt(self.template.instruction.format(
            history=self.template.history_separator.join(self.sid_strings[int(i)] for i in history)))

    def _chat_prompt(self, text: str) -> list[int]:
        """Token ids of one user turn ``text`` in the chat template, up to the assistant's answer."""
        prompt = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def target_ids(self, target: int) -> list[int]:
        ids = list(self.table[int(target)])
        if self.template.add_eos and self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    # -- datasets.map ------------------------------------------------------------------------------------
    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        """Batched ``Dataset.map`` function: ``history``, ``target`` -> ``input_ids``, ``labels``."""
        input_ids, labels = [], []
        users = batch.get("user_id", [None] * len(batch["history"]))
        for user, history, target in zip(users, batch["history"], batch["target"]):
            where = f"user_id {user}" if user is not None else "example"
            self.check_items([target], f"{where} target")
            prompt = self.prompt_ids(history, where)
            completion = self.target_ids(target)
            input_ids.append(prompt + completion)
            labels.append([IGNORE_INDEX] * len(prompt) + completion)
        return {"input_ids": input_ids, "labels": labels}


ALIGNMENT_TASKS = ("title_to_sid", "sid_to_title")


class ItemTextAlignment:
    """LC-Rec-style alignment examples: each item's text next to its SID, so the SID tokens are tied to the
    LLM's language knowledge (the reason to use a pretrained LLM at all).

    ``title_to_sid``: the item's text, then its SID (loss on the SID tokens): the model learns to name an
    item it has read about. ``sid_to_title``: the SID, then the text (loss on the text tokens): each SID token
    gets the meaning of its items' words. With the ``plain`` template the examples read
    ``[bos] Item: <text>\nID: <sid>`` and ``[bos] <sid> Title: <text>``; with ``chat`` they are a user
    question and the assistant's answer. ``max_text_tokens`` cuts long texts (in tokens).
    """

    def __init__(self, prompts: SIDPromptFormatter, texts: Sequence[str], *, tasks: Sequence[str] = ALIGNMENT_TASKS,
                 max_text_tokens: int = 32):
        if len(texts) != prompts.num_items:
            raise SimCITInputError(f"item text: {len(texts)} texts for {prompts.num_items} items in the SID table; "
                                   "the text column must have one entry per item, in the SID table's order")
        unknown = sorted(set(tasks) - set(ALIGNMENT_TASKS))
        if unknown or not tasks:
            raise SimCITInputError(f"item text alignment tasks must be among {list(ALIGNMENT_TASKS)}, got {list(tasks)}")
        if max_text_tokens < 1:
            raise SimCITInputError(f"max_text_tokens must be >= 1, got {max_text_tokens}")
        tok = prompts.tokenizer
        if getattr(tok, "vocab_size", 0) <= len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id,
                                                 tok.unk_token_id}):
            raise SimCITInputError("item text needs a pretrained model's tokenizer (model_name_or_path); the "
                                   "config-built Llama's tokenizer holds only special and SID tokens")
        self.prompts, self.tasks, self.max_text_tokens = prompts, tuple(tasks), int(max_text_tokens)
        self.texts = ["" if t is None else str(t).strip() for t in texts]
        empty = [i for i, t in enumerate(self.texts) if not t]
        if len(empty) == len(self.texts):
            raise SimCITInputError("item text: every item's text is empty")
        self.items = [i for i, t in enumerate(self.texts) if t]   # items without text get no example

    def _text_ids(self, text: str) -> list[int]:
        return list(self.prompts.tokenizer(text, add_special_tokens=False)["input_ids"])[:self.max_text_tokens]

    def _text(self, item: int) -> str:
        """The item's text cut to ``max_text_tokens`` tokens (decoded back, for chat prompts)."""
        return self.prompts.tokenizer.decode(self._text_ids(self.texts[item]))

    def example(self, task: str, item: int) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` of one alignment example."""
        prompts, tok = self.prompts, self.prompts.tokenizer
        sid = prompts.table[item]
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        eos = [tok.eos_token_id] if prompts.template.add_eos and tok.eos_token_id is not None else []
        if prompts.template.kind == "chat":
            if task == "title_to_sid":
                prompt = prompts._chat_prompt(f"Which item is this: {self._text(item)}? Answer with its item ID.")
                answer = sid + eos
            else:
                prompt = prompts._chat_prompt(f"What is item {prompts.sid_strings[item]}?")
                answer = self._text_ids(self.texts[item]) + eos
        elif task == "title_to_sid":
            prompt = bos + self._text_ids("Item: ") + self._text_ids(self.texts[item]) + self._text_ids("\nID:")
            answer = sid + eos
        else:
            prompt = bos + sid + self._text_ids(" Title:")
            answer = self._text_ids(" " + self.texts[item]) + eos
        return prompt + answer, [IGNORE_INDEX] * len(prompt) + answer

    def dataset(self, desc: str = "item text alignment") -> Any:
        """Every (task, item) example once: ``input_ids`` + ``labels``, mixed into an epoch of training."""
        from datasets import Dataset

        input_ids, labels = [], []
        for task in self.tasks:
            for item in self.items:
                ids, lab = self.example(task, item)
                input_ids.append(ids)
                labels.append(lab)
        return Dataset.from_dict({"input_ids": input_ids, "labels": labels})


class FullSequenceFormatter:
    """Turns training windows into ``[bos] sid(i_1) ... sid(i_n)`` with labels on the target items' tokens.

    The label of a target item's SID tokens sits where the item is, so with the usual shift the model predicts
    it from ``[bos]`` and the SIDs before it in the window: exactly the ``plain`` prompt of that history (a
    later window of a long user shows a shorter context, see :func:`hf_simcit.data.training_windows`).
    Non-targets (the window's first item, targets counted in an earlier window, training targets equal to the
    user's validation/test target) are ``-100``.
    """

    def __init__(self, prompts: SIDPromptFormatter):
        if prompts.template.kind != "plain":
            raise SimCITInputError("the full_sequence objective needs the 'plain' prompt template; use objective "
                                   "'prefix' with the 'chat' template")
        self.prompts = prompts

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        """Batched ``Dataset.map`` function: ``user_id``, ``items``, ``is_target`` -> ``input_ids``, ``labels``."""
        table, bos = self.prompts.table, self.prompts.tokenizer.bos_token_id
        input_ids, labels = [], []
        for user, items, flags in zip(batch["user_id"], batch["items"], batch["is_target"]):
            self.prompts.check_items(items, f"user_id {user} training items")
            ids = [bos] if bos is not None else []
            lab = [IGNORE_INDEX] * len(ids)
            for item, flag in zip(items, flags):
                tokens = table[int(item)]
                ids.extend(tokens)
                lab.extend(tokens if flag else [IGNORE_INDEX] * len(tokens))
            input_ids.append(ids)
            labels.append(lab)
        return {"input_ids": input_ids, "labels": labels}


def build_full_sequence_dataset(splits: Any, prompts: SIDPromptFormatter, *, max_history: int | None = None,
                                stride: int | None = None, predict_first: bool = False,
                                desc: str = "SID sequences") -> Any:
    """One example per user window (``input_ids`` + ``labels``) from the train/validation/test splits.

    ``max_history`` defaults to the longest history in the splits (the prepared data's cap). The windows are
    rebuilt from the split rows and checked to reproduce them (:func:`hf_simcit.data.training_sequences_from_splits`),
    so this objective supervises exactly the training split's targets, each once per epoch.
    """
    from datasets import Dataset

    from ..data.splits import training_sequences_from_splits, training_windows

    missing = [name for name in ("train", "validation", "test") if name not in splits]
    if missing:
        raise SimCITInputError(f"the full_sequence objective needs train, validation and test splits; missing {missing}")
    columns = [splits[name][:] for name in ("train", "validation", "test")]
    sequences = training_sequences_from_splits(*columns)
    if max_history is None:
        max_history = max((len(h) for part in columns for h in part["history"]), default=1) or 1
    windows = training_windows(sequences, max_history=max_history, stride=stride, predict_first=predict_first)
    table = Dataset.from_dict({"user_id": [w.user_id for w in windows], "items": [w.items for w in windows],
                               "is_target": [w.is_target for w in windows]})
    return table.map(FullSequenceFormatter(prompts), batched=True, remove_columns=table.column_names, desc=desc,
                     load_from_cache_file=False)


def build_training_dataset(split: Any, formatter: SIDPromptFormatter, *, empty_history: str = "skip",
                           desc: str = "SID prompts") -> Any:
    """Map a data-layer split (``user_id``, ``history``, ``target``) to ``input_ids`` + ``labels``.

    Examples with an empty history carry no signal for a sequence model: they are dropped (``"skip"``,
    the default, counted in the log) or rejected (``"error"``).
    """
    missing = {"history", "target"} - set(split.column_names)
    if missing:
        raise SimCITInputError(f"split lacks column(s) {sorted(missing)}; expected user_id, history, target")
    lengths = [len(h) for h in split["history"]]
    empty = [i for i, n in enumerate(lengths) if n == 0]
    if empty:
        if empty_history == "error":
            raise SimCITInputError(f"{len(empty)} example(s) with an empty history, e.g. row {empty[0]}")
        split = split.select([i for i, n in enumerate(lengths) if n > 0])
    mapped = split.map(formatter, batched=True, remove_columns=split.column_names, desc=desc,
                       load_from_cache_file=False)
    return mapped


class RecommenderCollator:
    """Pads ``input_ids``/``labels`` for training (right padding) into tensors.

    Returns ``input_ids (B, T)``, ``attention_mask (B, T)``, ``labels (B, T)`` with ``-100`` on padding.
    """

    def __init__(self, pad_token_id: int, padding_side: str = "right", pad_to_multiple_of: int | None = None):
        self.pad_token_id = int(pad_token_id)
        self.padding_side = padding_side
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {k: torch.full((len(features), longest), v, dtype=torch.long)
                 for k, v in (("input_ids", self.pad_token_id), ("attention_mask", 0), ("labels", IGNORE_INDEX))}
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            span = slice(0, n) if self.padding_side == "right" else slice(longest - n, longest)
            batch["input_ids"][row, span] = torch.as_tensor(f["input_ids"])
            batch["attention_mask"][row, span] = 1
            batch["labels"][row, span] = torch.as_tensor(f["labels"])
        return batch


class LengthGroupedSampler(torch.utils.data.Sampler[int]):
    """A seeded random order in which neighbouring examples have similar lengths (less padding per batch).

    Examples are shuffled, cut into chunks of ``batch_size * group_batches``, each chunk sorted by length and
    split into batches, and the batches shuffled again: every batch is random but near-uniform in length.
    The order depends only on ``seed`` and the epoch (:meth:`use_epoch`), so a resumed run sees the same
    batches (see ``EpochShuffleSampler`` in the training loop).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group_batches: int = 50):
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.batch_size, self.seed, self.group_batches, self.epoch = int(batch_size), int(seed), group_batches, 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator)
        chunk = self.batch_size * self.group_batches
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start:start + chunk]
            part = part[torch.argsort(self.lengths[part], descending=True, stable=True)]
            batches.extend(part[i:i + self.batch_size] for i in range(0, len(part), self.batch_size))
        # a short batch (the very last one) stays last, so that every other batch is exactly batch_size long
        short = [batches.pop()] if batches and len(batches[-1]) < self.batch_size else []
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()] + short
        return iter(torch.cat(shuffled).tolist() if shuffled else [])

    def __len__(self) -> int:
        return len(self.lengths)
