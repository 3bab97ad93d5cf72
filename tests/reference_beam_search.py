"""The exactness oracle: a compact fixed-depth SID beam search written as plainly as possible.

Why in the tests: the package has one decoder (:mod:`hf_simcit.generation`, tree attention / KV sharing,
exclusions); this independent search (one prefill per history, KV cache reordered across beams, exactly
``num_levels`` steps, candidate sets as boolean masks over the catalogue) is what its exactness is checked
against, so it must not share code with it.
"""

from __future__ import annotations

import torch

from hf_simcit.errors import SimCITInputError


def _level_codes(item_token_ids: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per level: the distinct token ids ``(K_l,)`` and each item's local code ``(N,)`` into them."""
    uniques, locals_ = [], []
    for level in range(item_token_ids.shape[1]):
        tokens, inverse = torch.unique(item_token_ids[:, level], return_inverse=True)
        uniques.append(tokens)
        locals_.append(inverse)
    return uniques, locals_


def _cache_of(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


@torch.no_grad()
def sid_beam_search(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    item_token_ids: torch.Tensor, num_beams: int, num_return: int | None = None,
                    position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact trie-constrained beam search over SIDs.

    Args:
        input_ids, attention_mask: ``(B, T)`` left-padded prompts.
        item_token_ids: ``(N, L)`` token ids of every item's SID (rows distinct).
        num_beams: beams kept per history at every level.
        num_return: items returned per history (``<= num_beams``; default ``num_beams``).

    Returns:
        ``items (B, R)`` item indices (``-1`` where fewer than ``R`` items exist) and ``scores (B, R)``
        (sum of the SID tokens' log-probabilities, ``-inf`` for missing), best first.
    """
    num_return = num_beams if num_return is None else num_return
    if num_return > num_beams:
        raise SimCITInputError(f"cannot return {num_return} items from {num_beams} beams; use num_beams >= k")
    device = input_ids.device
    item_token_ids = item_token_ids.to(device)
    num_items, num_levels = item_token_ids.shape
    batch = input_ids.shape[0]
    uniques, local_codes = _level_codes(item_token_ids)
    if position_ids is None:
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
    cache = _cache_of(out)
    logits = out.logits[:, -1, :].float()                                # (B, V)
    last_position = position_ids[:, -1]                                   # (B,)

    beams = 1
    candidates = torch.ones(batch, 1, num_items, dtype=torch.bool, device=device)   # (B, beams, N)
    beam_scores = torch.zeros(batch, 1, device=device)
    mask = attention_mask
    for level in range(num_levels):
        log_probs = torch.log_softmax(logits, dim=-1).view(batch, beams, -1)          # (B, beams, V)
        tokens, codes = uniques[level], local_codes[level]
        allowed = torch.zeros(batch, beams, tokens.numel(), device=device)
        allowed.scatter_add_(2, codes.expand(batch, beams, num_items), candidates.float())
        scores = beam_scores.unsqueeze(-1) + log_probs[:, :, tokens]                  # (B, beams, K_l)
        scores = scores.masked_fill(allowed == 0, float("-inf"))
        width = min(num_beams, scores.shape[1] * scores.shape[2])
        beam_scores, flat = scores.view(batch, -1).topk(width, dim=-1)                # (B, width)
        parent = torch.div(flat, tokens.numel(), rounding_mode="floor")
        code = flat % tokens.numel()
        candidates = torch.gather(candidates, 1, parent.unsqueeze(-1).expand(-1, -1, num_items))
        candidates = candidates & (codes.view(1, 1, -1) == code.unsqueeze(-1))
        candidates = candidates & torch.isfinite(beam_scores).unsqueeze(-1)
        if level == num_levels - 1:
            break
        source_rows = (torch.arange(batch, device=device).unsqueeze(1) * beams + parent).reshape(-1)
        cache.reorder_cache(source_rows)
        mask = torch.cat([mask[source_rows], torch.ones(source_rows.numel(), 1, dtype=mask.dtype,
                                                          device=device)], dim=1)
        step_position = (last_position.repeat_interleave(width) + level + 1).unsqueeze(1)
        next_tokens = tokens[code].reshape(-1, 1)
        out = model(input_ids=next_tokens, attention_mask=mask, position_ids=step_position,
                    cache=cache, use_cache=True)
        cache = _cache_of(out)
        logits = out.logits[:, -1, :].float()
        beams = width
    found = candidates.any(-1)
    items = torch.where(found, candidates.float().argmax(-1), torch.full_like(beam_scores, -1, dtype=torch.long))
    beam_scores = beam_scores.masked_fill(~found, float("-inf"))
    if items.shape[1] < num_return:
        pad = num_return - items.shape[1]
        items = torch.cat([items, items.new_full((batch, pad), -1)], dim=1)
        beam_scores = torch.cat([beam_scores, beam_scores.new_full((batch, pad), float("-inf"))], dim=1)
    return items[:, :num_return], beam_scores[:, :num_return]


def reference_rankings(model, tokenizer, item_token_ids: torch.Tensor, split, num_beams: int,
                       template=None, batch_size: int = 32) -> torch.Tensor:
    """``(n, width)`` item rankings of every row of ``split`` by this search, on the prompts and batches
    :func:`hf_simcit.recommender.evaluation.evaluate_recommender` builds (its ``rankings``)."""
    from hf_simcit.generation import prepare_prompts
    from hf_simcit.recommender.data import PromptTemplate, SIDPromptFormatter

    formatter = SIDPromptFormatter(tokenizer, item_token_ids, template or PromptTemplate())
    prompts = [formatter.prompt_ids(history) for history in split["history"]]
    device = next(model.parameters()).device
    width = min(num_beams, item_token_ids.shape[0])
    rankings = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            input_ids, attention_mask = prepare_prompts(prompts[start:start + batch_size],
                                                        pad_token_id=tokenizer.pad_token_id)
            items, _ = sid_beam_search(model, input_ids.to(device), attention_mask.to(device), item_token_ids,
                                       num_beams=width)
            rankings.append(items.cpu())
    finally:
        model.train(was_training)
    return torch.cat(rankings)
