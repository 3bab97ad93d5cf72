"""Training examples for the generative recommender: (history SIDs -> target SID) token sequences.

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
        text = self.template.instruction.format(
            history=self.template.history_separator.join(self.sid_strings[int(i)] for i in history))
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


def pad_prompts(prompts: Sequence[Sequence[int]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-pad prompts for generation: ``input_ids``, ``attention_mask`` and ``position_ids``, all ``(B, T)``.

    Position ids count from the first real token, so a left-padded prompt sees the same positions as in
    (right-padded) training.
    """
    longest = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), longest), int(pad_token_id), dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for row, p in enumerate(prompts):
        input_ids[row, longest - len(p):] = torch.as_tensor(list(p), dtype=torch.long)
        attention_mask[row, longest - len(p):] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}
