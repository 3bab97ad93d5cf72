"""Full-ranking evaluation of a generative recommender on a validation or test split.

Why full ranking: the constrained beam search ranks the *whole* catalogue (every item is reachable in the
trie); the target's position among the returned beams is its rank, an item outside the beams ranks below
every returned one. No sampled negatives, no item filtering, so numbers are comparable with SASRec's full
softmax ranking on the same split. Every returned item is checked against the SID table: ``invalid_items``
counts returned ids that are not real items (or are duplicates) and must be 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from ..errors import SimCITInputError
from ..metrics.ranking import ranking_metrics

__all__ = ["count_invalid", "evaluate_recommender", "evaluate_saved_recommender"]


def count_invalid(ranked: torch.Tensor, num_items: int) -> int:
    """Returned entries that are not real items or repeat an item already returned for the same history."""
    slots = min(ranked.shape[1], num_items)
    head = ranked[:, :slots]
    out_of_range = ((head < 0) | (head >= num_items)).sum().item()
    sorted_head = head.sort(dim=-1).values
    duplicates = ((sorted_head[:, 1:] == sorted_head[:, :-1]) & (sorted_head[:, 1:] >= 0)).sum().item()
    return int(out_of_range + duplicates)


@torch.no_grad()
def evaluate_recommender(
    model: Any,
    tokenizer: Any,
    item_token_ids: torch.Tensor,
    split: Any,
    *,
    template: Any = None,
    ks: Sequence[int] = (5, 10),
    num_beams: int = 20,
    batch_size: int = 32,
    max_examples: int | None = None,
    device: str | torch.device | None = None,
    accelerator: Any = None,
    desc: str = "evaluate",
    return_rankings: bool = False,
    exclude_history: bool = False,
    new_items: Sequence[int] | torch.Tensor | None = None,
    new_item_slots: int = 0,
    hybrid: Any = None,
    hybrid_weights: Sequence[float] = (),
) -> dict[str, Any]:
    """Recall/NDCG@K and MRR of ``model`` on ``split`` (``history``, ``target`` columns), full ranking.

    With an ``accelerator`` the examples are sharded over processes and the rankings gathered, so every
    process returns the same metrics. ``max_examples`` evaluates the first ``max_examples`` rows of the split
    (``None``: all of it); training's periodic validation hands in its seeded random sample of validation users
    (:func:`hf_simcit.data.sample_rows`) already cut. Decoding: :func:`hf_simcit.generation.recommend`, on the
    model's device (``device`` only places the trie and the gathered rankings).
    ``exclude_history``: never recommend an item of the example's own history (RecBole's full-ranking
    protocol; right for data without repeat consumption, wrong where users come back to items).
    ``new_items``, ``new_item_slots``: the last ``new_item_slots`` places of the top ``max(ks)`` go to the best
    of ``new_items`` (e.g. cold-start items), as :func:`hf_simcit.generation.recommend` does; the rankings are
    then ``max(ks)`` long.
    ``hybrid``: a :class:`hf_simcit.recommender.dense.HybridRanking`; the beam's ``num_beams`` candidates are
    re-ordered by it (a model with a dense item head). ``hybrid_weights``: the same beams and head scores also
    ranked at each of these weights (0: the beam's own order), their metrics under ``"by_hybrid_weight"``
    (``{weight: metrics}``), so that choosing the weight costs one beam search, not one per weight.
    """
    from tqdm.auto import tqdm

    from .data import PromptTemplate, SIDPromptFormatter

    if max(ks) > num_beams:
        raise SimCITInputError(f"num_beams={num_beams} < largest K={max(ks)}: beams must be at least K")
    num_items = item_token_ids.shape[0]
    formatter = SIDPromptFormatter(tokenizer, item_token_ids, template or PromptTemplate())
    n = len(split) if max_examples is None else min(len(split), int(max_examples))
    histories = split[:n]["history"]
    targets = torch.as_tensor(split[:n]["target"], dtype=torch.long)
    formatter.check_items(targets.tolist(), "evaluation targets")
    rows_to_decode, tags = _shard_rows(n, accelerator)
    device = device or (accelerator.device if accelerator is not None else next(model.parameters()).device)
    was_training = model.training
    model.eval()
    width = min(num_beams, num_items)
    if hybrid_weights and hybrid is None:
        raise SimCITInputError("hybrid_weights need a hybrid ranking (a recommender with a dense item head)")
    if hybrid is not None:
        if new_item_slots:
            raise SimCITInputError("hybrid ranking and new_item_slots do not combine; use one of them")
        hybrid.check(model, num_items)
    rankers = [hybrid] + [replace(hybrid, weight=float(w)) for w in hybrid_weights]
    search = _Search(width, k=max(ks) if new_item_slots else width, new_items=new_items,
                     new_item_slots=new_item_slots, rankers=rankers)
    rankings = []
    show = accelerator is None or accelerator.is_local_main_process
    for start in tqdm(range(0, len(rows_to_decode), batch_size), desc=desc, disable=not show, leave=False):
        rows = rows_to_decode[start:start + batch_size]
        prompts = [formatter.prompt_ids(histories[i], where=f"{desc} row {i}") for i in rows]
        exclude = [histories[i] for i in rows] if exclude_history else None
        items = search(model, prompts, item_token_ids, tokenizer.pad_token_id, device, exclude)
        tag = torch.as_tensor(tags[start:start + batch_size], dtype=torch.long).view(-1, 1)
        rankings.append(torch.cat([tag, *(ranked.cpu().long() for ranked in items)], dim=1))   # one gather for all
    if was_training:
        model.train()
    ranked = torch.cat(rankings) if rankings else torch.empty(0, search.k * len(rankers) + 1, dtype=torch.long)
    if accelerator is not None and accelerator.num_processes > 1 and n > 0:
        ranked = _gather_rankings(ranked, n, accelerator, device)
    order, *each = ranked[:, 0], *ranked[:, 1:].split(search.k, dim=1)

    def measured(ranked: torch.Tensor) -> dict[str, Any]:
        metrics: dict[str, Any] = ranking_metrics(ranked, targets[order], ks)
        metrics["invalid_items"] = count_invalid(ranked, num_items)
        metrics["num_examples"] = int(ranked.shape[0])
        metrics["num_beams"] = int(width)
        return metrics

    metrics = measured(each[0])
    if hybrid_weights:
        metrics["by_hybrid_weight"] = {float(w): measured(r) for w, r in zip(hybrid_weights, each[1:])}
    if return_rankings:
        metrics["rankings"] = each[0]
    return metrics


def _shard_rows(n: int, accelerator: Any) -> tuple[list[int], list[int]]:
    """This process's rows to decode and their tags (the row index, ``-1`` for padding).

    Every process decodes the same number of rows, ``ceil(n / processes)``: the shards of ``n % processes != 0``
    rows are padded with a repeat of a real row (tagged ``-1``, dropped after the gather). Equal shards keep
    the gather's tensors the same shape on every process and the model's forward calls in step (FSDP runs
    collectives inside forward).
    """
    world = accelerator.num_processes if accelerator is not None else 1
    if world <= 1 or n == 0:
        return list(range(n)), list(range(n))
    mine = list(range(accelerator.process_index, n, world))
    pad = -(-n // world) - len(mine)
    return mine + [mine[0] if mine else 0] * pad, mine + [-1] * pad


def _gather_rankings(ranked: torch.Tensor, n: int, accelerator: Any, device: Any) -> torch.Tensor:
    """All processes' ``(rows, 1 + width)`` tagged rankings, padding dropped, in row order; checks that every
    row 0..n-1 came back exactly once.

    Plain ``gather``, not ``gather_for_metrics``: the latter truncates to the *training* loader's remainder when
    it is called while that loader sits on its last batch (validation at the end of an epoch).
    """
    gathered = accelerator.gather(ranked.to(device)).cpu()
    gathered = gathered[gathered[:, 0] >= 0]
    gathered = gathered[gathered[:, 0].argsort()]
    if not torch.equal(gathered[:, 0], torch.arange(n)):
        raise RuntimeError(f"distributed evaluation gathered rows {gathered[:, 0].tolist()[:20]}..., "
                           f"expected each of 0..{n - 1} once")
    return gathered


class _Search:
    """``search(model, prompts, item_token_ids, pad_id, device, exclude) -> [(B, k)]`` item indices, best
    first, one tensor per ranker, by :func:`hf_simcit.generation.recommend`; ``exclude``: None or one list of item indices per prompt
    that may not be recommended. One trie per catalogue and device (building it for 12k items takes ~1 s;
    a batch ~30 ms). ``rankers``: one ranking per entry, each the beam's order (``None``) or its candidates
    re-ordered by a :class:`~.dense.HybridRanking`; the hybrids share one head forward pass (their item
    embeddings must be the same)."""

    def __init__(self, width: int, k: int | None = None, new_items: Any = None, new_item_slots: int = 0,
                 rankers: Sequence[Any] = (None,)):
        self.width, self.k = width, k or width
        self.new_items, self.new_item_slots, self.rankers = new_items, new_item_slots, list(rankers)
        self.tries: dict[tuple[int, str], Any] = {}

    def __call__(self, model, prompts: list[list[int]], item_token_ids: torch.Tensor, pad_id: int, device,
                 exclude: list[list[int]] | None = None) -> list[torch.Tensor]:
        from ..generation import SIDTrie, recommend

        key = (id(item_token_ids), str(device))
        if key not in self.tries:
            self.tries.clear()
            self.tries[key] = SIDTrie(item_token_ids.to(device))
        ranked = recommend(model, prompts, self.tries[key], k=self.k, num_beams=self.width,
                           pad_token_id=pad_id, batch_size=len(prompts), exclude_items=exclude,
                           new_items=self.new_items, new_item_slots=self.new_item_slots)
        hybrids = [r for r in self.rankers if r is not None]
        cosines = hybrids[0].cosines(model, prompts, pad_id) if any(r.weight for r in hybrids) else \
            torch.zeros(len(prompts), item_token_ids.shape[0])
        return [ranked.item_indices if r is None else r.rerank(ranked, cosines).item_indices for r in self.rankers]


def evaluate_saved_recommender(model_dir: str, data_dir: str, *, split: str = "test", ks: Sequence[int] = (5, 10),
                               num_beams: int = 20, batch_size: int = 32, max_examples: int | None = None,
                               output: str | None = None, device: str | None = None,
                               exclude_history: bool = False, hybrid_weight: float | None = None) -> dict[str, Any]:
    """Load a recommender folder and a prepared data folder, evaluate one split, optionally write JSON
    (``exclude_history``: see :func:`evaluate_recommender`; ``hybrid_weight``: rank by the hybrid of a folder
    with a dense item head, :class:`~.dense.HybridRanking`, ``None``: the folder's own weight; both recorded
    in the metrics)."""
    import json
    from pathlib import Path

    from ..data import load_prepared
    from .dense import hybrid_ranking_of
    from .inference import template_of
    from .modeling import load_recommender

    for name, value in (("num_beams", num_beams), ("batch_size", batch_size), ("max_examples", max_examples),
                        *((f"ks[{i}]", k) for i, k in enumerate(ks))):
        if value is not None and value < 1:      # 0 users would write all-zero metrics as if measured
            raise SimCITInputError(f"{name} must be at least 1, got {value}")
    if not ks:
        raise SimCITInputError("ks: give at least one cut-off, e.g. 5,10")
    if output and Path(output).is_dir():
        raise SimCITInputError(f"--output {output} is a folder; name the metrics JSON file to write")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rec = load_recommender(model_dir, device=device)
    hybrid = hybrid_ranking_of(rec, hybrid_weight)
    prepared = load_prepared(data_dir)
    if rec.item_ids is not None and list(prepared.items["item_id"]) != rec.item_ids:
        raise SimCITInputError(f"{data_dir} and {model_dir} have different item catalogues; evaluate with the "
                               "prepared data the recommender was trained on")
    if split not in prepared.splits:
        raise SimCITInputError(f"{data_dir} has no {split!r} split (has {list(prepared.splits)})")
    metrics = evaluate_recommender(rec.model, rec.tokenizer, rec.item_token_ids, prepared.splits[split],
                                   template=template_of(rec), ks=ks, num_beams=num_beams, batch_size=batch_size,
                                   max_examples=max_examples, desc=f"evaluate {split}",
                                   exclude_history=exclude_history, hybrid=hybrid)
    metrics["split"] = split
    metrics["exclude_history"] = exclude_history
    metrics["hybrid_weight"] = rec.hybrid_weight if hybrid_weight is None else hybrid_weight
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(metrics, indent=2))
    return metrics
