"""SimCITTokenizer: item ids <-> semantic-ID (SID) tokens, the item <-> SID table, the prefix trie of valid SIDs.

An item's SID is a short code tuple ``(c_0, ..., c_{L-1})`` from the quantizer (plus, optionally, a
disambiguation level). Each level has its own token set, written ``<a_12>`` for code 12 at level 0, ``<b_3>`` at
level 1 and so on (level ``l`` uses the letter ``chr(ord('a') + l)``), so the SID string of an item is the
concatenation ``<a_12><b_3><c_200>``.

The tokenizer is a transformers ``PreTrainedTokenizer`` on its own (encoding ``"item_1 item_7"`` yields the SID
token ids of both items), and it is the bridge to the LLM: :meth:`SimCITTokenizer.extend_tokenizer` adds the SID
vocabulary to any base LLM tokenizer, and :meth:`SimCITTokenizer.item_token_ids` returns, for that extended
tokenizer, the ``(num_items, num_levels)`` matrix of LLM token ids that the constrained generator needs.

This module is copied next to a saved tokenizer by ``register_for_auto_class`` so it can be loaded with
``trust_remote_code=True`` where ``hf_simcit`` is not installed: it may only import the standard library,
torch, transformers, and sibling modules that are copied with it (``configuration_simcit.py``, ``errors.py``).
"""

from __future__ import annotations

import json
import numbers
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from transformers import AddedToken, AutoTokenizer, PreTrainedTokenizer

from .configuration_simcit import SimCITConfig
from .errors import SimCITInputError

VOCAB_FILES_NAMES = {"sid_table_file": "sid_table.json"}

MAX_LEVELS = 26
_SID_TOKEN_RE = re.compile(r"<([a-z])_(\d+)>")
_SID_STRING_RE = re.compile(r"(?:<[a-z]_\d+>)+")


def level_letter(level: int) -> str:
    """Letter of SID level ``level`` (0 -> 'a')."""
    return chr(ord("a") + level)


def sid_token(level: int, code: int) -> str:
    """The token string of code ``code`` at level ``level``, e.g. ``sid_token(1, 3) == "<b_3>"``."""
    return f"<{level_letter(level)}_{code}>"


class SimCITTokenizer(PreTrainedTokenizer):
    """Maps item ids to SID token strings and back; stores the item <-> SID table (``sid_table.json``).

    Build it with :meth:`from_codes` from the quantizer's unique codes, save it with ``save_pretrained`` and
    reload it with ``from_pretrained`` or ``AutoTokenizer.from_pretrained``.

    Vocabulary: ``pad``, ``unk``, ``eos`` (ids 0, 1, 2) then, level by level, ``<a_0> .. <a_{K_0-1}>``,
    ``<b_0> ..``. Text is split on whitespace; each word is an item id (replaced by its SID tokens) or a SID
    string (split into its tokens). Anything else is an error, never a silent ``unk``.
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]
    def __init__(
        self,
        sid_table_file: str | None = None,
        pad_token: str = "<pad>",
        unk_token: str = "<unk>",
        eos_token: str = "</s>",
        codes: Any = None,
        item_ids: Sequence[str] | None = None,
        codebook_sizes: Sequence[int] | None = None,
        **kwargs,
    ):
        if sid_table_file is not None:
            codes, item_ids, codebook_sizes = _read_sid_table(sid_table_file)
        elif codes is None or item_ids is None:
            raise SimCITInputError(
                "SimCITTokenizer needs a sid_table_file or codes + item_ids: build it with "
                "SimCITTokenizer.from_codes(codes, item_ids, codebook_sizes)"
            )
        self._set_table(codes, item_ids, codebook_sizes)

        self._vocab: dict[str, int] = {}
        for special in (pad_token, unk_token, eos_token):
            self._vocab.setdefault(str(special), len(self._vocab))
        self._num_special = len(self._vocab)
        for token in self.sid_vocabulary():
            self._vocab[token] = len(self._vocab)
        self._ids_to_tokens = list(self._vocab)

        kwargs.setdefault("special_tokens_pattern", "none")
        super().__init__(pad_token=pad_token, unk_token=unk_token, eos_token=eos_token, **kwargs)
        # The table lives in sid_table.json, never inside tokenizer_config.json.
        for key in ("codes", "item_ids", "codebook_sizes"):
            self.init_kwargs.pop(key, None)

    # ------------------------------------------------------------------ construction and validation
    @classmethod
    def from_codes(
        cls,
        codes: Any,
        item_ids: Sequence[str],
        codebook_sizes: Sequence[int] | None = None,
        **kwargs,
    ) -> SimCITTokenizer:
        """Build from unique codes.

        Args:
            codes: integer array-like ``(num_items, num_levels)``; row ``i`` is the SID of ``item_ids[i]``
                (row ``i`` = item index ``i``). A disambiguation level is just one more column.
            item_ids: raw item ids (strings), one per row, no duplicates, no whitespace.
            codebook_sizes: codes per level (``K_l``); defaults to ``max + 1`` of each column.
        """
        return cls(codes=codes, item_ids=item_ids, codebook_sizes=codebook_sizes, **kwargs)

    def _set_table(self, codes: Any, item_ids: Sequence[str], codebook_sizes: Sequence[int] | None) -> None:
        codes = _as_code_tensor(codes)
        num_items, num_levels = codes.shape
        item_ids = [str(item) if not isinstance(item, str) else item for item in item_ids]
        if len(item_ids) != num_items:
            raise SimCITInputError(
                f"codes has {num_items} rows but item_ids has {len(item_ids)} entries: give one item id per row"
            )
        if not 1 <= num_levels <= MAX_LEVELS:
            raise SimCITInputError(f"codes has {num_levels} levels; a SID needs 1..{MAX_LEVELS} levels")
        if codebook_sizes is None:
            codebook_sizes = (codes.max(dim=0).values + 1).tolist() if num_items else [1] * num_levels
        codebook_sizes = [int(size) for size in codebook_sizes]
        if len(codebook_sizes) != num_levels:
            raise SimCITInputError(
                f"codebook_sizes has {len(codebook_sizes)} entries but codes has {num_levels} levels (columns)"
            )
        for level, size in enumerate(codebook_sizes):
            if size < 1:
                raise SimCITInputError(
                    f"codebook_sizes[{level}] = {size}; every level needs at least one code"
                )
            column = codes[:, level]
            bad = ((column < 0) | (column >= size)).nonzero().flatten()
            if bad.numel():
                row = int(bad[0])
                raise SimCITInputError(
                    f"item {item_ids[row]!r} (row {row}) has code {int(column[row])} at level {level}, "
                    f"outside 0..{size - 1} (codebook_sizes[{level}] = {size})"
                )
        item_to_index: dict[str, int] = {}
        for index, item in enumerate(item_ids):
            if not item or any(ch.isspace() for ch in item):
                raise SimCITInputError(
                    f"item id {item!r} (row {index}) is empty or contains whitespace; item ids are split on spaces"
                )
            if item in item_to_index:
                raise SimCITInputError(
                    f"duplicate item id {item!r} (rows {item_to_index[item]} and {index}); item ids must be unique"
                )
            item_to_index[item] = index
        code_to_index: dict[tuple[int, ...], int] = {}
        for index, row in enumerate(codes.tolist()):
            key = tuple(row)
            if key in code_to_index:
                other = code_to_index[key]
                raise SimCITInputError(
                    f"duplicate SID {_format_sid(key)} for items {item_ids[other]!r} and {item_ids[index]!r}; "
                    "resolve collisions (assign_semantic_ids adds a disambiguation level) before building "
                    "the tokenizer"
                )
            code_to_index[key] = index
        self._codes = codes
        self._item_ids = list(item_ids)
        self._codebook_sizes = codebook_sizes
        self._item_to_index = item_to_index
        self._code_to_index = code_to_index

    # ------------------------------------------------------------------ the table
    @property
    def codes(self) -> torch.LongTensor:
        """``(num_items, num_levels)`` codes; row ``i`` is the SID of item index ``i`` (a copy)."""
        return self._codes.clone()

    @property
    def item_ids(self) -> list[str]:
        """Raw item ids in item-index order (a copy)."""
        return list(self._item_ids)

    @property
    def codebook_sizes(self) -> list[int]:
        return list(self._codebook_sizes)

    @property
    def num_items(self) -> int:
        return len(self._item_ids)

    @property
    def num_levels(self) -> int:
        return len(self._codebook_sizes)

    def sid_vocabulary(self) -> list[str]:
        """All SID token strings, level by level: ``<a_0>, .., <a_{K_0-1}>, <b_0>, ..``."""
        return [
            sid_token(level, code) for level, size in enumerate(self._codebook_sizes) for code in range(size)
        ]

    def item_index(self, item_id: str) -> int:
        """Row (item index) of a raw item id (an integer id, numpy's included, is read as its string: ids are
        strings)."""
        if isinstance(item_id, numbers.Integral) and not isinstance(item_id, bool):
            item_id = str(int(item_id))
        try:
            return self._item_to_index[item_id]
        except KeyError:
            raise SimCITInputError(
                f"unknown item id {item_id!r}: not in this tokenizer's SID table"
            ) from None

    def index_of(self, item_ids: Iterable[str]) -> list[int]:
        """Raw item ids -> item indices; unknown ids raise one error that names them (the first ten)."""
        item_ids = [str(item) for item in item_ids]
        unknown = [item for item in item_ids if item not in self._item_to_index]
        if unknown:
            raise SimCITInputError(f"items not in the SID table: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}")
        return [self._item_to_index[item] for item in item_ids]

    def aligned_to(self, item_ids: Sequence[str]) -> SimCITTokenizer:
        """This SID table with its rows in the order of ``item_ids`` (e.g. a data set's item table): ``self``
        when the order already matches, else a new tokenizer with the same codebooks and special tokens.
        ``item_ids`` must be known (unknown ones are named); items left out are dropped."""
        item_ids = [str(item) for item in item_ids]
        if item_ids == self._item_ids:
            return self
        order = self.index_of(item_ids)
        return type(self).from_codes(self._codes[order], item_ids, self._codebook_sizes, pad_token=str(self.pad_token),
                                     unk_token=str(self.unk_token), eos_token=str(self.eos_token))

    def item_to_sid(self, item_id: str) -> str:
        """``"B004756YJA" -> "<a_12><b_3><c_200>"``."""
        index = self.item_index(item_id)
        return _format_sid(self._codes[index].tolist())

    def items_to_sids(self, item_ids: Iterable[str]) -> list[str]:
        return [self.item_to_sid(item) for item in item_ids]

    def sid_to_codes(self, sid: str) -> tuple[int, ...]:
        """Parse a SID string into its code tuple; malformed strings and wrong levels raise."""
        if not isinstance(sid, str) or not _SID_STRING_RE.fullmatch(sid):
            raise SimCITInputError(
                f"malformed SID {sid!r}: expected {self.num_levels} tokens like "
                f"{_format_sid(list(range(self.num_levels)))}"
            )
        tokens = _SID_TOKEN_RE.findall(sid)
        if len(tokens) != self.num_levels:
            raise SimCITInputError(
                f"SID {sid!r} has {len(tokens)} levels; this tokenizer uses {self.num_levels}"
            )
        codes = []
        for level, (letter, code) in enumerate(tokens):
            if letter != level_letter(level):
                raise SimCITInputError(
                    f"SID {sid!r}: level {level} must use the letter {level_letter(level)!r}, got {letter!r}"
                )
            if code != str(int(code)):  # <a_018> is no token of the vocabulary: encode() refuses it too
                raise SimCITInputError(f"SID {sid!r}: code {code!r} has a leading zero; write {sid_token(level, int(code))}")
            codes.append(int(code))
        return tuple(codes)

    def sid_to_item(self, sid: str) -> str:
        """``"<a_12><b_3><c_200>" -> "B004756YJA"``; a well-formed SID of no item raises."""
        codes = self.sid_to_codes(sid)
        try:
            return self._item_ids[self._code_to_index[codes]]
        except KeyError:
            raise SimCITInputError(f"SID {sid!r} is well-formed but belongs to no item") from None

    def sids_to_items(self, sids: Iterable[str]) -> list[str]:
        return [self.sid_to_item(sid) for sid in sids]

    def codes_to_item_index(self, codes: Sequence[int]) -> int | None:
        """Item index of a code tuple, or ``None`` when no item has it (e.g. an unconstrained generation)."""
        return self._code_to_index.get(tuple(int(code) for code in codes))

    def add_items(self, codes: Any, item_ids: Sequence[str]) -> None:
        """Append new (cold-start) items with their SIDs; ids and SIDs must be new and fit the codebooks."""
        new_codes = _as_code_tensor(codes)
        if new_codes.shape[1] != self.num_levels:
            raise SimCITInputError(
                f"new codes have {new_codes.shape[1]} levels; this tokenizer uses {self.num_levels}"
            )
        self._set_table(
            torch.cat([self._codes, new_codes]), self._item_ids + list(item_ids), self._codebook_sizes
        )

    # ------------------------------------------------------------------ the LLM hand-over
    def extend_tokenizer(self, llm_tokenizer):
        """Add the SID vocabulary to a base LLM tokenizer (any backend) as added tokens; returns it.

        Tokens are added unnormalised and non-special, so ``decode(..., skip_special_tokens=True)`` keeps them and
        no lower-casing or prefix-space rule touches them. Extending twice with the same vocabulary is a no-op;
        a base tokenizer that already has some of these strings as ordinary tokens is refused (their ids would
        mean something else).
        """
        tokens = self.sid_vocabulary()
        existing = llm_tokenizer.get_vocab()
        present = [token for token in tokens if token in existing]
        if present:
            added = llm_tokenizer.get_added_vocab()
            if len(present) != len(tokens) or any(token not in added for token in tokens):
                raise SimCITInputError(
                    f"the base tokenizer {type(llm_tokenizer).__name__} already has {len(present)} of the "
                    f"{len(tokens)} SID tokens (e.g. {present[0]!r}) with another meaning; use a fresh base "
                    "tokenizer"
                )
            return llm_tokenizer
        llm_tokenizer.add_tokens(
            [
                AddedToken(token, single_word=False, lstrip=False, rstrip=False, normalized=False)
                for token in tokens
            ]
        )
        if self.num_items:
            sample = self._codes[0].tolist()
            expected = [
                llm_tokenizer.convert_tokens_to_ids(sid_token(lvl, c)) for lvl, c in enumerate(sample)
            ]
            got = llm_tokenizer.encode(_format_sid(sample), add_special_tokens=False)
            if got != expected:
                raise SimCITInputError(
                    f"{type(llm_tokenizer).__name__} does not keep SID tokens whole after adding them "
                    f"({_format_sid(sample)!r} -> {got}, expected {expected})"
                )
        return llm_tokenizer

    def item_token_ids(self, llm_tokenizer=None) -> torch.LongTensor:
        """LLM token id of each level of each item's SID: ``(num_items, num_levels)``, row ``i`` = item index ``i``.

        ``llm_tokenizer`` must have been extended with :meth:`extend_tokenizer`; ``None`` uses this tokenizer's
        own vocabulary.
        """
        tokenizer = self if llm_tokenizer is None else llm_tokenizer
        level_tables = []
        for level, size in enumerate(self._codebook_sizes):
            names = [sid_token(level, code) for code in range(size)]
            vocab = tokenizer.get_vocab() if tokenizer is not self else self._vocab
            missing = [name for name in names if name not in vocab]
            if missing:
                raise SimCITInputError(
                    f"{type(tokenizer).__name__} lacks SID token {missing[0]!r} ({len(missing)} missing at level "
                    f"{level}); call SimCITTokenizer.extend_tokenizer(llm_tokenizer) first"
                )
            level_tables.append(torch.tensor([vocab[name] for name in names], dtype=torch.long))
        if not self.num_items:
            return torch.empty(0, self.num_levels, dtype=torch.long)
        columns = [table[self._codes[:, level]] for level, table in enumerate(level_tables)]
        return torch.stack(columns, dim=1)

    def prefix_trie(self, llm_tokenizer=None) -> dict:
        """Nested dict of valid SIDs: ``{tok_0: {tok_1: {tok_2: item_index}}}`` with token ids of ``llm_tokenizer``
        (or of this tokenizer when ``None``); the leaves are item indices."""
        trie: dict = {}
        for index, row in enumerate(self.item_token_ids(llm_tokenizer).tolist()):
            node = trie
            for token in row[:-1]:
                node = node.setdefault(token, {})
            node[row[-1]] = index
        return trie

    def trie_tensors(self, llm_tokenizer=None) -> dict[str, torch.LongTensor]:
        """The prefix trie in flat (CSR) tensor form, for vectorised constrained decoding.

        Nodes are numbered breadth-first, the root is node 0, and the children of node ``n`` are the edges
        ``node_offsets[n]:node_offsets[n + 1]`` (sorted by token id).

        Returns:
            ``node_offsets`` ``(num_nodes + 1,)``, ``edge_tokens`` ``(num_edges,)`` (token id on the edge),
            ``edge_children`` ``(num_edges,)`` (child node), ``node_depth`` ``(num_nodes,)``,
            ``leaf_items`` ``(num_nodes,)`` (item index at depth ``num_levels``, else -1).
        """
        trie = self.prefix_trie(llm_tokenizer)
        offsets, edge_tokens, edge_children, depth, leaf_items = [0], [], [], [0], [-1]
        frontier: list[tuple[Any, int]] = [(trie, 0)]
        next_node = 1
        while frontier:
            new_frontier = []
            for node, node_depth in frontier:
                for token in sorted(node):
                    child = node[token]
                    edge_tokens.append(token)
                    edge_children.append(next_node)
                    depth.append(node_depth + 1)
                    leaf_items.append(child if isinstance(child, int) else -1)
                    if isinstance(child, dict):
                        new_frontier.append((child, node_depth + 1))
                    next_node += 1
                offsets.append(len(edge_tokens))
            frontier = new_frontier
        # Leaves have no children: close their (empty) edge ranges.
        offsets.extend([len(edge_tokens)] * (next_node + 1 - len(offsets)))
        as_long = lambda values: torch.tensor(values, dtype=torch.long)  # noqa: E731
        return {
            "node_offsets": as_long(offsets),
            "edge_tokens": as_long(edge_tokens),
            "edge_children": as_long(edge_children),
            "node_depth": as_long(depth),
            "leaf_items": as_long(leaf_items),
        }

    def decode_items(self, token_ids: Sequence[int]) -> list[str]:
        """Token ids (this tokenizer's) of whole SIDs -> item ids; special tokens are skipped."""
        tokens = [self._convert_id_to_token(int(i)) for i in token_ids]   # out-of-vocabulary ids raise
        tokens = [t for i, t in zip(token_ids, tokens) if int(i) >= self._num_special]
        if len(tokens) % self.num_levels:
            raise SimCITInputError(
                f"{len(tokens)} SID tokens is not a whole number of {self.num_levels}-level SIDs"
            )
        step = self.num_levels
        return [self.sid_to_item("".join(tokens[i : i + step])) for i in range(0, len(tokens), step)]

    # ------------------------------------------------------------------ PreTrainedTokenizer interface
    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self._vocab)
        vocab.update(getattr(self, "_added_tokens_encoder", {}))
        return vocab

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        tokens: list[str] = []
        for word in text.split():
            if word in self._item_to_index:
                codes = self._codes[self._item_to_index[word]].tolist()
                tokens.extend(sid_token(level, code) for level, code in enumerate(codes))
            elif _SID_STRING_RE.fullmatch(word):
                self.sid_to_item(word)  # validates the levels and that the SID is an item's
                tokens.extend(match.group(0) for match in _SID_TOKEN_RE.finditer(word))
            else:
                raise SimCITInputError(
                    f"unknown item id {word!r}: neither an item of this tokenizer's SID table nor a SID string"
                )
        return tokens

    def _convert_token_to_id(self, token: str) -> int:
        try:
            return self._vocab[token]
        except KeyError:
            raise SimCITInputError(f"unknown SID token {token!r}") from None

    def _convert_id_to_token(self, index: int) -> str:
        if not 0 <= index < len(self._ids_to_tokens):
            raise SimCITInputError(
                f"token id {index} is outside this tokenizer's vocabulary (0..{self.vocab_size - 1})"
            )
        return self._ids_to_tokens[index]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """SID tokens -> space-separated SID strings (a space after each item's last level)."""
        words, current = [], []
        last_letter = level_letter(self.num_levels - 1)
        for token in tokens:
            current.append(token)
            match = _SID_TOKEN_RE.fullmatch(token)
            if match is None or match.group(1) == last_letter:
                words.append("".join(current))
                current = []
        if current:
            words.append("".join(current))
        return " ".join(words)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        name = (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILES_NAMES["sid_table_file"]
        path = os.path.join(save_directory, name)
        table = {
            "format": "simcit-sid-table",
            "version": 1,
            "num_levels": self.num_levels,
            "codebook_sizes": self._codebook_sizes,
            "item_ids": self._item_ids,
            "codes": self._codes.tolist(),
        }
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(table, handle, ensure_ascii=False, separators=(",", ":"))
        return (path,)


# Registered where it is defined: saved folders carry this module + auto_map (trust_remote_code works where
# hf_simcit is not installed), and AutoTokenizer resolves "SimCITTokenizer" once this module is imported.
SimCITTokenizer.register_for_auto_class()
# Only the installed package registers with the Auto mappings: a copy loaded with trust_remote_code
# (module `transformers_modules.*`) is registered by transformers itself and must not replace the
# package's classes process-wide.
if __name__.startswith("hf_simcit."):
    AutoTokenizer.register(SimCITConfig, tokenizer_class=SimCITTokenizer, exist_ok=True)


def _format_sid(codes: Sequence[int]) -> str:
    return "".join(sid_token(level, int(code)) for level, code in enumerate(codes))


def _as_code_tensor(codes: Any) -> torch.LongTensor:
    try:
        tensor = torch.as_tensor(codes)
    except (TypeError, ValueError, RuntimeError) as err:
        raise SimCITInputError(f"codes must be an integer array (num_items, num_levels): {err}") from None
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise SimCITInputError(f"codes must be integers, got dtype {tensor.dtype}")
    if tensor.dim() != 2:
        raise SimCITInputError(f"codes must be 2-D (num_items, num_levels), got shape {tuple(tensor.shape)}")
    return tensor.to(torch.long).clone()


def _read_sid_table(path: str) -> tuple[list[list[int]], list[str], list[int]]:
    try:
        with open(path, encoding="utf-8") as handle:
            table = json.load(handle)
    except json.JSONDecodeError as err:
        raise SimCITInputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    missing = [key for key in ("codes", "item_ids", "codebook_sizes") if key not in table]
    if missing:
        raise SimCITInputError(
            f"{path}: SID table lacks {missing}; re-save it with SimCITTokenizer.save_pretrained"
        )
    return table["codes"], table["item_ids"], table["codebook_sizes"]


__all__ = ["SimCITTokenizer", "sid_token", "level_letter"]
