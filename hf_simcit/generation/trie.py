"""The catalogue's semantic IDs as a prefix trie held in tensors.

Constrained decoding needs, for every beam at every step, "which tokens may come next after this prefix".
A Python dict trie answers that one beam at a time; here every level of the trie is a padded table, so the
answer for all beams of all histories is one gather:

* a node at depth ``l`` (a distinct SID prefix of length ``l``; depth 0 is the root) has an id in
  ``0 .. num_nodes[l] - 1``, numbered in the lexicographic order of its prefix;
* ``children_tokens[l]``: LongTensor ``(num_nodes[l] + 1, max_children[l])``, the token ids that may follow
  each node, sorted ascending and right-padded with :data:`PAD_TOKEN`;
* ``children_nodes[l]``: LongTensor of the same shape, the child's node id at depth ``l + 1`` (at the last
  level: the item index, i.e. the row of ``item_token_ids``), ``-1`` in padding.

The extra last row of each table is all padding: it is the "dead" node, so a node id of ``-1`` (a prefix
that is not in the catalogue) indexes it and has no children. Levels are independent: the same token id may
appear at several levels, and any vocabulary works.
"""

from __future__ import annotations

import torch

from ..errors import SimCITInputError

PAD_TOKEN = torch.iinfo(torch.int64).max
"""Padding in ``children_tokens``: larger than any token id, so each row stays sorted for ``searchsorted``."""


class SIDTrie:
    """Prefix trie over the SIDs of a catalogue, as one padded table per level.

    Args:
        item_token_ids: LongTensor ``(num_items, num_levels)``; row ``i`` holds the token ids of item ``i``'s
            SID, one per level (a disambiguation level is just one more column). Every row must be distinct.
        vocab_size: if given, every token id must be below it (the model's vocabulary size).
        device: where the tables live (the model's device); defaults to ``item_token_ids.device``.
    """

    def __init__(
        self,
        item_token_ids: torch.Tensor,
        vocab_size: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        item_token_ids = _validated_token_table(item_token_ids, vocab_size)
        self.item_token_ids = item_token_ids
        self.num_items, self.num_levels = item_token_ids.shape
        self.max_token_id = int(item_token_ids.max())
        self.vocab_size = vocab_size
        self.children_tokens: list[torch.Tensor] = []
        self.children_nodes: list[torch.Tensor] = []
        self.num_nodes: list[int] = [1]
        self._item_nodes: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}   # item_nodes(depth), cached
        self._subset: tuple[bytes, SIDTrie] | None = None                      # subset(items), the last one
        if torch.unique(item_token_ids, dim=0).shape[0] != self.num_items:
            raise SimCITInputError(_duplicate_sid_message(item_token_ids))

        parent = torch.zeros(self.num_items, dtype=torch.long)  # node id of each item's prefix at this depth
        for level in range(self.num_levels):
            if level + 1 < self.num_levels:
                # Node id at depth level+1 = rank of the item's prefix among the distinct prefixes (sorted).
                _, child = torch.unique(item_token_ids[:, : level + 1], dim=0, return_inverse=True)
            else:
                child = torch.arange(self.num_items)  # leaves are the items themselves
            edges = torch.stack([parent, item_token_ids[:, level], child], dim=1)
            edges = torch.unique(edges, dim=0)  # one row per (parent, token), sorted by parent then token
            num_parents = self.num_nodes[level]
            counts = torch.bincount(edges[:, 0], minlength=num_parents)
            first_edge = torch.cumsum(counts, 0) - counts
            slot = torch.arange(edges.shape[0]) - first_edge[edges[:, 0]]
            width = int(counts.max())
            tokens = torch.full((num_parents + 1, width), PAD_TOKEN, dtype=torch.long)
            nodes = torch.full((num_parents + 1, width), -1, dtype=torch.long)
            tokens[edges[:, 0], slot] = edges[:, 1]
            nodes[edges[:, 0], slot] = edges[:, 2]
            self.children_tokens.append(tokens)
            self.children_nodes.append(nodes)
            if level + 1 < self.num_levels:
                self.num_nodes.append(int(child.max()) + 1)
            parent = child
        self.to(device if device is not None else item_token_ids.device)

    def to(self, device: torch.device | str) -> SIDTrie:
        """Move the tables to ``device`` (in place; returns self)."""
        self.children_tokens = [t.to(device) for t in self.children_tokens]
        self.children_nodes = [t.to(device) for t in self.children_nodes]
        self.item_token_ids = self.item_token_ids.to(device)
        self._item_nodes = {}   # rebuilt on the new device when asked
        self._subset = None
        self.device = self.item_token_ids.device  # normalised (e.g. "cuda" -> cuda:0)
        return self

    def subset(self, items: torch.Tensor) -> SIDTrie:
        """The trie of ``items`` (LongTensor ``(m,)`` of distinct rows of this catalogue) alone, its item ``j``
        being ``items[j]``; e.g. the new items of :func:`~hf_simcit.generation.recommend`'s reserved places.
        The last one is cached: an evaluation asks for the same subset batch after batch."""
        key = items.detach().cpu().numpy().tobytes()
        if self._subset is None or self._subset[0] != key:
            self._subset = (key, SIDTrie(self.item_token_ids[items.to(self.device)]))
        return self._subset[1]

    @property
    def max_children(self) -> list[int]:
        """Widest branching per level (the padded table width)."""
        return [t.shape[1] for t in self.children_tokens]

    def children(self, level: int, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Allowed next tokens and the nodes they lead to.

        Args:
            level: depth of ``nodes`` (0 = root).
            nodes: LongTensor ``(...)`` of node ids at that depth; ``-1`` = dead prefix (no children).

        Returns:
            ``(tokens, child_nodes)``, each LongTensor ``(..., max_children[level])``; padding is
            :data:`PAD_TOKEN` / ``-1``. At the last level ``child_nodes`` are item indices.
        """
        return self.children_tokens[level][nodes], self.children_nodes[level][nodes]

    def step(self, level: int, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Follow one edge per entry: LongTensor ``(N,)`` nodes at ``level`` + ``(N,)`` tokens -> ``(N,)``
        nodes at ``level + 1`` (item indices after the last level), ``-1`` where the edge does not exist."""
        row_tokens, row_nodes = self.children(level, nodes)  # (N, M)
        slot = torch.searchsorted(row_tokens, tokens.unsqueeze(-1).contiguous())  # (N, 1)
        slot = slot.clamp(max=row_tokens.shape[-1] - 1)
        found = row_tokens.gather(-1, slot).squeeze(-1) == tokens
        child = row_nodes.gather(-1, slot).squeeze(-1)
        return torch.where(found, child, torch.full_like(child, -1))

    def lookup(self, prefixes: torch.Tensor) -> torch.Tensor:
        """Node id of each prefix: LongTensor ``(N, l)`` with ``l <= num_levels`` -> ``(N,)`` node ids at depth
        ``l`` (item indices when ``l == num_levels``), ``-1`` for prefixes not in the catalogue."""
        nodes = torch.zeros(prefixes.shape[0], dtype=torch.long, device=prefixes.device)
        for level in range(prefixes.shape[1]):
            nodes = self.step(level, nodes, prefixes[:, level])
        return nodes

    def item_nodes(self, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(nodes, sizes)``: LongTensor ``(num_items,)``, the node id at ``depth`` (1..num_levels; the item
        index itself at ``num_levels``) of every item's SID prefix, and LongTensor ``(num_nodes,)``, how many
        items each node at that depth leads to. Lets a search drop a prefix whose items are all excluded."""
        if depth not in self._item_nodes:   # cached: an evaluation searches batch after batch
            nodes = self.lookup(self.item_token_ids[:, :depth])
            size = self.num_items if depth == self.num_levels else self.num_nodes[depth]
            self._item_nodes[depth] = (nodes, torch.bincount(nodes, minlength=size))
        return self._item_nodes[depth]

    def allowed_tokens_mask(self, level: int, nodes: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """BoolTensor ``(N, vocab_size)``: True for the tokens that may follow each node (depth ``level``)."""
        tokens, _ = self.children(level, nodes)  # (N, M)
        # Padding goes to an extra column that is cut off, so no Python loop and no scatter conflicts.
        columns = tokens.clamp(max=vocab_size)
        allowed = torch.zeros(nodes.shape[0], vocab_size + 1, dtype=torch.bool, device=nodes.device)
        allowed.scatter_(1, columns, True)
        return allowed[:, :vocab_size]

    def items_of(self, sequences: torch.Tensor) -> torch.Tensor:
        """Item index of each full SID: LongTensor ``(N, num_levels)`` -> ``(N,)``, ``-1`` if not an item."""
        if sequences.shape[-1] != self.num_levels:
            raise SimCITInputError(
                f"a SID has {self.num_levels} tokens in this catalogue; got sequences of length {sequences.shape[-1]}"
            )
        return self.lookup(sequences)

    def check_vocab(self, vocab_size: int) -> None:
        """Raise :class:`SimCITInputError` if a SID token is outside a model vocabulary of ``vocab_size``."""
        if self.max_token_id >= vocab_size:
            item = int((self.item_token_ids >= vocab_size).any(dim=1).nonzero()[0])
            raise SimCITInputError(
                f"item {item} has SID token id {int(self.item_token_ids[item].max())} but the model's vocabulary "
                f"has {vocab_size} tokens; extend the LLM tokenizer with the SID tokens and resize the model's "
                "embeddings before decoding"
            )

    def __repr__(self) -> str:
        return (
            f"SIDTrie(num_items={self.num_items}, num_levels={self.num_levels}, num_nodes={self.num_nodes}, "
            f"max_children={self.max_children}, device={self.device})"
        )


def _validated_token_table(item_token_ids: torch.Tensor, vocab_size: int | None) -> torch.Tensor:
    if not isinstance(item_token_ids, torch.Tensor):
        item_token_ids = torch.as_tensor(item_token_ids)
    if item_token_ids.ndim != 2 or item_token_ids.shape[0] == 0 or item_token_ids.shape[1] == 0:
        raise SimCITInputError(
            "item_token_ids must be a (num_items, num_levels) integer tensor with at least one item and one "
            f"level; got shape {tuple(item_token_ids.shape)}"
        )
    if (
        item_token_ids.is_floating_point()
        or item_token_ids.is_complex()
        or item_token_ids.dtype == torch.bool
    ):
        raise SimCITInputError(
            f"item_token_ids must hold integer token ids; got dtype {item_token_ids.dtype}"
        )
    item_token_ids = item_token_ids.detach().to("cpu", torch.long)
    if (item_token_ids < 0).any():
        item = int((item_token_ids < 0).any(dim=1).nonzero()[0])
        raise SimCITInputError(
            f"item {item} has a negative SID token id ({item_token_ids[item].tolist()}); every level of every "
            "item needs a real token id"
        )
    if vocab_size is not None and int(item_token_ids.max()) >= vocab_size:
        item = int((item_token_ids >= vocab_size).any(dim=1).nonzero()[0])
        raise SimCITInputError(
            f"item {item} has SID token ids {item_token_ids[item].tolist()} outside the vocabulary of "
            f"{vocab_size} tokens; extend the tokenizer and resize the model's embeddings first"
        )
    return item_token_ids


def _duplicate_sid_message(item_token_ids: torch.Tensor) -> str:
    _, inverse, counts = torch.unique(item_token_ids, dim=0, return_inverse=True, return_counts=True)
    shared = int(torch.nonzero(counts > 1)[0])
    items = torch.nonzero(inverse == shared).flatten()[:2].tolist()
    return (
        f"items {items[0]} and {items[1]} have the same SID {item_token_ids[items[0]].tolist()}; constrained "
        "decoding needs one SID per item: assign SIDs with a disambiguation level (assign_semantic_ids)"
    )
