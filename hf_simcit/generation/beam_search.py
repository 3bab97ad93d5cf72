"""Fixed-depth SID beam search: prefill each history once, share its KV cache across the beams.

``generate(num_beams=B)`` copies every prompt B times before the prefill and runs an open-ended loop with a
full-vocabulary mask. A SID has a fixed number of levels ``L`` and every beam must stay in the trie, so the
search can be much cheaper and is still exact:

1. prefill each history once (``n`` prompts, not ``n * B``);
2. run exactly ``L`` selection steps; at each, gather the log-probabilities of the trie children of every
   beam (one gather on the trie tables), add the beam score and keep the top ``B`` of ``beams x children``;
3. feed the ``B`` chosen tokens of each history in ``L - 1`` decode calls.

For step 3 there are two ways to share the prompt's KV cache:

* ``"tree"`` (default for Llama/Qwen-family models with eager/SDPA attention): the ``B`` beam tokens of a
  history are fed as ``B`` new positions of the *same* sequence, with a custom 4D attention mask in which
  each beam token sees the prompt and its own ancestors only (tree attention). The prompt's keys/values
  are stored once, nothing is copied or reordered, and the cache grows by ``B`` tokens per step.
* ``"repeat"`` (any model whose cache supports ``batch_repeat_interleave``/``reorder_cache``): the prompt
  cache is repeated ``B`` times after the single prefill and reordered after each step, as ``generate``
  does.

Scores are sums of log-probabilities under the full vocabulary (log-softmax over all tokens, then the trie
restricts the choice), exactly what ``generate(num_beams=B, length_penalty=0.0)`` with
:class:`~hf_simcit.generation.SIDTrieLogitsProcessor` computes.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Literal

import torch
from tqdm.auto import tqdm

from ..errors import SimCITInputError
from .trie import PAD_TOKEN, SIDTrie

KVSharing = Literal["auto", "tree", "repeat"]
ScoreVocab = Literal["full", "sid"]

# Decoder-only families whose attention honours a custom 4D mask with explicit position ids (RoPE, full
# attention); others use the "repeat" path unless asked otherwise.
_TREE_ATTENTION_MODEL_TYPES = {"llama", "qwen2", "qwen3"}


@dataclass
class SIDBeamSearchOutput:
    """Beams of a fixed-depth SID beam search, best first.

    Attributes:
        sequences: LongTensor ``(n, num_beams, num_levels)``, the SID token ids of each beam.
        item_indices: LongTensor ``(n, num_beams)``, the item each beam decodes to; ``-1`` for a dead beam
            (only when the catalogue has fewer SID prefixes than ``num_beams`` at some level).
        scores: FloatTensor ``(n, num_beams)``, sum of the SID tokens' log-probabilities; ``-inf`` for dead
            beams.
    """

    sequences: torch.Tensor
    item_indices: torch.Tensor
    scores: torch.Tensor


def prepare_prompts(
    input_ids: torch.Tensor | list[list[int]],
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int = 0,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn tokenised prompts into a left-padded batch.

    Args:
        input_ids: LongTensor ``(n, P)`` (any padding side) or a list of ``n`` token-id lists.
        attention_mask: ``(n, P)``, 1 for real tokens; all ones if None (tensor input).

    Returns:
        ``(input_ids, attention_mask)``, LongTensors ``(n, P')`` with padding on the left, so the last column
        is every prompt's last token.
    """
    if isinstance(input_ids, (list, tuple)):
        if len(input_ids) == 0:
            raise SimCITInputError("no prompts given: input_ids is an empty list")
        rows = [list(map(int, row)) for row in input_ids]
        for row_index, row in enumerate(rows):
            if not row:
                raise SimCITInputError(f"prompt {row_index} is empty; every history needs at least one token")
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row_index, row in enumerate(rows):
            ids[row_index, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[row_index, width - len(row) :] = 1
        input_ids, attention_mask = ids, mask
    else:
        input_ids = torch.as_tensor(input_ids)
        if input_ids.ndim == 1:
            input_ids = input_ids.unsqueeze(0)
            attention_mask = (
                None if attention_mask is None else torch.as_tensor(attention_mask).reshape(1, -1)
            )
        if input_ids.ndim != 2 or input_ids.shape[0] == 0:
            raise SimCITInputError(
                f"input_ids must be (num_prompts, prompt_length); got {tuple(input_ids.shape)}"
            )
        input_ids = input_ids.long()
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attention_mask = torch.as_tensor(attention_mask).to(input_ids.device).long()
        if attention_mask.shape != input_ids.shape:
            raise SimCITInputError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids {tuple(input_ids.shape)}"
            )
        empty = (attention_mask.sum(-1) == 0).nonzero().flatten()
        if len(empty):
            raise SimCITInputError(
                f"prompt {int(empty[0])} is empty (attention_mask all zeros); every history needs at least one token"
            )
        if input_ids.shape[1] == 0:
            raise SimCITInputError("prompts are empty (input_ids has 0 columns)")
        # Move padding to the left, keeping real tokens in order (stable sort of the mask: 0s first).
        if bool((attention_mask[:, -1] == 0).any()):
            order = torch.sort(attention_mask, dim=1, stable=True).indices
            input_ids = input_ids.gather(1, order)
            attention_mask = attention_mask.gather(1, order)
    # Drop columns that are padding in every row.
    first_real = int(attention_mask.any(0).nonzero()[0])
    input_ids, attention_mask = input_ids[:, first_real:], attention_mask[:, first_real:]
    if device is not None:
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    return input_ids, attention_mask


@torch.no_grad()
def sid_beam_search(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    trie: SIDTrie,
    num_beams: int,
    kv_sharing: KVSharing = "auto",
    batch_size: int = 32,
    show_progress: bool = False,
    score_vocab: ScoreVocab = "full",
    exclude_items: list[list[int]] | None = None,
) -> SIDBeamSearchOutput:
    """Exact trie-constrained beam search over SIDs of ``trie.num_levels`` tokens.

    Args:
        model: a causal LM (transformers ``*ForCausalLM`` or a peft model around one), in eval mode.
        input_ids, attention_mask: LongTensors ``(n, P)``; padding is moved to the left if needed.
        trie: the catalogue (moved to the model's device).
        num_beams: beams kept per history at every level.
        kv_sharing: ``"tree"``, ``"repeat"`` or ``"auto"`` (tree where supported); see the module docstring.
        batch_size: histories per forward pass (bounds the ``(batch_size * num_beams, vocab)`` logits).
        show_progress: a tqdm bar over the batches.
        score_vocab: ``"full"`` (default): log-probabilities over the model's whole vocabulary, identical to
            ``generate``; ``"sid"``: normalised over the catalogue's SID tokens only, computing the output
            layer for those rows only (much faster for large vocabularies; the ranking model of engines
            that evaluate ``lm_head`` over the SID range).
        exclude_items: optional, one list of item indices per history (e.g. the history's own items) that
            may not be recommended: at every level a prefix whose items are all excluded is not a candidate,
            so the search runs over the catalogue minus those items (the beams go to the best items outside
            the list). Why in the search and not after it: filtering the returned list would leave fewer than
            ``num_beams`` items, and so would masking only the last level (most SID prefixes lead to one item).

    Returns:
        :class:`SIDBeamSearchOutput` with beams sorted by score.
    """
    if num_beams < 1:
        raise SimCITInputError(f"num_beams must be >= 1; got {num_beams}")
    if batch_size < 1:
        raise SimCITInputError(f"batch_size must be >= 1; got {batch_size}")
    device = _model_device(model)
    if trie.device != device:
        trie.to(device)
    tree = _resolve_kv_sharing(model, kv_sharing)
    logits_function = _LogitsFunction(model, trie, score_vocab)
    input_ids, attention_mask = prepare_prompts(input_ids, attention_mask, device=device)  # left padding
    excluded = _excluded_table(exclude_items, input_ids.shape[0], trie.num_items, device)
    # per level: each item's node at the depth the level's candidates live at, and each node's item count
    prefix_items = None if excluded is None else [trie.item_nodes(level + 1) for level in range(trie.num_levels)]
    outputs = []
    starts = range(0, input_ids.shape[0], batch_size)
    for start in tqdm(starts, desc="SID beam search", disable=not show_progress or len(starts) < 2):
        ids = input_ids[start : start + batch_size]
        mask = attention_mask[start : start + batch_size]
        first_real = int(mask.any(0).nonzero()[0])
        outputs.append(
            _search_batch(
                model, ids[:, first_real:], mask[:, first_real:], trie, num_beams, tree, logits_function,
                None if excluded is None else excluded[start : start + batch_size], prefix_items,
            )
        )
    return SIDBeamSearchOutput(
        sequences=torch.cat([o.sequences for o in outputs]),
        item_indices=torch.cat([o.item_indices for o in outputs]),
        scores=torch.cat([o.scores for o in outputs]),
    )


def _search_batch(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    trie: SIDTrie,
    num_beams: int,
    tree: bool,
    logits_function: _LogitsFunction,
    excluded: torch.Tensor | None = None,
    prefix_items: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> SIDBeamSearchOutput:
    n, prompt_length = input_ids.shape
    device = input_ids.device
    next_position = attention_mask.sum(-1)  # (n,) position of the first SID token
    logits, cache = logits_function(
        last_only=True,
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=(attention_mask.cumsum(-1) - 1).clamp(min=0),
    )  # logits: (n, 1, C)

    # Level 0: one (root) beam per history.
    beam_scores = torch.zeros(n, 1, device=device)
    beam_nodes = torch.zeros(n, 1, dtype=torch.long, device=device)
    sequences = torch.zeros(n, 1, 0, dtype=torch.long, device=device)
    lineage = torch.zeros(n, 1, 0, dtype=torch.long, device=device)  # tree mode: slots of ancestors
    beam_range = torch.arange(num_beams, device=device)
    if not tree:
        step_mask = attention_mask.repeat_interleave(num_beams, dim=0)  # (n * B, P + step)
        cache.batch_repeat_interleave(num_beams)
    dtype = _model_dtype(model)

    for level in range(trie.num_levels):
        if level > 0:
            tokens = sequences[:, :, -1]  # (n, B) chosen at the previous level
            positions = (next_position + level - 1).unsqueeze(1).expand(n, num_beams)
            if tree:
                inputs = {
                    "input_ids": tokens,
                    "attention_mask": _tree_attention_mask(attention_mask, lineage, dtype),
                    "position_ids": positions,
                }
            else:
                step_mask = torch.cat([step_mask, step_mask.new_ones(n * num_beams, 1)], dim=1)
                inputs = {
                    "input_ids": tokens.reshape(-1, 1),
                    "attention_mask": step_mask,
                    "position_ids": positions.reshape(-1, 1),
                }
            logits, cache = logits_function(last_only=False, cache=cache, **inputs)
            logits = logits.reshape(n, num_beams, -1)  # (n, B, C)
        candidate_tokens, candidate_nodes = trie.children(level, beam_nodes)  # (n, b, M)
        log_probs = _candidate_log_probs(logits, logits_function.columns(candidate_tokens))  # (n, b, M)
        del logits
        if excluded is not None:   # a candidate prefix whose every item is excluded is not in this user's trie
            item_node, node_size = prefix_items[level]
            excluded_nodes = torch.where(excluded >= 0, item_node[excluded.clamp(min=0)], -1)       # (n, H)
            hits = (candidate_nodes.unsqueeze(-1) == excluded_nodes[:, None, None, :]).sum(-1)    # (n, b, M)
            banned = (candidate_nodes >= 0) & (hits == node_size[candidate_nodes.clamp(min=0)])
            log_probs = log_probs.masked_fill(banned, float("-inf"))   # -inf candidates become dead beams
        beam_scores, parent, beam_tokens, beam_nodes = _select_top_beams(
            beam_scores, log_probs, candidate_tokens, candidate_nodes, num_beams
        )
        sequences = torch.cat(
            [sequences.gather(1, parent.unsqueeze(-1).expand(-1, -1, level)), beam_tokens.unsqueeze(-1)],
            dim=2,
        )
        if level + 1 < trie.num_levels:
            if tree:
                lineage = torch.cat(
                    [
                        lineage.gather(1, parent.unsqueeze(-1).expand(-1, -1, level)),
                        beam_range.expand(n, num_beams).unsqueeze(-1),
                    ],
                    dim=2,
                )
            elif level > 0:
                flat_parent = (torch.arange(n, device=device).unsqueeze(1) * num_beams + parent).flatten()
                cache.reorder_cache(flat_parent)
    return SIDBeamSearchOutput(sequences=sequences, item_indices=beam_nodes, scores=beam_scores)


def _excluded_table(exclude_items: list[list[int]] | None, n: int, num_items: int,
                    device: torch.device) -> torch.Tensor | None:
    """``exclude_items`` as a LongTensor ``(n, H)`` right-padded with ``-1`` (None when not given)."""
    if exclude_items is None:
        return None
    if len(exclude_items) != n:
        raise SimCITInputError(f"exclude_items has {len(exclude_items)} lists for {n} histories")
    rows = [sorted({int(i) for i in row}) for row in exclude_items]
    for index, row in enumerate(rows):
        if row and not (row[0] >= 0 and row[-1] < num_items):
            raise SimCITInputError(f"exclude_items row {index}: item indices must be in 0..{num_items - 1}")
    table = torch.full((n, max([1, *map(len, rows)])), -1, dtype=torch.long)
    for index, row in enumerate(rows):
        table[index, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return table.to(device)


def _candidate_log_probs(logits: torch.Tensor, candidate_columns: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the candidate tokens, normalised over all ``C`` logit columns.

    logits: ``(n, b, C)``; candidate_columns: ``(n, b, M)``, the candidates' columns in ``logits`` with
    :data:`PAD_TOKEN` padding -> ``(n, b, M)``, ``-inf`` at padding. Only the log-normaliser needs the
    whole row (one fused log-softmax is faster on CPU than ``logsumexp`` + gather).
    """
    num_columns = logits.shape[-1]
    padding = candidate_columns == PAD_TOKEN
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    gathered = log_probs.gather(-1, candidate_columns.clamp(max=num_columns - 1))
    return gathered.masked_fill(padding, float("-inf"))


class _LogitsFunction:
    """Runs the model for the search and returns ``(logits (..., C), cache)``.

    ``score_vocab="full"``: the model's own logits over its whole vocabulary (``C = V``), so scores are
    exactly ``generate``'s. ``score_vocab="sid"``: the decoder's hidden states times the output-embedding
    rows of the catalogue's SID tokens only (``C = S``, the number of distinct SID tokens): the
    ``(tokens x V)`` head and normaliser, which dominate decoding cost for large vocabularies, become
    ``(tokens x S)``; scores are then log-probabilities normalised over the SID tokens.
    """

    def __init__(self, model: torch.nn.Module, trie: SIDTrie, score_vocab: ScoreVocab) -> None:
        if score_vocab not in ("full", "sid"):
            raise SimCITInputError(f"score_vocab must be 'full' or 'sid'; got {score_vocab!r}")
        self.model = model
        self.trie = trie
        self.score_vocab = score_vocab
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        if score_vocab == "full":
            self.module = model
            parameters = inspect.signature(base.forward).parameters
            self.keep_last = "logits_to_keep" in parameters
            self.token_to_column = None
        else:
            head = base.get_output_embeddings()
            if type(head) is not torch.nn.Linear or getattr(base.config, "final_logit_softcapping", None):
                raise SimCITInputError(
                    f"score_vocab='sid' needs a plain linear output layer; {type(head).__name__} found (merge "
                    "adapters with merge_and_unload() or use score_vocab='full')"
                )
            trie.check_vocab(head.weight.shape[0])
            sid_tokens = torch.unique(trie.item_token_ids)  # (S,) sorted
            self.weight = head.weight[sid_tokens]  # (S, hidden)
            self.bias = None if head.bias is None else head.bias[sid_tokens]
            self.token_to_column = torch.zeros(
                trie.max_token_id + 1, dtype=torch.long, device=sid_tokens.device
            )
            self.token_to_column[sid_tokens] = torch.arange(len(sid_tokens), device=sid_tokens.device)
            self.module = base.get_decoder()
            parameters = inspect.signature(self.module.forward).parameters
            self.keep_last = False
        self.cache_name = "cache" if "cache" in parameters else "past_key_values"

    def __call__(self, last_only: bool, cache=None, **inputs) -> tuple[torch.Tensor, object]:
        inputs["use_cache"] = True
        if cache is not None:
            inputs[self.cache_name] = cache
        if self.score_vocab == "full":
            if last_only and self.keep_last:
                inputs["logits_to_keep"] = 1
            out = self.model(**inputs)
            logits = out.logits[:, -1:] if last_only else out.logits
            self.trie.check_vocab(logits.shape[-1])
        else:
            out = self.module(**inputs)
            hidden = out.last_hidden_state[:, -1:] if last_only else out.last_hidden_state
            logits = torch.nn.functional.linear(hidden, self.weight, self.bias)
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        return logits, cache

    def columns(self, tokens: torch.Tensor) -> torch.Tensor:
        """Trie token ids ``(...)`` -> their columns in the logits (padding stays :data:`PAD_TOKEN`)."""
        if self.token_to_column is None:
            return tokens
        padding = tokens == PAD_TOKEN
        columns = self.token_to_column[tokens.clamp(max=len(self.token_to_column) - 1)]
        return columns.masked_fill(padding, PAD_TOKEN)


def _select_top_beams(
    beam_scores: torch.Tensor,
    log_probs: torch.Tensor,
    candidate_tokens: torch.Tensor,
    candidate_nodes: torch.Tensor,
    num_beams: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the best ``num_beams`` of ``beams x children`` per history.

    beam_scores: ``(n, b)``; log_probs/candidate_tokens/candidate_nodes: ``(n, b, M)`` -> new scores,
    parent beam, token and node, each ``(n, num_beams)``. Missing or ``-inf`` candidates become dead beams
    (score ``-inf``, node ``-1``, token 0 so that it can still be fed to the model).
    """
    n, b, width = log_probs.shape
    total = (beam_scores.unsqueeze(-1) + log_probs).reshape(n, b * width)
    keep = min(num_beams, b * width)
    scores, flat_index = total.topk(keep, dim=1)  # sorted, best first
    parent = torch.div(flat_index, width, rounding_mode="floor")
    tokens = candidate_tokens.reshape(n, -1).gather(1, flat_index)
    nodes = candidate_nodes.reshape(n, -1).gather(1, flat_index)
    dead = torch.isneginf(scores)
    nodes = nodes.masked_fill(dead, -1)
    tokens = tokens.masked_fill(dead, 0)
    if keep < num_beams:
        missing = num_beams - keep
        scores = torch.cat([scores, scores.new_full((n, missing), float("-inf"))], dim=1)
        parent = torch.cat([parent, parent.new_zeros(n, missing)], dim=1)
        tokens = torch.cat([tokens, tokens.new_zeros(n, missing)], dim=1)
        nodes = torch.cat([nodes, nodes.new_full((n, missing), -1)], dim=1)
    return scores, parent, tokens, nodes


def _tree_attention_mask(
    prompt_mask: torch.Tensor, lineage: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Additive 4D mask ``(n, 1, B, P + B * s)`` for feeding the ``s``-th block of beam tokens.

    prompt_mask: ``(n, P)`` (1 = real token); lineage: ``(n, B, s)``, ``lineage[i, b, j]`` = slot, in the
    ``j``-th block of appended beam tokens, of beam ``b``'s ancestor (the last one is ``b`` itself). Each beam
    token sees the real prompt tokens, its ancestors and itself.
    """
    n, num_beams, depth = lineage.shape
    prompt_length = prompt_mask.shape[1]
    visible = torch.zeros(
        n, num_beams, prompt_length + num_beams * depth, dtype=torch.bool, device=lineage.device
    )
    visible[:, :, :prompt_length] = prompt_mask.bool().unsqueeze(1)
    block_start = prompt_length + num_beams * torch.arange(depth, device=lineage.device)
    visible.scatter_(2, block_start + lineage, True)
    additive = torch.zeros(visible.shape, dtype=dtype, device=lineage.device)
    return additive.masked_fill_(~visible, torch.finfo(dtype).min).unsqueeze(1)


def _resolve_kv_sharing(model: torch.nn.Module, kv_sharing: KVSharing) -> bool:
    if kv_sharing not in ("auto", "tree", "repeat"):
        raise SimCITInputError(f"kv_sharing must be 'auto', 'tree' or 'repeat'; got {kv_sharing!r}")
    if kv_sharing != "auto":
        return kv_sharing == "tree"
    config = model.config
    if getattr(config, "is_encoder_decoder", False) or config.model_type not in _TREE_ATTENTION_MODEL_TYPES:
        return False
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    layer_types = getattr(config, "layer_types", None) or []
    if any(layer_type != "full_attention" for layer_type in layer_types):
        return False
    return not (getattr(config, "use_sliding_window", False) and getattr(config, "sliding_window", None))


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _model_dtype(model: torch.nn.Module) -> torch.dtype:
    embeddings = model.get_input_embeddings()
    return embeddings.weight.dtype if embeddings is not None else torch.float32
