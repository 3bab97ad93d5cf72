"""Benchmark: can the generator recommend items that had no interactions when everything was trained?

That is what semantic IDs promise over item-id models (SASRec has no embedding for an item it never saw).
Protocol (issue #13):

1. A seeded random ``--cold-share`` of the catalogue is *cold*. Every interaction with a cold item is removed
   from the users' sequences, except a cold item that is the user's very last (test) interaction, which stays
   as the test target. The sequences are then split leave-one-out as usual, so the training and validation
   rows and every history hold warm items only (asserted), and the collaborative (SVD) features are computed
   from those training rows: cold items have no ``cf`` modality.
2. Every tokenizer (SimCIT with the data set's recipe, RQ-KMeans, RQ-VAE) is trained on the warm items'
   features only and the generators (``benchmarks/recommend.py``'s ``run_generator``) on the warm items only
   (their item index space has no cold item at all).
3. Cold items get SIDs from the trained quantizer, no retraining
   (:func:`hf_simcit.quantizers.cold_start_assignment`, the path of ``add_cold_start_items``), avoiding every
   warm SID; they join the trie and the saved best generator ranks the whole catalogue.
4. Scored: test users whose target is cold ("cold") and a seeded sample of the others ("warm"), R@10 / N@10,
   for the generators, SASRec (cannot rank a cold item: 0 by construction; warm on its own catalogue), SASRec
   over each tokenizer's SIDs (``sasrec+simcit``, ...: trained on the warm items, then given the cold items'
   SIDs with ``set_item_codes`` and ranking the whole catalogue exactly), ``simcit+dense`` (likewise
   ``rqkmeans+dense``, ``rqvae+dense``: the generator trained with a dense item head on the warm items' text
   embeddings, :mod:`hf_simcit.recommender.dense`, LIGER; its reserved places go to the cold items the head
   scores best by the cosine of its prediction to their text embeddings), popularity of the training targets
   and a text-similarity kNN (MiniLM cosine to the sum of the user's history embeddings, history items
   excluded, since Beauty has no repeat targets). For generators the warm figure is
   given with the cold items in the trie (``warm``) and without them (``warm_without_cold``). ``among_cold``:
   each cold target ranked among the cold items alone (hit@1/2/10), by a generator's exact SID log-probability
   and by its first level (and by a dense head's cosine), and by the text kNN's similarity: how well each orders
   the new items.

    nice -n 10 .venv/bin/python benchmarks/cold_start.py --dataset beauty --threads 1 --epochs 8
    .venv/bin/python benchmarks/cold_start.py --dataset ml-100k --epochs 1 --no-results     # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recommend as rb  # noqa: E402  (benchmarks/recommend.py: data, features, tokenizers, generator runs)
import reporting  # noqa: E402

ROOT = reporting.ROOT
GENERATORS = ("simcit", "rqkmeans", "rqvae")
# a generator that also learns the next item's text embedding (the dense item head, LIGER): the head, not the
# SIDs, picks the cold items for the reserved places
DENSE = {f"{tokenizer}+dense": tokenizer for tokenizer in GENERATORS}
# SASRec over each tokenizer's SIDs: trained on the warm items, then ranks the cold ones from their SIDs
SID_SASREC = {method: tokenizer for method, tokenizer in rb.SID_SASREC.items() if tokenizer in GENERATORS}
METHODS = (*GENERATORS, *DENSE, "sasrec", *SID_SASREC, "popularity", "text_knn")


def generator_folder(workdir: Path, method: str) -> Path:
    """Where a run keeps a generator (``simcit+dense`` in ``simcit_dense``)."""
    return workdir / method.replace("+", "_")


# ------------------------------------------------------------------------------------------------ protocol
def pick_cold_items(num_items: int, share: float, seed: int) -> np.ndarray:
    """A seeded random ``share`` of the item indices (sorted); at least one item, never all of them."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"cold share must be in (0, 1), got {share}")
    count = min(max(1, round(share * num_items)), num_items - 1)
    return np.sort(np.random.default_rng(seed).choice(num_items, size=count, replace=False))


@dataclass
class ColdStartSplit:
    """The cold-start data in a new item index space: warm items ``0 .. num_warm - 1``, cold ones after.

    ``old_index[new]`` is the original item index of new index ``new``; ``splits`` (train/validation/test,
    new indices) hold cold items only as test targets; ``sequences`` are the users' filtered sequences.
    """

    splits: object
    old_index: np.ndarray
    num_warm: int
    sequences: list[list[int]]
    users_dropped: int
    interactions_removed: int

    @property
    def num_items(self) -> int:
        return len(self.old_index)

    def is_cold(self, items) -> np.ndarray:
        return np.asarray(items) >= self.num_warm


def cold_start_split(sequences: list[list[int]], num_items: int, cold: np.ndarray,
                     max_history: int = 20) -> ColdStartSplit:
    """Remove every interaction with a ``cold`` item except a last (test) one, re-index, split leave-one-out."""
    from datasets import Dataset, DatasetDict

    from hf_simcit.data.dataset import SPLIT_FEATURES
    from hf_simcit.data.splits import leave_one_out

    cold_set = {int(i) for i in cold}
    warm = [i for i in range(num_items) if i not in cold_set]
    old_index = np.array(warm + sorted(cold_set), dtype=np.int64)
    new_index = np.empty(num_items, dtype=np.int64)
    new_index[old_index] = np.arange(num_items)
    kept, removed, dropped = [], 0, 0
    for seq in sequences:
        filtered = [i for i in seq[:-1] if i not in cold_set] + [seq[-1]]
        removed += len(seq) - len(filtered)
        if len(filtered) < 3:
            dropped += 1
            removed += len(filtered)
            continue
        kept.append([int(new_index[i]) for i in filtered])
    split = leave_one_out(kept, max_history=max_history)
    splits = DatasetDict({name: Dataset.from_dict(getattr(split, name), features=SPLIT_FEATURES)
                          for name in ("train", "validation", "test")})
    result = ColdStartSplit(splits, old_index, len(warm), kept, dropped, removed)
    check_no_leak(result)
    return result


def check_no_leak(data: ColdStartSplit) -> None:
    """Raise if a cold item occurs anywhere but as a test target (training/validation rows, any history, the
    rebuilt full-sequence training windows)."""
    from hf_simcit.data import training_sequences_from_splits

    for name in ("train", "validation", "test"):
        part = data.splits[name]
        items = [i for h in part["history"] for i in h] + (list(part["target"]) if name != "test" else [])
        if data.is_cold(items).any():
            raise AssertionError(f"a cold item leaks into the {name} split")
    rebuilt = training_sequences_from_splits(*(data.splits[s][:] for s in ("train", "validation", "test")))
    if any(data.is_cold(items).any() for items, _ in rebuilt.values() if items):
        raise AssertionError("a cold item leaks into the full-sequence training windows")


def warm_training_matrix(data: ColdStartSplit):
    """User x item (new indices) matrix of the training interactions: every item before the validation target."""
    import scipy.sparse as sp

    rows = [u for u, seq in enumerate(data.sequences) for _ in seq[:-2]]
    cols = [i for seq in data.sequences for i in seq[:-2]]
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                         shape=(len(data.sequences), data.num_items))


def cold_start_features(feats, data: ColdStartSplit, cf_dim: int = 32):
    """Item features in the new order: the content modalities as cached, ``cf`` recomputed (SVD) from the
    cold-start training matrix, so cold items have none (mask False) and warm ones carry no cold interaction."""
    from hf_simcit.features.collaborative import collaborative_embeddings
    from hf_simcit.quantizers import ItemFeatures

    order = torch.as_tensor(data.old_index)
    features = {m: x[order] for m, x in feats.features.items()}
    masks = {m: x[order] for m, x in feats.masks.items()}
    if "cf" in features:
        cf, present = collaborative_embeddings(warm_training_matrix(data), dim=cf_dim, method="svd")
        features["cf"], masks["cf"] = torch.as_tensor(cf), torch.as_tensor(present)
        if bool(masks["cf"][data.num_warm:].any()):
            raise AssertionError("a cold item has collaborative features")
    return ItemFeatures(features, masks, [feats.item_ids[i] for i in data.old_index])


def cold_sids(quantizer, warm_assignment, feats, data: ColdStartSplit):
    """SIDs for the cold items from the trained quantizer (no retraining), avoiding every warm SID.

    Returns ``(full_codes (n, L'), stats)`` where stats count cold items whose raw code (all quantizer levels)
    no warm item holds (``new_sid``) and those sharing it with a warm item, so only the disambiguation level
    tells them apart (``shares_warm_sid``), plus how many share each prefix length with a warm item.
    """
    from hf_simcit.quantizers import ItemFeatures
    from hf_simcit.quantizers.assignment import cold_start_assignment
    from hf_simcit.tokenization_simcit import SimCITTokenizer

    tokenizer = SimCITTokenizer.from_codes(warm_assignment.codes, feats.item_ids[:data.num_warm],
                                           warm_assignment.codebook_sizes)
    cold = feats.subset(range(data.num_warm, data.num_items))
    if getattr(quantizer, "config", None) is None:
        # the concatenation baselines (RQ-KMeans, RQ-VAE) read an absent modality as zeros, which is what a cold
        # item's cf row holds; they refuse a modality absent from every item, so it is passed as present zeros
        if any(bool(x[~cold.masks[m]].any()) for m, x in cold.features.items()):
            raise AssertionError("an absent modality row is not zeros")
        cold = ItemFeatures(cold.features, {m: torch.ones_like(x) for m, x in cold.masks.items()}, cold.item_ids)
    assignment = cold_start_assignment(quantizer, tokenizer, cold.features, cold.masks, warm_assignment.summary())
    tokenizer.add_items(assignment.codes, cold.item_ids)   # raises if a cold SID equals a warm one
    raw_warm, raw_cold = warm_assignment.raw_codes, assignment.raw_codes
    levels = raw_warm.shape[1]
    prefix_share = {}
    for length in range(1, levels + 1):
        warm_prefixes = {tuple(r[:length]) for r in raw_warm.tolist()}
        prefix_share[length] = int(sum(tuple(r[:length]) in warm_prefixes for r in raw_cold.tolist()))
    stats = {"cold_items": int(len(raw_cold)), "new_sid": int(len(raw_cold) - prefix_share[levels]),
             "shares_warm_sid": prefix_share[levels], "shares_prefix_with_warm": prefix_share,
             "cold_raw_collision_rate_among_cold": float(assignment.raw_statistics["collision_rate"])}
    return np.concatenate([warm_assignment.codes, assignment.codes]), tokenizer, stats


def codes_fingerprint(codes: np.ndarray) -> str:
    """SHA-256 of a ``(num_items, levels)`` SID table (int64, row-major): equal tables, equal strings."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(codes, dtype=np.int64).tobytes()).hexdigest()


# ------------------------------------------------------------------------------------------------ scoring
def split_rows(split, rows):
    return split.select([int(r) for r in rows])


@dataclass
class SavedGenerator:
    """A generator saved by a run, loaded once, with the SID rows of the whole catalogue (warm items first, in
    the generator's own token ids, then the cold items)."""

    folder: Path
    recommender: object
    item_token_ids: torch.Tensor

    @classmethod
    def load(cls, folder: Path, full_codes: np.ndarray, codebook_sizes, item_ids) -> SavedGenerator:
        from hf_simcit.recommender.modeling import load_recommender
        from hf_simcit.tokenization_simcit import SimCITTokenizer

        best = load_recommender(folder, device="cuda" if torch.cuda.is_available() else "cpu")
        table = SimCITTokenizer.from_codes(full_codes, item_ids, codebook_sizes)
        return cls(folder, best, table.item_token_ids(best.tokenizer))

    @property
    def dense_head(self) -> bool:
        """Whether the generator has a dense item head (trained with ``--methods <tokenizer>+dense``)."""
        from hf_simcit.recommender.dense import dense_head_of

        return dense_head_of(self.recommender.model) is not None

    def trained_on(self, num_warm: int) -> bool:
        """Whether the rebuilt warm SIDs are the ones this generator was trained on."""
        return torch.equal(self.item_token_ids[:num_warm].cpu(), self.recommender.item_token_ids.cpu())

    def evaluate(self, split, args, new_items=None, new_item_slots: int = 0, exclude_history: bool = False,
                 return_rankings: bool = False) -> dict:
        """Rank the whole catalogue (cold items in the trie) on ``split``; with ``new_item_slots``, that many of
        the top 10 places go to the best of ``new_items`` (the cold items) under the SID trie of those alone;
        ``exclude_history``: never an item of the user's own history."""
        from hf_simcit.recommender.evaluation import evaluate_recommender
        from hf_simcit.recommender.inference import template_of

        best = self.recommender
        return evaluate_recommender(best.model, best.tokenizer, self.item_token_ids, split, num_beams=args.beams,
                                    ks=(5, 10), batch_size=args.eval_batch_size, template=template_of(best),
                                    desc=f"cold-start {self.folder.name}", new_items=new_items,
                                    new_item_slots=new_item_slots, exclude_history=exclude_history,
                                    return_rankings=return_rankings)

    def prompts(self, split) -> list[list[int]]:
        from hf_simcit.recommender.data import SIDPromptFormatter
        from hf_simcit.recommender.inference import template_of

        best = self.recommender
        formatter = SIDPromptFormatter(best.tokenizer, self.item_token_ids, template_of(best))
        return [formatter.prompt_ids(history) for history in split["history"]]

    def cold_item_log_probs(self, split, cold_items: list[int]) -> torch.Tensor:
        """``(users, cold items, levels)``: each level's exact log-probability of every cold item's SID after each
        user's prompt (:func:`hf_simcit.generation.sid_log_probs`; no beam search, so nothing is missed)."""
        from hf_simcit.generation import sid_log_probs

        return sid_log_probs(self.recommender.model, self.prompts(split), self.item_token_ids[cold_items],
                             pad_token_id=self.recommender.tokenizer.pad_token_id)

    def dense_scores(self, split, item_embeddings: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        """``(users, items)``: the dense item head's cosine to every item's embedding after each user's prompt."""
        from hf_simcit.recommender.dense import dense_item_scores

        return dense_item_scores(self.recommender.model, self.prompts(split), item_embeddings,
                                 self.recommender.tokenizer.pad_token_id, batch_size=batch_size)


AMONG_COLD_KS = (1, 2, 10)


def among_cold(scores: torch.Tensor, targets, cold_items: list[int]) -> dict:
    """Hit@k of each cold target among the cold items alone, from ``(users, cold items)`` scores: how well a
    method ranks the new items against each other, which is what places reserved for them reward. Ties are
    broken at random, in expectation (a score shared by the ``e`` items of a prefix counts 1/e per place)."""
    position = {item: j for j, item in enumerate(cold_items)}
    column = torch.as_tensor([position[int(t)] for t in targets], dtype=torch.long)
    target = scores.gather(1, column[:, None])
    better, tied = (scores > target).sum(1).float(), (scores == target).sum(1).float()
    return {f"hit@{k}": float(((k - better) / tied).clamp(0, 1).mean()) for k in AMONG_COLD_KS}


def generator_among_cold(saved: SavedGenerator, split, cold_items: list[int]) -> dict:
    """Among-cold hit rates of a generator's exact SID log-probability, and of its first level alone shared by
    the items under it (log P(c1 | history) - log n(c1)): the generator's coarsest, best-trained guess, since
    the deeper levels of a cold SID are paths it never saw as a target."""
    from hf_simcit.generation import SIDTrie

    log_probs = saved.cold_item_log_probs(split, cold_items)          # (users, cold, levels)
    first_prefix, items_under = SIDTrie(saved.item_token_ids).item_nodes(1)   # each item's level-1 node, its size
    first_level = log_probs[..., 0] - items_under[first_prefix[cold_items]].float().log()
    return {"sid_log_prob": among_cold(log_probs.sum(-1), split["target"], cold_items),
            "first_level": among_cold(first_level, split["target"], cold_items)}


def scored_parts(score, parts: dict, cold_items: list[int], slots: list[int]) -> dict:
    """``{part: figures, "new_item_slots": {m: {part: figures}}}`` of one ranking: plainly, and with ``m`` of its
    top 10 places reserved for the cold items (:func:`hf_simcit.generation.recommend`'s ``new_item_slots``;
    TIGER's share of new items); ``score(split, new_items=..., new_item_slots=m) -> metrics``."""
    return {**{part: figures(score(split)) for part, split in parts.items()},
            "new_item_slots": {str(m): {part: figures(score(split, new_items=cold_items, new_item_slots=m))
                                        for part, split in parts.items()} for m in slots}}


def dense_reserved_scorer(saved: SavedGenerator, item_embeddings: torch.Tensor, args, exclude_history: bool = False):
    """``score(split, new_items=None, new_item_slots=0)`` as :func:`scored_parts` calls it: the generator's own
    ranking, its reserved places given to the new items its dense item head scores best (LIGER's route for
    items without a trained SID path); ``score.matrix(split)``: the head's ``(users, items)`` scores. Each
    split's ranking and scores are computed once."""
    searched, dense = {}, {}

    def matrix(split) -> torch.Tensor:
        if id(split) not in dense:              # the splits live in the caller's parts dict: stable ids
            dense[id(split)] = saved.dense_scores(split, item_embeddings, args.eval_batch_size)
        return dense[id(split)]

    def score(split, new_items=None, new_item_slots: int = 0, ks=(5, 10)) -> dict:
        from hf_simcit.generation.recommend import Recommendations, with_best_new_items
        from hf_simcit.metrics.ranking import ranking_metrics

        if id(split) not in searched:
            searched[id(split)] = saved.evaluate(split, args, exclude_history=exclude_history, return_rankings=True)
        metrics = dict(searched[id(split)])
        top = metrics.pop("rankings")[:, :max(ks)]
        if not new_item_slots:
            return metrics
        ranked = with_best_new_items(Recommendations(top, torch.zeros(top.shape), top[..., None]), matrix(split),
                                     new_items, max(ks), new_item_slots)
        return metrics | ranking_metrics(ranked.item_indices, split["target"], ks)

    score.matrix = matrix
    return score


def generator_row(saved: SavedGenerator, parts: dict, cold_items: list[int], args,
                  item_embeddings: torch.Tensor | None = None) -> dict:
    """A saved generator's figures per part (with and without reserved places); with ``--exclude-history``,
    the same again with each user's history items excluded, under ``history_excluded``. A generator with a
    dense item head fills the reserved places from that head over ``item_embeddings`` (the whole catalogue's)."""
    def scorer(exclude_history: bool = False):
        if saved.dense_head:
            return dense_reserved_scorer(saved, item_embeddings, args, exclude_history)
        return partial(saved.evaluate, args=args, exclude_history=exclude_history)

    plain = scorer()
    row = scored_parts(plain, parts, cold_items, args.new_item_slots)
    row["among_cold"] = generator_among_cold(saved, parts["cold"], cold_items)
    if saved.dense_head:
        row["among_cold"]["dense"] = among_cold(plain.matrix(parts["cold"])[:, cold_items], parts["cold"]["target"],
                                                cold_items)
    if args.exclude_history:
        row["history_excluded"] = scored_parts(scorer(exclude_history=True), parts, cold_items, args.new_item_slots)
    return row


def quantizer_folder(workdir: Path, tokenizer: str) -> Path:
    """Where a run keeps a tokenizer's trained quantizer (SimCIT's ``train_quantizer`` writes its own there, the
    recipe's ``output_dir``), so that ``--reevaluate`` rebuilds the SIDs from it instead of re-fitting."""
    return workdir / f"quantizer_{tokenizer}"


def saved_generator_sids(method: str, workdir: Path, warm_feats, modalities: list[str], args):
    """The warm items' SIDs and the trained quantizer of a generator saved in ``workdir`` by an earlier run: the
    quantizer is loaded from :func:`quantizer_folder` (no retraining, no re-fit), the SIDs assigned as
    ``rb.build_sids`` does. The caller checks them against the generator's own SID table."""
    from hf_simcit.errors import SimCITInputError
    from hf_simcit.quantizers import load_quantizer

    folder = quantizer_folder(workdir, method)
    if not folder.is_dir():
        raise SimCITInputError(f"{folder}: no saved {method} quantizer (a run of an older cold_start.py?); "
                               "train the method again")
    quantizer = load_quantizer(folder)
    return rb.assign_sids(quantizer, warm_feats.select(modalities), args.seed), quantizer


def matrix_scorer(scores_of):
    """``score(split, new_items=None, new_item_slots=0)`` as :func:`scored_parts` calls it, from ``scores_of(split)
    -> (users, items)`` scores: each split's matrix is computed once, not once per number of reserved places
    (``score.matrix(split)`` hands it out too)."""
    matrices: dict[int, torch.Tensor] = {}

    def matrix(split) -> torch.Tensor:
        if id(split) not in matrices:           # the splits live in the caller's parts dict: stable ids
            matrices[id(split)] = scores_of(split)
        return matrices[id(split)]

    def score(split, new_items=None, new_item_slots: int = 0, ks=(5, 10)) -> dict:
        return score_matrix_metrics(matrix(split), split, new_items, new_item_slots, ks)

    score.matrix = matrix
    return score


def text_knn_scores(text: torch.Tensor, split) -> torch.Tensor:
    """Every item's cosine of its text embedding to the sum of the user's history embeddings (history items
    excluded): the non-learned content baseline a cold item can reach."""
    from hf_simcit.baselines.knn import content_knn_scores

    return content_knn_scores(text, split["history"])


def text_knn(text: torch.Tensor, split, new_items=None, new_item_slots: int = 0, ks=(5, 10)) -> dict:
    """The text kNN's metrics on ``split``; with ``new_item_slots``, the last places go to the most similar of
    ``new_items``, assembled as the generator's reserved places are."""
    return matrix_scorer(partial(text_knn_scores, text))(split, new_items, new_item_slots, ks)


def sid_sasrec_scores(model, split, exclude_history: bool = False) -> torch.Tensor:
    """A SASRec over SIDs (its catalogue holding the cold items too) on ``split``: its exact scores of every item."""
    from hf_simcit.baselines.sasrec import score_items

    return score_items(model, split["history"], device=next(model.parameters()).device,
                       exclude_history=exclude_history)


def score_matrix_metrics(scores: torch.Tensor, split, new_items=None, new_item_slots: int = 0, ks=(5, 10)) -> dict:
    """Ranking metrics of a ``(users, items)`` score matrix; with ``new_item_slots``, the last places of the top
    ``max(ks)`` go to the best of ``new_items``, assembled as the generators' reserved places are."""
    from hf_simcit.generation.recommend import Recommendations, with_best_new_items
    from hf_simcit.metrics.ranking import ranking_metrics

    k = max(ks)
    top = scores.topk(k)
    ranked = Recommendations(top.indices, top.values, top.indices[..., None])
    if new_item_slots:
        ranked = with_best_new_items(ranked, scores, new_items, k, new_item_slots)
    return ranking_metrics(ranked.item_indices, split["target"], ks) | {"num_examples": len(split)}


def text_knn_row(feats, parts: dict, cold_items: list[int], args) -> dict:
    """The text kNN's figures per part, plainly and with ``--new-item-slots`` places kept for the cold items
    (the comparison the generators' reserved places need: the kNN, too, is told which items are new). It
    always excludes the history, so it has no separate ``history_excluded`` figures."""
    score = matrix_scorer(partial(text_knn_scores, feats.features["text"]))
    row = scored_parts(score, parts, cold_items, args.new_item_slots)
    cold = parts["cold"]
    row["among_cold"] = {"similarity": among_cold(score.matrix(cold)[:, cold_items], cold["target"], cold_items)}
    return row


def figures(metrics: dict) -> dict:
    return {k: float(metrics[k]) for k in ("recall@10", "ndcg@10")} | {"users": int(metrics.get("num_examples", 0))} | (
        {"invalid_items": int(metrics["invalid_items"])} if "invalid_items" in metrics else {})


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="beauty", choices=sorted(rb.DATA_DIRS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--cold-share", type=float, default=0.07, help="share of the catalogue made cold (0.05-0.10)")
    p.add_argument("--warm-test-examples", type=int, default=2000, help="seeded sample of warm-target test users")
    p.add_argument("--cold-test-examples", type=int, default=None, help="cap on cold-target users (default all)")
    p.add_argument("--rqvae-steps", type=int, default=1500)
    p.add_argument("--simcit-steps", type=int, default=None)
    p.add_argument("--levels", type=int, default=None)
    p.add_argument("--codebook-size", type=int, default=None)
    # the generator, as benchmarks/recommend.py names its options
    p.add_argument("--model", default=None)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=None)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--objective", default="full_sequence")
    p.add_argument("--epochs", type=float, default=8.0, help="epoch cap of every learned row")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--eval-epochs", type=int, default=1)
    p.add_argument("--eval-steps", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--scheduler", default="constant_with_warmup")
    p.add_argument("--eval-examples", type=int, default=1000, help="validation users (seeded sample)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beams", type=int, default=20)
    rb.add_dense_head_options(p)   # the +dense rows' head
    p.add_argument("--sasrec-epochs", type=float, default=None)
    p.add_argument("--sasrec-patience", type=int, default=None)
    p.add_argument("--sasrec-lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--workdir", default=None, help="where models go (default: $HF_SIMCIT_REC_BENCH_CACHE/cold-start)")
    p.add_argument("--no-results", action="store_true", help="write nothing under benchmarks/")
    p.add_argument("--results-name", default=None,
                   help="results/<name>.json (default cold-start-<dataset>), e.g. for a variant kept beside it")
    p.add_argument("--new-item-slots", type=lambda v: [int(x) for x in v.split(",") if x.strip()], default=[1, 2],
                   help="also score each generator with this many of its top 10 places reserved for cold items "
                        "(comma list; TIGER's share of new items)")
    p.add_argument("--exclude-history", action="store_true",
                   help="also score the generators and SASRec with each user's history items excluded from the "
                        "ranking, as the text kNN always is (RecBole's protocol); under each row's "
                        "history_excluded")
    p.add_argument("--reevaluate", nargs="+", default=None, metavar="WORKDIR",
                   help="train nothing: score the generators an earlier run saved in these --workdir folders "
                        "(SIDs rebuilt from the quantizer each run saved, checked against each generator's own), "
                        "with and without the --new-item-slots, and add the figures to the results JSON")
    p.add_argument("--from-partial", nargs="+", default=None, metavar="WORKDIR",
                   help="train nothing: write the results from the rows that runs with these --workdir folders "
                        "finished (their partial.json; e.g. two processes, each with some --methods)")
    return p.parse_args(argv)


# what may differ between the runs whose rows --from-partial merges: everything else decides the rows' figures
RUN_ONLY_OPTIONS = frozenset({"methods", "threads", "workdir", "no_results", "from_partial", "reevaluate",
                              "new_item_slots", "exclude_history", "results_name"})


def results_name(args) -> str:
    return args.results_name or f"cold-start-{args.dataset}"


def row_settings(args) -> dict:
    """The options that decide a row's figures (the split, the tokenizers, the generator, the evaluation)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in RUN_ONLY_OPTIONS}


def settings_mismatch(sources: dict[str, dict], expected: dict) -> str | None:
    """One line naming the first partial run whose settings differ from ``expected`` (this run's), else None."""
    for where, source in sources.items():
        theirs = source.get("settings")
        if theirs is None:
            return f"{where}: partial.json has no settings (written before they were recorded); re-run it"
        defaults = row_settings(parse_args([]))   # an option added after that run: it ran with the default
        differ = {k: (theirs.get(k, defaults.get(k)), v) for k, v in expected.items()
                  if theirs.get(k, defaults.get(k)) != v}
        if differ:
            key, (was, now) = next(iter(differ.items()))
            return (f"{where}: its rows were trained with --{key.replace('_', '-')} {was}, this command has {now} "
                    f"({len(differ)} setting(s) differ): merging would mix two protocols")
    return None


def load_partials(workdirs: list[str], expected: dict) -> tuple[list[dict], str | None]:
    """The ``partial.json`` of each run folder, and a one-line problem (missing, damaged, other settings)."""
    from hf_simcit.errors import SimCITInputError
    from hf_simcit.utils.serialization import read_json

    try:
        by_file = {str(Path(d) / "partial.json"): read_json(Path(d) / "partial.json") for d in workdirs}
    except SimCITInputError as err:
        return [], str(err)
    missing = [where for where, source in by_file.items() if source is None]
    if missing:
        return [], f"{missing[0]}: no such file (did that run start?)"
    return list(by_file.values()), settings_mismatch(by_file, expected) or sid_mismatch(by_file)


def sid_mismatch(by_file: dict[str, dict]) -> str | None:
    """Rows that share a tokenizer (``simcit`` and ``simcit+dense``) must share its SIDs: each run records a
    fingerprint of the whole catalogue's codes (``codes_sha256``), and runs whose fingerprints differ are not
    merged. Runs older than the fingerprint carry none and are not checked."""
    seen: dict[str, tuple[str, str]] = {}
    for where, source in by_file.items():
        for tokenizer, stats in source.get("sids", {}).items():
            digest = stats.get("codes_sha256")
            if digest is None:
                continue
            first = seen.setdefault(tokenizer, (where, digest))
            if first[1] != digest:
                return (f"{where}: its {tokenizer} SIDs differ from those of {first[0]} (another tokenizer fit): "
                        "merging would compare generators trained on different SIDs")
    return None


def keep_rescored_figures(rows: dict, path: Path) -> dict:
    """``--from-partial``: the figures that ``--reevaluate`` added to the results file (``history_excluded``,
    reserved places) stay with each merged row that file holds with the very same plain figures (the same
    model); returns the commands that scored them."""
    from hf_simcit.utils.serialization import read_json

    saved = read_json(path) or {"rows": {}}
    commands = {}
    for method, row in rows.items():
        earlier = saved["rows"].get(method)
        if earlier is None or any(earlier.get(part) != row.get(part) for part in ("cold", "warm")):
            continue
        row |= {key: value for key, value in earlier.items() if key not in row}
        if method in saved.get("new_item_slots_commands", {}):
            commands[method] = saved["new_item_slots_commands"][method]
    return commands


def main(argv: list[str] | None = None) -> int:
    return rb.with_bad_input_as_one_line(run, argv)


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        print(f"error: unknown method {unknown[0]!r} (choose from {', '.join(METHODS)})", file=sys.stderr)
        return 2
    if not 0.0 < args.cold_share < 1.0:
        print(f"error: --cold-share must be in (0, 1), got {args.cold_share}", file=sys.stderr)
        return 2
    sources, problem = load_partials(args.from_partial, row_settings(args)) if args.from_partial else ([], None)
    if problem:   # checked before any work: rows of another protocol are never merged
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    command = reporting.command_line("python benchmarks/cold_start.py", argv)
    started, load_start = time.time(), os.getloadavg()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    workdir = Path(args.workdir) if args.workdir else rb.CACHE / "cold-start" / args.dataset

    rec = rb.load_data(args.dataset)
    n = len(rec.items)
    cold = pick_cold_items(n, args.cold_share, args.seed)
    data = cold_start_split(list(rec.sequences["items"]), n, cold,
                            max_history=rec.stats.get("config", {}).get("max_history", 20))
    feats = cold_start_features(rb.load_features(args.dataset, rec), data)
    test = data.splits["test"]
    cold_rows = np.flatnonzero(data.is_cold(test["target"]))
    warm_rows = np.flatnonzero(~data.is_cold(test["target"]))
    rng = np.random.default_rng(args.seed)
    if args.cold_test_examples and len(cold_rows) > args.cold_test_examples:
        cold_rows = np.sort(rng.choice(cold_rows, args.cold_test_examples, replace=False))
    if args.warm_test_examples and len(warm_rows) > args.warm_test_examples:
        warm_rows = np.sort(rng.choice(warm_rows, args.warm_test_examples, replace=False))
    cold_test, warm_test = split_rows(test, cold_rows), split_rows(test, warm_rows)
    print(f"{args.dataset}: {n} items, {len(cold)} cold ({args.cold_share:.0%}, seed {args.seed}); "
          f"{data.interactions_removed} interactions removed, {data.users_dropped} users left with < 3; "
          f"{len(data.splits['train'])} training rows; test users with a cold target "
          f"{int(data.is_cold(test['target']).sum())} (scored {len(cold_rows)}), warm scored {len(warm_rows)}",
          flush=True)

    # the training view: only warm items exist (test rows keep their targets, used only to mask them)
    from datasets import Dataset

    warm_feats = feats.subset(range(data.num_warm))
    warm_rec = SimpleNamespace(items=Dataset.from_dict({"item_id": warm_feats.item_ids}), splits=data.splits)
    full_rec = SimpleNamespace(items=Dataset.from_dict({"item_id": feats.item_ids}), splits=data.splits)
    simcit_args = rb.quantizer_recipe(args.dataset, SimpleNamespace(
        seed=args.seed, levels=args.levels, codebook_size=args.codebook_size, simcit_steps=args.simcit_steps),
        workdir)
    modalities = list(simcit_args.modalities or feats.modalities)
    cold_items = list(range(data.num_warm, data.num_items))     # the catalogue orders warm items first
    if args.reevaluate:
        return reevaluate(args, command, data, feats, warm_feats, modalities, cold_items,
                          {"cold": cold_test, "warm": warm_test})
    rows: dict[str, dict] = {}
    sid_stats: dict[str, dict] = {}
    workdir.mkdir(parents=True, exist_ok=True)

    def checkpoint() -> None:   # the rows so far, in case a long run is stopped before the end
        (workdir / "partial.json").write_text(json.dumps({"command": command, "settings": row_settings(args),
                                                          "rows": rows, "sids": sid_stats}))

    if "popularity" in methods:
        rows["popularity"] = {part: figures(rb.run_baseline("popularity", full_rec, split)["test"])
                              for part, split in (("cold", cold_test), ("warm", warm_test))}
    if "text_knn" in methods:
        rows["text_knn"] = text_knn_row(feats, {"cold": cold_test, "warm": warm_test}, cold_items, args)
    if not args.from_partial:
        checkpoint()
    else:
        methods = []
        for source in sources:
            rows |= {m: r for m, r in source["rows"].items() if m not in ("popularity", "text_knn")}
            sid_stats |= source["sids"]
        command = " + ".join(dict.fromkeys(src["command"] for src in sources)) + f" (merged by: {command})"
        rescored = keep_rescored_figures(rows, reporting.results_path(results_name(args)))

    fitted: dict[str, tuple] = {}

    def warm_and_cold_sids(tokenizer: str):
        """The tokenizer trained on the warm items, and the whole catalogue's SIDs (cold items' from it); fitted
        once per run, so the rows that share a tokenizer (``simcit``, ``simcit+dense``, ``sasrec+simcit``) share
        its SIDs."""
        if tokenizer in fitted:
            return fitted[tokenizer]
        t0 = time.time()
        assignment, quantizer = rb.build_sids(tokenizer, warm_feats, modalities, simcit_args.num_levels,
                                              simcit_args.codebook_size, args.seed, simcit_args, args.rqvae_steps)
        if tokenizer != "simcit":   # SimCIT's is saved by its training, in the same place
            quantizer.save_pretrained(quantizer_folder(workdir, tokenizer))
        full_codes, _, stats = cold_sids(quantizer, assignment, feats.select(modalities), data)
        stats["warm_raw_collision_rate"] = float(assignment.raw_collision_rate)
        stats["warm_usage"] = [float(u) for u in assignment.raw_statistics["usage"]]
        stats["codes_sha256"] = codes_fingerprint(full_codes)
        sid_stats[tokenizer] = stats
        print(f"[{tokenizer}] SIDs in {time.time() - t0:.0f}s: {json.dumps(stats)}", flush=True)
        fitted[tokenizer] = assignment, full_codes
        return fitted[tokenizer]

    parts = {"cold": cold_test, "warm": warm_test}
    text = feats.features["text"]
    for method in [m for m in methods if m in GENERATORS or m in DENSE]:
        assignment, full_codes = warm_and_cold_sids(DENSE.get(method, method))
        folder = generator_folder(workdir, method)
        run = rb.run_generator(folder.name, assignment, warm_rec, warm_test, args, workdir,
                               item_embeddings=text[:data.num_warm] if method in DENSE else None)
        saved = SavedGenerator.load(folder, full_codes, assignment.codebook_sizes, feats.item_ids)
        scored = generator_row(saved, parts, cold_items, args, text)
        rows[method] = {**scored, "warm_without_cold": figures(run["test"]), "epochs": run["epochs"],
                        "best_epoch": run["best_epoch"], "train_s": round(float(run["train_s"]), 1),
                        "invalid_items": scored["cold"]["invalid_items"] + scored["warm"]["invalid_items"]}
        print(f"[{method}] {json.dumps(rows[method])}", flush=True)
        checkpoint()
    if "sasrec" in methods:
        run = rb.run_sasrec(warm_rec, warm_test, data.num_warm, args, device)
        zero = {"recall@10": 0.0, "ndcg@10": 0.0, "users": len(cold_rows)}
        rows["sasrec"] = {"cold": zero, "warm": figures(run["test"] | {"num_examples": len(warm_rows)}),
                          "cold_note": "cannot rank an item it never saw (no embedding): 0 by construction",
                          "epochs": run["epochs"], "best_epoch": run["best_epoch"],
                          "train_s": round(float(run["train_s"]), 1)}
        if args.exclude_history:
            rows["sasrec"]["history_excluded"] = {"cold": zero, "warm": figures(
                run["test_history_excluded"] | {"num_examples": len(warm_rows)})}
        print(f"[sasrec] {json.dumps(rows['sasrec'])}", flush=True)
        checkpoint()
    for method in [m for m in methods if m in SID_SASREC]:
        assignment, full_codes = warm_and_cold_sids(SID_SASREC[method])
        run = rb.run_sasrec(warm_rec, warm_test, data.num_warm, args, device, assignment=assignment, keep_model=True)
        model = run.pop("model").set_item_codes(torch.as_tensor(full_codes))
        rows[method] = scored_parts(matrix_scorer(partial(sid_sasrec_scores, model)), parts, cold_items,
                                    args.new_item_slots)
        if args.exclude_history:
            rows[method]["history_excluded"] = scored_parts(
                matrix_scorer(partial(sid_sasrec_scores, model, exclude_history=True)), parts, cold_items,
                args.new_item_slots)
        rows[method] |= {"warm_without_cold": figures(run["test"] | {"num_examples": len(warm_rows)}),
                         "epochs": run["epochs"], "best_epoch": run["best_epoch"],
                         "train_s": round(float(run["train_s"]), 1)}
        print(f"[{method}] {json.dumps(rows[method])}", flush=True)
        checkpoint()

    table = format_table(rows)
    wall = time.time() - started
    print(table)
    settings = (f"{args.dataset}, {n} items of which {len(cold)} cold (seeded random {args.cold_share:.0%}, seed "
                f"{args.seed}); {data.interactions_removed} interactions with cold items removed (a cold item "
                f"stays only as a user's last, test, interaction), {data.users_dropped} users dropped (< 3 left); "
                f"cf = 32-d SVD of the cold-start training matrix (cold items: none); tokenizers on the "
                f"{data.num_warm} warm items' {modalities} (SimCIT: recipes/{args.dataset}/quantizer.yaml, "
                f"codebook_refit {simcit_args.codebook_refit}); generators: 2 x {args.hidden} Llama, up to "
                f"{args.epochs:g} epochs, patience {args.patience}, validation on {args.eval_examples} users, "
                f"lr {args.lr}, batch {args.batch_size}, beam {args.beams}; cold users: all "
                f"{len(cold_rows)} test users whose target is cold; warm: a seeded sample of {len(warm_rows)}; "
                f"text kNN: MiniLM cosine to the sum of the history's embeddings, history items excluded; "
                f"threads {torch.get_num_threads()}")
    print(settings)
    if args.no_results:
        return 0
    load_end = os.getloadavg()
    out = {"date": reporting.utc_iso(), "command": command,
           "cold_items": int(len(cold)), "num_items": n, "cold_share": args.cold_share, "seed": args.seed,
           "cold_test_users": int(len(cold_rows)), "warm_test_users": int(len(warm_rows)),
           "interactions_removed": data.interactions_removed, "users_dropped": data.users_dropped,
           "sids": sid_stats, "rows": rows, "settings": settings, "wall_s": round(wall, 1),
           **({"new_item_slots_commands": rescored} if args.from_partial and rescored else {}),
           "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), load {load_start[0]:.1f} -> "
                      f"{load_end[0]:.1f}"}
    path = reporting.write_json(results_name(args), out)
    reporting.append_results(
        f"\n## Cold-start items ({args.dataset}{f', {args.results_name}' if args.results_name else ''})\n\nDate: {out['date']}. Machine: {out['machine']} "
        f"(load average at start / end; shared cores); wall time {wall / 60:.1f} min.\n"
        f"Command: `{command}`\n\nSettings: {settings}.\n\n{table}\n\nSIDs of the cold items: "
        + "; ".join(f"{m}: {s['new_sid']} of {s['cold_items']} on a raw code no warm item holds, "
                    f"{s['shares_warm_sid']} share a warm item's raw code (told apart by the "
                    f"disambiguation level), first-level prefix shared by {next(iter(s['shares_prefix_with_warm'].values()))}"
                    for m, s in sid_stats.items())
        + f". JSON: `{path.relative_to(ROOT)}`.\n")
    print(f"wrote {path}")
    return 0


def reevaluate(args, command: str, data, feats, warm_feats, modalities, cold_items: list[int], parts: dict) -> int:
    """``--reevaluate``: the saved generators, each scored plainly (which must reproduce the results JSON's row)
    and with ``--new-item-slots``; the slot figures go into that JSON's rows and a RESULTS.md table."""
    from hf_simcit.utils.serialization import read_json

    path = reporting.results_path(results_name(args))
    saved = read_json(path)
    full = feats.select(modalities)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    found: dict[str, dict] = {}

    def reproduced(method: str, where: Path | str) -> bool:
        plain = {part: found[method][part] for part in parts}
        if saved and method in saved["rows"] and any(
                abs(saved["rows"][method][part]["recall@10"] - plain[part]["recall@10"]) > 1e-9 for part in parts):
            print(f"error: {where} scores {plain} now, {path.name} holds "
                  f"{ {p: saved['rows'][method][p] for p in parts} }: not the run of that file", file=sys.stderr)
            return False
        return True

    for workdir in map(Path, args.reevaluate):
        for method in [m for m in (*GENERATORS, *DENSE)
                       if m in methods and (generator_folder(workdir, m) / "train_log.json").exists()]:
            folder = generator_folder(workdir, method)
            assignment, quantizer = saved_generator_sids(DENSE.get(method, method), workdir, warm_feats, modalities,
                                                         args)
            full_codes, _, _ = cold_sids(quantizer, assignment, full, data)
            generator = SavedGenerator.load(folder, full_codes, assignment.codebook_sizes, feats.item_ids)
            if not generator.trained_on(data.num_warm):
                print(f"error: {folder}: the rebuilt {method} SIDs are not the ones this generator was "
                      "trained on (other settings or seed?)", file=sys.stderr)
                return 2
            found[method] = generator_row(generator, parts, cold_items, args, feats.features["text"])
            print(f"[{method}] {json.dumps(found[method])}", flush=True)
            if not reproduced(method, folder):
                return 2
    if "text_knn" in methods:
        found["text_knn"] = text_knn_row(feats, parts, cold_items, args)
        print(f"[text_knn] {json.dumps(found['text_knn'])}", flush=True)
        if not reproduced("text_knn", "the text kNN"):
            return 2
    lines = ["| method | places for cold items (of 10) | cold R@10 | cold N@10 | warm R@10 | warm N@10 |",
             "|---|---|---|---|---|---|"]
    for method, row in found.items():
        for label, scored in [(method, row), (f"{method}, history excluded", row.get("history_excluded"))]:
            for m, part in [("0", scored), *scored["new_item_slots"].items()] if scored else []:
                lines.append(f"| {label} | {m} | {part['cold']['recall@10']:.4f} | {part['cold']['ndcg@10']:.4f} | "
                             f"{part['warm']['recall@10']:.4f} | {part['warm']['ndcg@10']:.4f} |")
    table = "\n".join(lines) + "\n\n" + among_cold_table(found)
    print(table)
    if args.no_results or not found:
        return 0
    if saved is None:
        print(f"error: {path} does not exist: run the benchmark first", file=sys.stderr)
        return 2

    def with_figures(saved: dict) -> dict:   # under the file's lock: reevaluations of other methods may join too
        commands = saved.setdefault("new_item_slots_commands", {})   # per row: the command of its slot figures
        for method, row in found.items():
            target = saved["rows"].setdefault(method, {k: row[k] for k in parts})
            target["new_item_slots"] = row["new_item_slots"]
            target["among_cold"] = row["among_cold"]
            commands[method] = command
            if "history_excluded" in row:
                target["history_excluded"] = row["history_excluded"]
                saved.setdefault("history_excluded_commands", {})[method] = command
        return saved

    reporting.update_json(path, with_figures)
    reporting.append_results(
        f"\n## Cold-start items ({args.dataset}): places reserved for cold items in the top 10\n\n"
        f"Date: {reporting.utc_minute()}. The generators saved by the run of "
        f"`{path.relative_to(ROOT)}` (no retraining; each plain row reproduces that file's figures), "
        f"scored again with the last m of their top 10 places given to the best cold items under the "
        f"same model (`recommend(..., new_items=cold, new_item_slots=m)`); the text kNN likewise, its "
        f"last m places given to the cold items most similar to the history"
        f"{'; rows marked history excluded never rank an item of the user history (the text kNN always excludes it)' if args.exclude_history else ''}"
        f". The second table ranks each cold target among the cold items alone (ties shared at random): a "
        f"generator by its exact SID log-probability (`sid_log_probs`, no beam) and by its first level alone "
        f"(log P(c1 | history) - log n(c1)), the text kNN by its similarity. Command: `{command}`\n\n"
        f"{table}\n")
    print(f"updated {path}")
    return 0


def among_cold_table(rows: dict) -> str:
    """The rows' :func:`among_cold` figures: each cold-target user's target ranked among the cold items alone."""
    lines = ["| method | cold items ranked by | " + " | ".join(f"hit@{k} among the cold items" for k in AMONG_COLD_KS)
             + " |", "|" + "---|" * (2 + len(AMONG_COLD_KS))]
    for method, row in rows.items():
        for score, hits in row.get("among_cold", {}).items():
            lines.append(f"| {method} | {score.replace('_', ' ')} | "
                         + " | ".join(f"{hits[f'hit@{k}']:.4f}" for k in AMONG_COLD_KS) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def format_table(rows: dict) -> str:
    lines = ["| method | cold R@10 | cold N@10 | warm R@10 | warm N@10 | warm R@10 without cold items | "
             "cold users | warm users |", "|" + "---|" * 8]
    for method, row in rows.items():
        without = row.get("warm_without_cold", {}).get("recall@10")
        lines.append(f"| {method} | {row['cold']['recall@10']:.4f} | {row['cold']['ndcg@10']:.4f} | "
                     f"{row['warm']['recall@10']:.4f} | {row['warm']['ndcg@10']:.4f} | "
                     f"{'-' if without is None else f'{without:.4f}'} | {row['cold']['users']} | "
                     f"{row['warm']['users']} |")
        for label, scored in [(method, row), (f"{method}, history excluded", row.get("history_excluded"))]:
            if scored is None:
                continue
            if scored is not row:
                lines.append(f"| {label} | {scored['cold']['recall@10']:.4f} | {scored['cold']['ndcg@10']:.4f} | "
                             f"{scored['warm']['recall@10']:.4f} | {scored['warm']['ndcg@10']:.4f} | - | "
                             f"{scored['cold']['users']} | {scored['warm']['users']} |")
            for m, part in scored.get("new_item_slots", {}).items():
                lines.append(f"| {label}, {m} of 10 places for cold items | {part['cold']['recall@10']:.4f} | "
                             f"{part['cold']['ndcg@10']:.4f} | {part['warm']['recall@10']:.4f} | "
                             f"{part['warm']['ndcg@10']:.4f} | - | {part['cold']['users']} | {part['warm']['users']} |")
    among = among_cold_table(rows)
    return "\n".join(lines) + (f"\n\n{among}" if among else "")


if __name__ == "__main__":
    sys.exit(main())
