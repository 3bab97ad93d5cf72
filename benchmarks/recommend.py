"""Benchmark: which semantic IDs make the best generative recommender? One command, one split.

Side by side, on the same leave-one-out split, with the same generator (architecture, prompt, optimiser,
seed) and the same full-ranking evaluation (trie-constrained beam search, 0 invalid items):
SimCIT SIDs vs RQ-VAE (TIGER-style) SIDs vs RQ-KMeans SIDs vs random SIDs, plus SASRec on the same split,
plus two non-learned rankings (``hf_simcit.baselines.popularity``): ``history`` (the user's history
items by count, ties most recent first, then popular items) and ``popularity`` (most frequent training targets).
The SIDs come from the library's own tokenizers: SimCIT is ``train_quantizer`` with the data set's
recipe (``recipes/<dataset>/quantizer.yaml``), the baselines are ``hf_simcit.quantizers`` ``RQVAEQuantizer``,
``RQKMeansQuantizer`` and ``RandomIDQuantizer`` fitted on the same item features; every tokenizer's codes go
through the same ``assign_semantic_ids(..., resolve="level")`` (TIGER's extra disambiguation level).
The budget is fair by construction: every learned row (each generator and SASRec) trains to its own
early-stopping point (validation NDCG@10 every epoch on the same fixed, seeded sample of validation users,
``--patience`` validations without improvement) under one common epoch cap (``--epochs``); the best
validation checkpoint is tested. Each row records its epochs, best epoch, training seconds and its learning
curve (validation NDCG@10 against epochs and seconds, plotted to ``benchmarks/results/curves-<data>.png``).
Reports Recall@{5,10}, NDCG@{5,10} on the test split, and for every row Recall@10 split by whether the test
target is already in the user's history (repeat) or not (new); appends the table to ``benchmarks/RESULTS.md``
and writes ``benchmarks/results/recommend-<data>[-gpu].json`` and ``training-positions-<data>.json``.

    nice -n 10 .venv/bin/python benchmarks/recommend.py --dataset ml-100k --threads 1
    .venv/bin/python benchmarks/recommend.py --dataset beauty --epochs 30 --threads 1
    .venv/bin/python benchmarks/recommend.py --dataset beauty --epochs 200 --eval-batch-size 512   # one GPU
    .venv/bin/python benchmarks/recommend.py --smoke          # a minute on CPU: the GPU script's code path
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reporting  # noqa: E402  (benchmarks/reporting.py: where results go)

ROOT = reporting.ROOT
DATA = ROOT.parent / "shared" / "data"
RESULTS_DIR = reporting.RESULTS_DIR
CACHE = Path(os.environ.get("HF_SIMCIT_REC_BENCH_CACHE", "/tmp/hf_simcit_bench_rec"))
# benchmarks/quantizers.py caches the same MiniLM text + 32-d SVD / geo features here (reused when item ids match)
QUANTIZER_CACHE = Path(os.environ.get("HF_SIMCIT_BENCH_CACHE", "/tmp/hf_simcit_bench"))
sys.path.insert(0, str(ROOT))

DATA_DIRS = {"beauty": DATA / "amazon2014_beauty", "foursquare-nyc": DATA / "foursquare_nyc",
             "scientific": DATA / "amazon2018_scientific", "yelp": DATA / "yelp", "ml-100k": None}
NAMES = {"simcit": "SimCIT SIDs", "rqvae": "RQ-VAE SIDs", "rqkmeans": "RQ-KMeans SIDs", "random": "random SIDs",
         "sasrec": "SASRec", "history": "history (count, recency; then popular)",
         "popularity": "popularity (training targets)",
         "knn": "last-item kNN (cosine of the tokenizers' features)"}
GENERATORS = ("simcit", "rqvae", "rqkmeans", "random")
# SASRec whose items are the sums of their SID codes' embeddings (SASRecConfig.sid_sizes), per tokenizer
SID_SASREC = {f"sasrec+{tokenizer}": tokenizer for tokenizer in GENERATORS}
NAMES |= {name: f"SASRec over {NAMES[tokenizer]}" for name, tokenizer in SID_SASREC.items()}
LEARNED = (*GENERATORS, "sasrec", *SID_SASREC)


# ------------------------------------------------------------------------------------------------ data
def load_data(name: str):
    from hf_simcit.data import load_prepared, prepare_dataset

    path = CACHE / "prepared" / name
    if (path / "stats.json").exists():
        return load_prepared(path)
    rec = prepare_dataset(name, data_dir=DATA_DIRS.get(name))
    rec.save_to_disk(path)
    return rec


CF_WINDOW = 3  # --cf sequential: items up to 3 steps apart co-occur


def load_features(name: str, rec, cf: str = "svd", lgmd_cache: Path = CACHE):
    """:class:`hf_simcit.quantizers.ItemFeatures`: MiniLM text, 32-d collaborative, geography for POIs.

    ``cf``: ``"svd"`` of the training user x item matrix, ``"sequential"`` (SPPMI-SVD of the training
    co-occurrence within :data:`CF_WINDOW` steps; seconds, so computed each run over the cached text), or an
    LGMD source of :data:`LGMD_SOURCES` (``"lgmd-sequential"``: the pipeline's lgmd stage on Beauty's recipe),
    fitted once into ``lgmd_cache`` (:func:`make_lgmd_embeddings`, 40-100 s).
    Reuses ``benchmarks/quantizers.py``'s cache when its item order matches; else computes them with the
    package's feature functions and caches them under ``CACHE/features``.
    """
    if cf in LGMD_SOURCES:
        make_lgmd_embeddings(name, rec, lgmd_cache, [cf])
        return with_cf(load_features(name, rec), name, cf, lgmd_cache)
    if cf != "svd":
        from hf_simcit.data import training_cooccurrence
        from hf_simcit.features.collaborative import collaborative_embeddings
        from hf_simcit.quantizers import ItemFeatures

        feats = load_features(name, rec)
        x, present = collaborative_embeddings(training_cooccurrence(rec, CF_WINDOW), dim=32, method=cf)
        return ItemFeatures(feats.features | {"cf": torch.as_tensor(x)},
                            feats.masks | {"cf": torch.as_tensor(present)}, feats.item_ids)
    from hf_simcit.quantizers import ItemFeatures

    item_ids = [str(i) for i in rec.items["item_id"]]

    def wrap(arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> ItemFeatures:
        return ItemFeatures({m: torch.as_tensor(np.asarray(x, dtype=np.float32)) for m, (x, _) in arrays.items()},
                            {m: torch.as_tensor(np.asarray(p, dtype=bool)) for m, (_, p) in arrays.items()},
                            item_ids)

    shared = QUANTIZER_CACHE / f"{name}.npz"
    if shared.exists():
        z = np.load(shared, allow_pickle=False)
        if "item_ids" in z.files and [str(i) for i in z["item_ids"]] == item_ids:
            print(f"features: reusing {shared} (benchmarks/quantizers.py cache, same item order)")
            return wrap({m: (z[m], z[f"{m}_mask"]) for m in ("text", "cf", "geo") if m in z.files})
    path = CACHE / "features" / f"{name}.npz"
    if path.exists():
        z = np.load(path)
        return wrap({str(m): (z[f"{m}_x"], z[f"{m}_p"]) for m in z["modalities"]})
    from hf_simcit.data import training_matrix
    from hf_simcit.features.collaborative import collaborative_embeddings
    from hf_simcit.features.text import encode_texts

    feats = {"text": encode_texts(rec.items["text"], batch_size=128, max_length=64),
             "cf": collaborative_embeddings(training_matrix(rec), dim=32, method="svd")}
    if "latitude" in rec.items.column_names:
        from hf_simcit.features.geo import geo_features

        feats["geo"] = geo_features(rec.items["latitude"], rec.items["longitude"])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, modalities=np.array(list(feats)), **{f"{m}_x": x for m, (x, _) in feats.items()},
             **{f"{m}_p": p for m, (_, p) in feats.items()})
    return wrap(feats)


def with_cf(feats, dataset: str, source: str | None, cache: Path):
    """``feats`` with ``cf`` replaced by a cached LGMD embedding (``<cache>/<dataset>-<source>.npz``), or None
    when it is not cached (:func:`make_lgmd_embeddings` makes it)."""
    from hf_simcit.quantizers import ItemFeatures

    if source is None:
        return feats
    path = cache / f"{dataset}-{source}.npz"
    if not path.exists():
        return None
    z = np.load(path)
    return ItemFeatures(feats.features | {"cf": torch.as_tensor(z["x"], dtype=torch.float32)},
                        feats.masks | {"cf": torch.as_tensor(z["p"], dtype=torch.bool)}, feats.item_ids)


def lgmd_item_embeddings(dataset: str, rec, matrix: str, attractive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(x, present)``: the LGMD cf embeddings the pipeline's lgmd stage fits (the data set's ``lgmd.yaml``, its
    ``matrix`` and ``attractive`` replaced), unit norm, with the mask of items that have a vector (zero rows
    elsewhere: the features convention, as for the SVD cf)."""
    from dataclasses import replace

    from hf_simcit.lgmd.stage import LGMDArguments
    from hf_simcit.utils.recipes import mapping_fields, read_recipe, recipe_dataclasses

    path = ROOT / "recipes" / dataset / "lgmd.yaml"
    (stage,) = recipe_dataclasses((LGMDArguments,), read_recipe(path, mappings=mapping_fields(LGMDArguments)),
                                  str(path))
    options = replace(stage, matrix=matrix, attractive=attractive, device="cpu",
                      progress=False, normalize=True, null_if_empty=True)
    transform = options.fit_transform(options.training_input(rec))
    column = transform({"item_index": list(range(rec.num_items))})[options.embedding_column]
    present = np.array([v is not None for v in column])
    x = np.array([v if p else [0.0] * options.rank for v, p in zip(column, present)], dtype=np.float32)
    return x, present


# the LGMD cfs (--cf, the ablation's rows): source name -> (LGMD matrix, attractive graphs)
LGMD_SOURCES = {"lgmd": ("interactions", False), "lgmd-attractive": ("interactions", True),
                "lgmd-sequential": ("sequential", False)}


def cf_description(cf: str) -> str:
    """What ``--cf`` ``cf`` is, for a run's settings line."""
    if cf in LGMD_SOURCES:
        matrix, attractive = LGMD_SOURCES[cf]
        return (f"LGMD item factors of the training {'user x item matrix' if matrix == 'interactions' else f'SPPMI of the items within {CF_WINDOW} steps'}"
                f"{' (attractive graphs)' if attractive else ''} (--cf {cf})")
    return ("32-d SVD of the training user x item matrix" if cf == "svd" else
            f"32-d SPPMI-SVD of the training co-occurrence within {CF_WINDOW} steps (--cf sequential)")


def make_lgmd_embeddings(dataset: str, rec, cache: Path, sources: list[str]) -> list[Path]:
    """``<cache>/<dataset>-<source>.npz`` for each of ``sources`` (:data:`LGMD_SOURCES`) not cached yet
    (:func:`lgmd_item_embeddings`): on the training user x item matrix the SVD cf comes from (``matrix:
    interactions``), plain and with attractive graphs, and on the SPPMI of the items that follow each other
    (``matrix: sequential``, Beauty's recipe). Each fit takes about 40-100 s; a cached one is kept."""
    written = []
    for source in sources:
        out = cache / f"{dataset}-{source}.npz"
        if out.exists():
            continue
        matrix, attractive = LGMD_SOURCES[source]
        start = time.time()
        x, present = lgmd_item_embeddings(dataset, rec, matrix, attractive)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, x=x, p=present)
        print(f"LGMD cf (matrix {matrix}, {'attractive graphs' if attractive else 'plain graphs'}, "
              f"recipes/{dataset}/lgmd.yaml): {x.shape[0]} x {x.shape[1]}, {int(present.sum())} items with a vector, "
              f"{time.time() - start:.0f} s -> {out}", flush=True)
        written.append(out)
    return written


def test_subset(split, n: int | None, seed: int):
    """The test split, or a fixed random subset of ``n`` users (seeded; the same for every method)."""
    if not n or n >= len(split):
        return split
    rows = np.sort(np.random.default_rng(seed).choice(len(split), size=n, replace=False))
    return split.select(rows.tolist())


# ------------------------------------------------------------------------------------------------ SIDs
def quantizer_recipe(dataset: str, args, workdir: Path):
    """SimCIT's training arguments: the data set's recipe, with this run's folders, seed and overrides."""
    from hf_simcit.training.quantizer import parse_quantizer_recipe

    overrides = ["--output_dir", str(workdir / "quantizer_simcit"),
                 "--checkpoint_dir", str(workdir / "quantizer_simcit_checkpoints"),
                 "--resume_from_checkpoint", "none", "--show_progress", "false", "--seed", str(args.seed)]
    if args.levels:
        overrides += ["--num_levels", str(args.levels)]
    if args.codebook_size:
        overrides += ["--codebook_size", str(args.codebook_size)]
    if args.simcit_steps:
        overrides += ["--max_steps", str(args.simcit_steps)]
    for setting in getattr(args, "simcit_set", None) or []:
        key, _, value = setting.partition("=")
        overrides += [f"--{key}", value]
    return parse_quantizer_recipe(str(ROOT / "recipes" / dataset / "quantizer.yaml"), overrides)


def build_sids(method: str, feats, modalities: list[str], levels: int, size: int, seed: int,
               simcit_args=None, rqvae_steps: int = 1500, resolve: str = "level",
               disambiguation_order: str = "index"):
    """Train one tokenizer of the package on ``feats[modalities]`` and give every item a unique SID.

    Every method goes through the same ``assign_semantic_ids(..., resolve="level")``: colliding items get an
    extra level numbering them (TIGER), of size ``max(2 x largest group, K)``, in item order unless
    ``disambiguation_order`` says otherwise (``"random"``, ``"distance"``); ``resolve="sinkhorn"`` instead
    moves colliding items to free last-level codes (no extra level).
    Returns ``(SemanticIDAssignment, quantizer)``.
    """
    from hf_simcit.quantizers import BASELINES

    sub = feats.select(modalities)
    if method == "simcit":
        from hf_simcit.training.quantizer import train_quantizer

        quantizer = train_quantizer(simcit_args, sub).model.eval()
    elif method in BASELINES:
        kwargs = {"steps": rqvae_steps} if method == "rqvae" else {}
        quantizer = BASELINES[method](num_levels=levels, codebook_size=size, seed=seed, **kwargs)
        quantizer.fit(sub.features, sub.masks)
    else:
        raise SystemExit(f"unknown method {method!r} (simcit, rqvae, rqkmeans, random, sasrec)")
    return assign_sids(quantizer, sub, seed, resolve, disambiguation_order), quantizer


def assign_sids(quantizer, feats, seed: int, resolve: str = "level", disambiguation_order: str = "index"):
    """Every item's unique SID from a trained ``quantizer`` over ``feats`` (its modalities only), as
    :func:`build_sids` gives them; a saved quantizer reloaded gives the same SIDs through here."""
    from hf_simcit.quantizers import assign_semantic_ids

    with torch.no_grad():
        return assign_semantic_ids(quantizer, feats.features, feats.masks, resolve=resolve,
                                   disambiguation_order=disambiguation_order, disambiguation_seed=seed)


# ------------------------------------------------------------------------------------------------ runs
def run_generator(name: str, assignment, rec, test_split, args, workdir: Path, fixed_epochs: int | None = None,
                  item_embeddings: torch.Tensor | None = None) -> dict:
    """Train one SID generator to its early-stopping point (best validation checkpoint) and test it; with
    ``fixed_epochs``, train exactly that many epochs without validation and test the last model. With
    ``item_embeddings`` ``(items, D)``, the generator also trains a dense item head on them (LIGER), and with
    ``--dense-head`` is also tested by the hybrid ranking its training chose (:func:`hybrid_row`)."""
    from hf_simcit.recommender.evaluation import evaluate_recommender
    from hf_simcit.recommender.modeling import RecommenderModelArguments, load_recommender
    from hf_simcit.tokenization_simcit import SimCITTokenizer
    from hf_simcit.training.recommender import (
        RecommenderDataArguments,
        RecommenderTrainingArguments,
        train_recommender,
    )

    table = SimCITTokenizer.from_codes(assignment.codes, rec.items["item_id"], assignment.codebook_sizes)
    # --dense-head: the hybrid ranking too, its weight chosen on validation (none in a refit: fixed_epochs);
    # cold_start.py's +dense rows use the head for new items only
    hybrid = item_embeddings is not None and getattr(args, "dense_head", False) and not fixed_epochs
    model_args = RecommenderModelArguments(
        model_name_or_path=args.model, tiny_hidden_size=args.hidden, tiny_num_layers=args.layers,
        tiny_num_heads=args.heads, tiny_intermediate_size=args.ffn or 2 * args.hidden, tiny_dropout=args.dropout,
        tiny_attention_dropout=getattr(args, "attention_dropout", 0.0),
        tiny_tie_word_embeddings=getattr(args, "tie_embeddings", False),
        dense_head_dim=0 if item_embeddings is None else int(item_embeddings.shape[1]))
    data_args = RecommenderDataArguments(eval_max_examples=0 if fixed_epochs else (args.eval_examples or None),
                                         eval_sample_seed=args.seed, objective=args.objective)
    train_args = RecommenderTrainingArguments(
        output_dir=str(workdir / name), checkpoint_dir=str(workdir / f"{name}_checkpoints"),
        seed=args.seed, learning_rate=args.lr, weight_decay=args.weight_decay,
        num_train_epochs=fixed_epochs or args.epochs,
        max_steps=args.max_steps, per_device_train_batch_size=args.batch_size, warmup_ratio=0.02,
        lr_scheduler_type=args.scheduler, eval_steps=args.eval_steps,
        dense_negatives=getattr(args, "dense_negatives", "batch"),
        hybrid_weights=",".join(f"{w:g}" for w in HYBRID_WEIGHTS) if hybrid else "",
        dense_loss_weight=getattr(args, "dense_loss_weight", 1.0),
        eval_epochs=0 if args.eval_steps or fixed_epochs else args.eval_epochs,
        early_stopping_patience=0 if fixed_epochs else args.patience,
        early_stopping_window=getattr(args, "patience_window", 1),
        save_steps=0, logging_steps=100, eval_num_beams=args.beams, eval_batch_size=args.eval_batch_size,
        resume_from_checkpoint="no")
    result = train_recommender(model_args, data_args, train_args, splits=rec.splits, sid_source=table,
                               item_embeddings=item_embeddings)
    best = load_recommender(train_args.output_dir, device=result["recommender"].model.device)
    start = time.time()
    test = evaluate_recommender(best.model, best.tokenizer, best.item_token_ids, test_split,
                                num_beams=args.beams, ks=(5, 10), batch_size=args.eval_batch_size,
                                desc=f"test {name}", return_rankings=True)
    rankings = test.pop("rankings")
    # getattr: cold_start.py and simcit_ablation.py call this with argument namespaces of their own
    excluded = evaluate_recommender(best.model, best.tokenizer, best.item_token_ids, test_split,
                                    num_beams=args.beams, ks=(5, 10), batch_size=args.eval_batch_size,
                                    desc=f"test {name}, history excluded",
                                    exclude_history=True) if getattr(args, "exclude_history", False) else None
    curve = [{"epoch": e["epoch"], "seconds": e["train_seconds"], "ndcg@10": e["ndcg@10"]}
             for e in result["log"] if "ndcg@10" in e]
    hybrid = hybrid_row(best, result["hybrid"], test_split, args) | {
        "head": {"negatives": train_args.dense_negatives, "loss_weight": train_args.dense_loss_weight}} \
        if hybrid else None
    return {"test": test, "rankings": rankings, "validation": result["best_metrics"], "hybrid": hybrid,
            "train_s": result["train_seconds"], "eval_s": time.time() - start, "steps": result["final_step"],
            "best_step": result["best_step"], "epochs": result["epochs"], "best_epoch": result["best_epoch"],
            "curve": curve, "positions": result["token_positions_per_epoch"], "test_history_excluded": excluded}


HYBRID_WEIGHTS = (0.0, 0.5, 1.0, 2.0)   # the dense head's share in the hybrid ranking, chosen on validation


def hybrid_row(best, chosen: dict, test_split, args) -> dict:
    """A generator with a dense item head, tested by LIGER's hybrid (:class:`HybridRanking`) at the weight its
    training chose among :data:`HYBRID_WEIGHTS` on the run's validation sample (the early stopping's;
    ``training.hybrid_weights``, ``chosen`` = the training result's ``hybrid``), i.e. the folder's own ranking."""
    from hf_simcit.recommender.dense import hybrid_ranking_of
    from hf_simcit.recommender.evaluation import evaluate_recommender

    hybrid = hybrid_ranking_of(best)

    def evaluate(desc: str, exclude_history: bool = False) -> dict:
        return evaluate_recommender(best.model, best.tokenizer, best.item_token_ids, test_split, num_beams=args.beams,
                                    ks=(5, 10), batch_size=args.eval_batch_size, desc=desc,
                                    exclude_history=exclude_history, hybrid=hybrid)

    return {"weight": best.hybrid_weight, "validation_ndcg@10": chosen["validation_ndcg@10"],
            "test": evaluate("test, hybrid"),
            "test_history_excluded": evaluate("test, hybrid, history excluded", True)
            if getattr(args, "exclude_history", False) else None}


def run_sasrec(rec, test_split, n: int, args, device: str, fixed_epochs: int | None = None,
               assignment=None, keep_model: bool = False) -> dict:
    """SASRec (the package's defaults: CE at every position) to its own early-stopping point under the
    common epoch cap, on the same fixed validation sample; the best epoch is tested. With ``fixed_epochs``:
    exactly that many epochs without validation, the last model tested. With a SID ``assignment``: SASRec over
    those SIDs (items = sums of their codes' embeddings), otherwise the same. ``keep_model``: the trained model
    under ``"model"`` (not JSON)."""
    from hf_simcit.baselines.sasrec import SASRecConfig, evaluate_sasrec, rank_items, train_sasrec
    from hf_simcit.metrics.ranking import ranking_metrics

    epochs = fixed_epochs or int(np.ceil(args.sasrec_epochs or args.epochs))
    config = SASRecConfig(num_items=n, num_epochs=epochs,
                          patience=args.sasrec_patience or args.patience,
                          patience_window=getattr(args, "patience_window", 1), seed=args.seed,
                          eval_max_examples=0 if fixed_epochs else _sasrec_validation_users(args),
                          sid_sizes=None if assignment is None else [int(k) for k in assignment.codebook_sizes],
                          **({"learning_rate": args.sasrec_lr} if args.sasrec_lr else {}),
                          **sasrec_overrides(getattr(args, "sasrec_set", None)))
    codes = None if assignment is None else torch.as_tensor(np.asarray(assignment.codes), dtype=torch.long)
    # the whole split: the training windows are rebuilt from train + validation + test rows
    model, res = train_sasrec(rec.splits, config, device=device, verbose=False, item_codes=codes,
                              evaluate_splits=())   # the test is scored below, once
    start = time.time()
    rankings = rank_items(model, test_split["history"], 10, device=device)   # the best model's test lists
    # the metrics of those very lists (evaluate_sasrec would rank every test user once more)
    res["test"] = ranking_metrics(rankings, torch.as_tensor(test_split["target"]), (5, 10)) | {
        "num_examples": len(test_split)}
    excluded = evaluate_sasrec(model, test_split, (5, 10), device=device,
                               exclude_history=True) if getattr(args, "exclude_history", False) else None
    history = res.get("history", [])
    curve = [{"epoch": h["epoch"] + 1, "seconds": h.get("seconds"), "ndcg@10": h["ndcg@10"]} for h in history]
    best = max(history, key=lambda h: h["ndcg@10"]) if history else None
    # the validation of the kept epoch on the validation sample, as the generators report theirs
    validation = {k: best[k] for k in ("recall@10", "ndcg@10")} if best else None
    return {"test": {**res["test"], "invalid_items": 0}, "rankings": rankings, "validation": validation,
            "train_s": res.get("train_s", 0.0), "eval_s": time.time() - start, "steps": res["steps"],
            "best_step": best["step"] if best else None, "epochs": res["epochs"],
            "best_epoch": best["epoch"] + 1 if best else None, "curve": curve,       # epochs done, as for generators
            "config": {k: v for k, v in vars(config).items()}, "test_history_excluded": excluded,
            **({"model": model} if keep_model else {})}


def run_baseline(method: str, rec, test_split, validation_split=None) -> dict:
    """A non-learned ranking (``history`` or ``popularity``, counts from the training split) on the test users,
    and on ``validation_split`` (the learned rows' validation sample) when given."""
    from hf_simcit.baselines.popularity import evaluate_baseline, item_popularity

    t0 = time.time()
    popularity = item_popularity(rec.splits["train"]["target"], len(rec.items))
    fit_s = time.time() - t0
    t0 = time.time()
    test = evaluate_baseline(method, test_split, popularity, ks=(5, 10), return_rankings=True)
    rankings = test.pop("rankings")
    validation = None if validation_split is None else evaluate_baseline(method, validation_split, popularity,
                                                                         ks=(5, 10))
    return {"test": test, "rankings": rankings, "validation": validation, "train_s": fit_s,
            "eval_s": time.time() - t0, "steps": "-", "best_step": None, "epochs": None, "best_epoch": None}


def run_knn(ctx, test_split, validation_split=None) -> dict:
    """Items ranked by the cosine of their features (the baseline tokenizers' input: ``base_modalities``,
    concatenated as the quantizers see them) to the user's last item, history excluded: what the SIDs' own
    input says about the next item, with no model trained. Also on ``validation_split`` when given."""
    from hf_simcit.baselines.knn import content_knn_rankings
    from hf_simcit.metrics.ranking import ranking_metrics
    from hf_simcit.quantizers.base import concat_modalities

    t0 = time.time()
    features = concat_modalities(ctx.feats.features, ctx.feats.masks, ctx.base_modalities)

    def scored(split) -> tuple[dict, torch.Tensor]:
        rankings = content_knn_rankings(features, split["history"], 10, last=1)
        return ranking_metrics(rankings, torch.as_tensor(split["target"]), (5, 10)) | {
            "invalid_items": 0, "num_examples": len(split)}, rankings

    test, rankings = scored(test_split)
    validation = None if validation_split is None else scored(validation_split)[0]
    return {"test": test, "rankings": rankings, "validation": validation, "train_s": 0.0,
            "eval_s": time.time() - t0, "steps": "-", "best_step": None, "epochs": None, "best_epoch": None}


def in_history(split) -> np.ndarray:
    """Per test user: is the target already in the user's history (a repeat)?"""
    return np.array([int(t) in {int(i) for i in h} for h, t in zip(split["history"], split["target"])], dtype=bool)


def history_split(rankings: torch.Tensor, split, recall: float | None = None, k: int = 10) -> dict:
    """Recall@k over the test users whose target is in their history (repeat) and over the others (new).

    ``rankings``: ``(n, >= k)`` ranked item indices in ``split``'s row order. With ``recall`` (the row's
    reported Recall@k) the lists must reproduce it: the split is of the same lists the metric code scored.
    """
    targets = np.asarray(split["target"])
    ranked = np.asarray(rankings)[:, :k]
    if ranked.shape[0] != len(targets):
        raise RuntimeError(f"{ranked.shape[0]} ranked lists for {len(targets)} test users")
    hits = (ranked == targets[:, None]).any(axis=1)
    if recall is not None and abs(hits.mean() - recall) > 1e-6:
        raise RuntimeError(f"rankings give Recall@{k} {hits.mean():.6f}, the metric code {recall:.6f}")
    repeat = in_history(split)
    return {"repeat": float(hits[repeat].mean()) if repeat.any() else float("nan"),
            "new": float(hits[~repeat].mean()) if (~repeat).any() else float("nan"),
            "repeat_users": int(repeat.sum()), "new_users": int((~repeat).sum())}


def _share(value: float | None) -> str:
    """A recall for the table; ``-`` where no test user falls in the group (NaN) or it was not measured."""
    return "-" if value is None or np.isnan(value) else f"{value:.4f}"


def _validation_ratio(row: dict) -> str:
    """The row's validation N@10 (learned rows: the validation sample at the kept epoch) and test N@10 / it."""
    value = (row.get("validation") or {}).get("ndcg@10")
    return "-" if not value else f"{value:.4f} ({row['test']['ndcg@10'] / value:.2f}x)"


def format_table(rows: dict, sid_stats: dict) -> str:
    excluded = any(row.get("test_history_excluded") for row in rows.values())
    header = ("| method | R@5 | N@5 | R@10 | N@10 | R@10 repeat | R@10 new | invalid | test users | raw collision | "
              "SID levels (sizes) | epochs (best) | train s | test eval s | validation N@10 (test / it) |"
              + (" R@10, history excluded | N@10, history excluded |" if excluded else ""))
    lines = [header, "|" + "---|" * (17 if excluded else 15)]
    for method, row in rows.items():
        t, s = row["test"], sid_stats.get(method, {})
        sizes = f"{s['levels']} ({'/'.join(map(str, s['sizes']))})" if s else "-"
        epochs = "-" if row.get("epochs") is None else f"{row['epochs']:.0f}"
        best = f" ({row['best_epoch']:.0f})" if row.get("best_epoch") is not None else ""
        split = row.get("split", {})
        lines.append(
            f"| {NAMES.get(method, method)} | {t['recall@5']:.4f} | {t['ndcg@5']:.4f} | {t['recall@10']:.4f} | "
            f"{t['ndcg@10']:.4f} | {_share(split.get('repeat'))} | {_share(split.get('new'))} | "
            f"{t['invalid_items']} | {t.get('num_examples', '-')} | "
            f"{format(s['collision'], '.2%') if s else '-'} | {sizes} | {epochs}{best} | "
            f"{row['train_s']:.0f} | {row['eval_s']:.0f} | {_validation_ratio(row)} |")
        if excluded:
            x = row.get("test_history_excluded")
            lines[-1] += f" {x['recall@10']:.4f} | {x['ndcg@10']:.4f} |" if x else " - | - |"
    return "\n".join(lines)


SASREC_SETTABLE = ("hidden_size", "num_layers", "num_heads", "inner_size", "dropout", "weight_decay", "batch_size",
                   "negatives", "objective", "layer_norm", "initializer_range", "eval_exclude_history")


def sasrec_overrides(settings: list[str] | None) -> dict:
    """``--sasrec-set KEY=VALUE`` as ``SASRecConfig`` keyword arguments, each value of its field's type."""
    from hf_simcit.baselines.sasrec import SASRecConfig

    defaults = {f.name: f.default for f in dataclasses.fields(SASRecConfig)}
    out = {}
    for setting in settings or []:
        key, sep, value = setting.partition("=")
        if not sep or key not in SASREC_SETTABLE:
            raise SystemExit(f"--sasrec-set {setting!r}: expected KEY=VALUE with KEY one of {', '.join(SASREC_SETTABLE)}")
        kind = type(defaults[key])
        try:
            out[key] = {"true": True, "false": False}[value.lower()] if kind is bool else kind(value)
        except (KeyError, ValueError):
            raise SystemExit(f"--sasrec-set {setting!r}: {key} takes a {kind.__name__}") from None
    return out


def _sasrec_validation_users(args) -> int | None:
    """SASRec's validation sample size (None: every validation user). Ranking all users is one matrix product
    for an item-id model, so ``--sasrec-eval-examples 0`` buys a less noisy stopping point at no real cost."""
    n = args.eval_examples if getattr(args, "sasrec_eval_examples", None) is None else args.sasrec_eval_examples
    return n or None


def _sasrec_summary(row: dict | None) -> str:
    if not row:
        return "not run"
    c = row.get("config", {})
    loss = f"sampled softmax over {n} negatives" if (n := c.get("negatives")) else "full softmax"
    return (f"{c.get('num_layers')} x {c.get('hidden_size')} ({c.get('num_heads')} heads, FFN {c.get('inner_size')}), "
            f"objective {c.get('objective', '?')}, {loss}, dropout "
            f"{c.get('dropout')}, lr {c.get('learning_rate')}, batch {c.get('batch_size')}, up to "
            f"{c.get('num_epochs')} epochs, patience {c.get('patience')}"
            f"{f' (of the value or its mean over {w})' if (w := c.get('patience_window') or 1) > 1 else ''}, validation on "
            f"{c.get('eval_max_examples') or 'all'} validation users"
            f"{' ranked without their history items' if c.get('eval_exclude_history') else ''}"
            f"{f', weight decay {wd:g}' if (wd := c.get('weight_decay')) else ''}")


def write_results(folder: Path, name: str, rows: dict, command: str, device: str, wall: float) -> Path:
    """``<folder>/<name>.json``: ``{date, command, device, wall_s, rows: {method: {test, invalid_items, epochs,
    best_epoch, train_s, curve}}}`` (the machine-readable twin of the RESULTS.md table)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {"date": reporting.utc_iso(), "command": command,
           "device": torch.cuda.get_device_name() if device == "cuda" else f"{os.cpu_count()} CPU cores",
           "wall_s": round(wall, 1), "rows": {}}
    for method, row in rows.items():
        t = row["test"]
        out["rows"][method] = {
            "test": {k: t[k] for k in ("recall@5", "recall@10", "ndcg@5", "ndcg@10")},
            "invalid_items": int(t["invalid_items"]), "epochs": row.get("epochs"),
            "best_epoch": row.get("best_epoch"), "train_s": round(float(row["train_s"]), 1),
            "curve": row.get("curve"), "repeat_new": row.get("split")}
        if (row.get("validation") or {}).get("ndcg@10") is not None:   # the validation sample (best epoch)
            out["rows"][method]["validation"] = {k: row["validation"][k] for k in ("recall@10", "ndcg@10")}
        if row.get("test_history_excluded"):   # RecBole's protocol: the user's own items never ranked
            out["rows"][method]["test_history_excluded"] = {
                k: row["test_history_excluded"][k] for k in ("recall@5", "recall@10", "ndcg@5", "ndcg@10")}
        if row.get("hybrid"):   # the dense head's hybrid ranking (--dense-head), its weight chosen on validation
            hybrid = row["hybrid"]
            out["rows"][method]["hybrid"] = {"weight": hybrid["weight"], "head": hybrid["head"],
                                             "validation_ndcg@10": hybrid["validation_ndcg@10"], **{
                part: {k: hybrid[part][k] for k in ("recall@5", "recall@10", "ndcg@5", "ndcg@10", "invalid_items")}
                for part in ("test", "test_history_excluded") if hybrid.get(part)}}
    return reporting.write_json(folder / f"{name}.json", out)


def hybrid_table(rows: dict) -> str:
    """The generators' hybrid rankings (``--dense-head``) beside their beam's own, as markdown ('' without)."""
    hybrids = {m: r["hybrid"] for m, r in rows.items() if r.get("hybrid")}
    if not hybrids:
        return ""
    lines = ["", "", "Hybrid ranking (dense item head, its weight w chosen on the validation sample):", "",
             "| method | validation N@10 per w | w | test R@10 / N@10, beam | test R@10 / N@10, hybrid | "
             "history excluded: beam | history excluded: hybrid |", "|" + "---|" * 7]
    for method, hybrid in hybrids.items():
        row, excluded = rows[method], rows[method].get("test_history_excluded") or {}
        lines.append(f"| {NAMES.get(method, method)} | "
                     f"{', '.join(f'{w}: {v:.4f}' for w, v in hybrid['validation_ndcg@10'].items())} | "
                     f"{hybrid['weight']:g} | {pair(row['test'])} | {pair(hybrid['test'])} | {pair(excluded)} | "
                     f"{pair(hybrid.get('test_history_excluded'))} |")
    return "\n".join(lines)


def pair(metrics: dict | None) -> str:
    """``R@10 / N@10`` of a test result, ``-`` without one."""
    return f"{metrics['recall@10']:.4f} / {metrics['ndcg@10']:.4f}" if metrics else "-"


def assignment_levels(sid_stats: dict) -> int:
    """SID length in tokens (levels incl. disambiguation) of the run's generators (4 when none ran)."""
    return next((s["levels"] for s in sid_stats.values()), 4)


def training_positions(rec, levels: int, objective: str) -> int:
    """Token positions per training epoch of the plain template: ``[bos]`` + ``levels`` tokens per item."""
    if objective == "prefix":
        return sum(1 + (len(h) + 1) * levels for h in rec.splits["train"]["history"] if h)
    from hf_simcit.data import training_sequences_from_splits, training_windows

    sequences = training_sequences_from_splits(*(rec.splits[s][:] for s in ("train", "validation", "test")))
    return sum(1 + len(w.items) * levels for w in training_windows(sequences, max_history=20))


def _source_rows(arg: str) -> tuple[str, list[str] | None]:
    """``FILE`` or ``FILE:method,method`` (only those rows of the file) -> ``(path, methods or None)``."""
    path, _, only = arg.rpartition(":")
    methods = [m for m in only.split(",") if m]
    if not path or not methods or any(m not in NAMES for m in methods):
        return arg, None
    return path, methods


def _load_source(arg: str) -> tuple[dict, list[str] | None, dict]:
    """``FILE[:method,...]`` -> ``(results file, the rows named or None, the options it was run with)``; a
    refit's options are those of the run it refit."""
    path, methods = _source_rows(arg)
    source = json.loads(Path(path).read_text())
    command = source.get("refit_of", {}).get("command") or source["command"]
    return source, methods, vars(recorded_options(command))


def _seed_sources(arg: str) -> list[tuple[dict, list[str] | None, dict]]:
    """:func:`_load_source` of ``FILE[:method,...]``; ``ABLATION_FILE#ROW`` gives that SimCIT ablation row's
    runs, one per seed (``benchmarks/simcit_ablation.py --downstream ROW --seed S``), as ``simcit`` rows."""
    if "#" in arg:
        import simcit_ablation  # imports this module: only when an ablation row is asked for

        path, _, name = arg.partition("#")
        return simcit_ablation.seed_sources(path, name)
    return [_load_source(arg)]


def merge_results(paths: list[str], name: str, wall_s: float | None = None) -> int:
    """One results file (and one learning-curve plot) from runs that trained different rows on the same
    split with the same settings, e.g. two processes on two cores; every source is named in the command.
    ``FILE:method,method`` takes only those rows of a file. ``wall_s`` is the longest source's: a whole file's
    wall time, or the training seconds of the rows taken from a file (its other rows' time is not theirs).
    Rows whose figures depend on an option (:func:`row_protocol`) must agree on it, or the merge is refused.
    ``wall_s`` (``--merge-wall-s``): the wall time measured outside the sources, e.g. when a run stopped after
    its generators and a second process trained the rest (the sources' own walls do not add up to it)."""
    from hf_simcit.report import plot_learning_curves

    sources, rows, walls, protocols = [], {}, [], {}
    for arg in paths:
        source, methods, option = _load_source(arg)
        sources.append(source)
        chosen = {m: r for m, r in source["rows"].items() if methods is None or m in methods}
        clash = set(rows) & set(chosen)
        if clash:
            raise SystemExit(f"rows {sorted(clash)} appear in more than one of {paths}")
        rows |= chosen
        walls.append(source["wall_s"] if methods is None else sum(float(r.get("train_s") or 0.0)
                                                                        for r in chosen.values()))
        protocols |= {m: row_protocol(m, option, r) for m, r in chosen.items()}
    for (a, pa), (b, pb) in itertools.combinations(protocols.items(), 2):
        differ = _differing(pa, pb)
        if differ:
            raise SystemExit(f"rows {a} and {b} were run with different {', '.join(differ)} "
                             f"({', '.join(f'{pa[k]} / {pb[k]}' for k in differ)}); a merge needs one protocol")
    out = {"date": max(s["date"] for s in sources),
           "command": " + ".join(s["command"] for s in sources) + f" (merged: --merge {' '.join(paths)})",
           "device": sources[0]["device"], "wall_s": round(max(walls) if wall_s is None else wall_s, 1),
           "rows": rows}
    path = reporting.write_json(RESULTS_DIR / f"{name}.json", out)
    plot_learning_curves({NAMES.get(m, m): r["curve"] for m, r in rows.items() if r.get("curve")},
                         RESULTS_DIR / f"curves-{name}.png", title=f"{name}: validation NDCG@10")
    print(f"wrote {path} with rows {list(rows)}")
    return 0


# options that decide where a run writes or how it is scheduled, not what it measures
RUN_ONLY_OPTIONS = ("seed", "results_name", "methods", "jobs", "threads", "no_results", "merge", "merge_wall_s",
                    "seeds_summary")
SEED_METRICS = ("recall@10", "ndcg@10")
# every row's figures depend on the split: the data, the seed, the test users, the history exclusion
SPLIT_OPTIONS = ("dataset", "seed", "test_examples", "exclude_history")


def row_protocol(method: str, option: dict, row: dict) -> dict:
    """The recorded options ``method``'s figures depend on: the split; for the tokenizer rows every other
    option but SASRec's and the other tokenizers' own; for SASRec its effective epoch cap, patience, window, learning rate and validation
    users (its own options, else the common ones); for the non-learned rows their validation sample, and the
    kNN its features' cf. A learned row that trained to its cap counts for any window (:func:`_window_if_capped`).
    """
    protocol = {k: option[k] for k in SPLIT_OPTIONS}
    if method in GENERATORS:   # a tokenizer's own options (--simcit-*, --rqvae-*) only for its row
        others = tuple(f"{m}_" for m in ("sasrec", "simcit", "rqvae") if m != method)
        protocol |= {k: v for k, v in option.items() if k not in RUN_ONLY_OPTIONS and not k.startswith(others)}
    elif method in LEARNED:   # SASRec, over item ids or over SIDs
        protocol |= {"epochs": option["sasrec_epochs"] or option["epochs"],
                     "patience": option["sasrec_patience"] or option["patience"],
                     "patience_window": option["patience_window"], "sasrec_lr": option["sasrec_lr"],
                     "sasrec_validation_users": _sasrec_validation_users(argparse.Namespace(**option)),
                     "sasrec_set": sorted(option.get("sasrec_set") or [])}
        if method in SID_SASREC:
            protocol |= {k: option[k] for k in ("cf", "baseline_modalities", "levels", "codebook_size")}
    else:
        protocol["eval_examples"] = option["eval_examples"]
        if method == "knn":
            protocol |= {k: option[k] for k in ("cf", "baseline_modalities")}
    if method in LEARNED:
        protocol |= _window_if_capped(method, row, option)
    return protocol


def _differing(a: dict, b: dict) -> list[str]:
    """The options two rows both depend on and disagree about (a run trained to its cap fits any window)."""
    return sorted(k for k in set(a) & set(b) if a[k] != b[k] and ANY_WINDOW not in (a[k], b[k]))


def recorded_options(command: str) -> argparse.Namespace:
    """The parsed options of a recorded ``python benchmarks/recommend.py ...`` command (defaults filled in)."""
    import shlex

    argv = shlex.split(command)
    script = next(i for i, a in enumerate(argv) if a.endswith("recommend.py"))
    return build_parser().parse_args(argv[script + 1:])


def splits_with_validation_in_training(rec) -> object:
    """The splits of a final fit that also trains on every user's validation interaction (the usual refit on
    training + validation data once the validation has chosen the settings and the number of epochs).

    Each user's sequence is split leave-one-out again with its test item repeated at the end: the training
    rows gain the validation target, the "validation" rows become the test examples and the "test" rows a
    copy; both keep the test target held out (never a training target). Nothing may be selected on them.
    """
    from datasets import Dataset, DatasetDict

    from hf_simcit.data.dataset import SPLIT_FEATURES
    from hf_simcit.data.splits import leave_one_out
    from hf_simcit.errors import SimCITInputError

    max_history = rec.stats.get("config", {}).get("max_history", 20)
    again = leave_one_out([list(s) for s in rec.sequences["items"]], max_history=max_history)
    for name in ("train", "validation", "test"):   # the prepared splits are these sequences' own
        if list(getattr(again, name)["target"]) != list(rec.splits[name]["target"]):
            raise SimCITInputError(f"the prepared {name} split is not the leave-one-out split of its sequences")
    split = leave_one_out([list(s) + [s[-1]] for s in rec.sequences["items"]], max_history=max_history)
    return DatasetDict({name: Dataset.from_dict(getattr(split, name), features=SPLIT_FEATURES)
                        for name in ("train", "validation", "test")})


def refit_with_validation(path: str, args) -> int:
    """``--refit-with-validation JSON``: each learned row of an earlier run, trained again from scratch with the
    same settings on the training rows plus every user's validation interaction, for the number of epochs at
    which that run's validation peaked (nothing is selected on the refit), then tested on the same test users.
    Why: the test prompt ends with the validation item, which the early-stopped model never saw in that user's
    sequence; a deployed model would be trained on all the data it has."""
    from types import SimpleNamespace

    from hf_simcit.errors import SimCITInputError
    from hf_simcit.utils.serialization import read_json

    saved = read_json(Path(path))
    if saved is None:
        raise SimCITInputError(f"{path}: no such results file")
    options = with_smoke_settings(recorded_options(saved["command"]))
    options.threads, options.exclude_history = args.threads, True
    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    methods = [m for m in saved["rows"] if (m in GENERATORS or m == "sasrec") and m in wanted]
    missing = [m for m in methods if not saved["rows"][m].get("best_epoch")]
    if missing:
        raise SimCITInputError(f"{path}: row {missing[0]!r} records no best_epoch to refit for")
    started = time.time()
    ctx = run_context(options)
    refit = SimpleNamespace(items=ctx.rec.items, splits=splits_with_validation_in_training(ctx.rec))
    rows, lines = {}, []
    for method in methods:
        before = saved["rows"][method]
        epochs = int(np.ceil(before["best_epoch"]))
        if method == "sasrec":
            row = run_sasrec(refit, ctx.test_split, ctx.n, options, ctx.device, fixed_epochs=epochs)
        else:
            assignment, _ = build_sids(method, ctx.feats, ctx.modalities if method == "simcit" else
                                       ctx.base_modalities, ctx.levels, ctx.size, options.seed, ctx.simcit_args,
                                       options.rqvae_steps, options.resolve, options.disambiguation_order)
            row = run_generator(method, assignment, refit, ctx.test_split, options, ctx.workdir / "refit",
                                fixed_epochs=epochs)
        keys = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")
        rows[method] = {"epochs": epochs, "train_s": round(float(row["train_s"]), 1),
                        "test": {k: float(row["test"][k]) for k in keys},
                        "test_history_excluded": {k: float(row["test_history_excluded"][k]) for k in keys},
                        "early_stopped": {k: before.get(k) for k in ("test", "test_history_excluded", "best_epoch")}}
        print(f"[{method}] refit {json.dumps(rows[method])}", flush=True)
        old, new = before["test"], rows[method]["test"]
        old_x, new_x = before.get("test_history_excluded") or {}, rows[method]["test_history_excluded"]
        lines.append(f"| {NAMES[method]} | {epochs} | {old['recall@10']:.4f} / {old['ndcg@10']:.4f} | "
                     f"{new['recall@10']:.4f} / {new['ndcg@10']:.4f} | "
                     + (f"{new['ndcg@10'] / old['ndcg@10']:.2f}x | " if old["ndcg@10"] else "- | ")   # 0 hits
                     + (f"{old_x['recall@10']:.4f} / {old_x['ndcg@10']:.4f} | " if old_x else "- | ")
                     + f"{new_x['recall@10']:.4f} / {new_x['ndcg@10']:.4f} | {rows[method]['train_s']:.0f} |")
    table = "\n".join(["| row | epochs (the run's best) | early-stopped test R@10 / N@10 | refit test R@10 / N@10 | "
                       "N@10 ratio | early-stopped, history excluded | refit, history excluded | refit train s |",
                       "|" + "---|" * 8, *lines])
    print(table)
    command = reporting.command_line("python benchmarks/recommend.py")
    wall = time.time() - started
    if args.no_results:
        return 0
    name = args.results_name or Path(path).stem + "-refit"
    out = {"date": reporting.utc_iso(), "command": command,
           "refit_of": {"file": Path(path).name, "command": saved["command"]}, "wall_s": round(wall, 1),
           "machine": f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end",
           "rows": rows}
    written = reporting.write_json(RESULTS_DIR / f"{name}.json", out)
    reporting.append_results(
                f"\n## Refit on training + validation interactions ({options.dataset}, {Path(path).name})\n\n"
                f"Date: {reporting.utc_minute()}. Machine: {out['machine']}; wall "
                f"time {wall / 60:.1f} min. Command: `{command}`\n\nEach learned row of `{Path(path).name}` "
                f"(`{saved['command']}`), trained again from scratch with the same settings and seed on the "
                f"training rows plus every user's validation interaction, for the epochs at which that run's "
                f"validation peaked (rounded up; nothing selected on the refit), then tested on the same "
                f"{len(ctx.test_split)} test users (plain, and with the history excluded).\n\n{table}\n")
    print(f"wrote {written}")
    return 0


def _mean_sd(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": [float(v) for v in values]}


ANY_WINDOW = "any (trained to the epoch cap)"


def _window_if_capped(method: str, row: dict, option: dict) -> dict:
    """A run that trained to its epoch cap never stopped early. A larger ``--patience-window`` only ever delays
    stopping (progress is the value *or* its trailing mean) and the kept model is the best single validation
    either way, so that run is also the run of any window: its window is not compared across seeds."""
    cap = (option.get("sasrec_epochs") or option["epochs"]) if method.startswith("sasrec") else option["epochs"]
    return {"patience_window": ANY_WINDOW} if (row.get("epochs") or 0) >= cap else {}


def seeds_summary(paths: list[str], name: str) -> int:
    """``results/<name>.json``: ``{date, command, seeds, rows: {method: {recall@10, ndcg@10: {mean, sd,
    values}, history_excluded: {...}, best_epoch, train_s}}}`` over runs that differ only in their seed (sample
    sd, ddof 1), for the generator rows every seed trained; a table in RESULTS.md. Files of
    ``--refit-with-validation`` summarise likewise, their settings being those of the runs they refit.

    A seed's rows may come from several files (rows trained in separate processes, or one row trained again):
    ``FILE:method,method`` takes only those rows of a file, and a row that two files of one seed hold is
    refused. ``ABLATION_FILE#ROW`` adds the SimCIT row of every seed that ablation row trained a generator
    for. Each row's settings are compared across the seeds, from the file that holds it."""
    sources, options, chosen = [], [], []
    for arg in paths:
        for source, methods, option in _seed_sources(arg):
            sources.append(source)
            options.append(option)
            chosen.append(methods)
    by_seed: dict[int, dict] = {}
    for source, option, methods in zip(sources, options, chosen):
        seed = by_seed.setdefault(option["seed"], {"rows": {}, "settings": {}})
        rows = {m: r for m, r in source["rows"].items()   # the learned rows (the others are not summarised)
                if (methods is None or m in methods) and m in NAMES and r.get("epochs") is not None}
        clash = sorted(set(seed["rows"]) & set(rows))
        if clash:
            raise SystemExit(f"seed {option['seed']}: rows {clash} are in more than one of {paths}; "
                             "a summary needs one run per seed and row (take rows with FILE:method,...)")
        seed["rows"] |= rows
        seed["settings"] |= {m: {k: v for k, v in row_protocol(m, option, rows[m]).items() if k != "seed"}
                             for m in rows}
    seeds = list(by_seed)
    runs_by_seed = list(by_seed.values())
    methods = [m for m in runs_by_seed[0]["rows"] if all(m in s["rows"] for s in runs_by_seed)]   # every seed's
    if not methods:
        raise SystemExit(f"the runs {paths} have no learned row in common")
    for method in methods:
        settings = [s["settings"][method] for s in runs_by_seed]
        differ = sorted({k for st in settings[1:] for k in _differing(settings[0], st)})
        if differ:
            raise SystemExit(f"the runs {paths} differ in {differ} for row {method}, not only in the seed")
    rows = {}
    for method in methods:
        runs = [s["rows"][method] for s in runs_by_seed]
        row = {k: _mean_sd([r["test"][k] for r in runs]) for k in SEED_METRICS}
        if all(r.get("test_history_excluded") for r in runs):
            row["history_excluded"] = {k: _mean_sd([r["test_history_excluded"][k] for r in runs])
                                       for k in SEED_METRICS}
        row["best_epoch"] = [r.get("best_epoch") or r.get("epochs") for r in runs]   # a refit's fixed epochs
        row["train_s"] = [r.get("train_s") for r in runs]
        rows[method] = row
    command = "python benchmarks/recommend.py --seeds-summary " + " ".join(paths) + f" --results-name {name}"
    runs = [s["command"] + (f" (rows {', '.join(m)})" if m else "") for s, m in zip(sources, chosen)]
    out = {"date": reporting.utc_iso(), "command": command, "seeds": seeds, "runs": runs, "rows": rows}
    reporting.write_json(RESULTS_DIR / f"{name}.json", out)
    table = format_seeds_table(rows, seeds)
    print(table)
    reporting.append_results(
                f"\n## Generative recommender over {len(seeds)} seeds ({name})\n\n"
                f"Date: {reporting.utc_minute()}.\nCommand: `{command}`\n\n"
                f"Runs (identical but for the seed, which sets the tokenizer, the generator and the validation "
                f"sample):\n\n" + "\n".join(f"- `{run}`" for run in runs) + f"\n\n{table}\n")
    return 0


def format_seeds_table(rows: dict, seeds: list[int]) -> str:
    """Mean +- sd per row, and SimCIT's ratio to each other tokenizer (ratio of the means)."""
    def cell(stat: dict | None) -> str:
        return f"{stat['mean']:.4f} +- {stat['sd']:.4f}" if stat else "-"

    lines = [f"Test, mean +- sd over seeds {', '.join(map(str, seeds))}:", "",
             "| row | R@10 | N@10 | R@10 history excluded | N@10 history excluded | best epochs |",
             "|---|---|---|---|---|---|"]
    for method, row in rows.items():
        excluded = row.get("history_excluded", {})
        lines.append(f"| {NAMES.get(method, method)} | {cell(row['recall@10'])} | {cell(row['ndcg@10'])} | "
                     f"{cell(excluded.get('recall@10'))} | {cell(excluded.get('ndcg@10'))} | "
                     f"{', '.join(f'{e:g}' for e in row['best_epoch'] if e is not None)} |")
    if "simcit" in rows:
        ratios = [f"SimCIT / {NAMES.get(m, m)} N@10 {rows['simcit']['ndcg@10']['mean'] / r['ndcg@10']['mean']:.2f}x"
                  for m, r in rows.items() if m != "simcit" and r["ndcg@10"]["mean"] > 0]
        lines += ["", "; ".join(ratios) + " (ratios of the means)."]
    return "\n".join(lines)


def reevaluate(args, rec, workdir: Path, command: str) -> int:
    """Evaluate the generators a previous run saved under ``workdir`` on another split (no training). With
    ``--results-name``, also writes their rows as a results file (:func:`write_results`): the figures measured
    here, the epochs, best epoch, training seconds and learning curve from each folder's ``train_log.json``, so
    a run stopped after its generators were saved can be completed (``--merge``) without retraining them."""
    from hf_simcit.recommender.evaluation import evaluate_recommender
    from hf_simcit.recommender.modeling import load_recommender

    wall_start = time.time()
    rows = {}
    split = test_subset(rec.splits[args.reevaluate], args.test_examples, args.seed)
    lines = ["| method | R@5 | N@5 | R@10 | N@10 | R@10 repeat | R@10 new | invalid | users | saved at step | "
             "eval s |", "|" + "---|" * 11]
    for method in [m.strip() for m in args.methods.split(",") if m.strip() in GENERATORS]:
        folder = workdir / method
        if not (folder / "train_log.json").exists():
            print(f"[{method}] no saved generator in {folder}; skipped")
            continue
        start = time.time()
        best = load_recommender(folder, device="cuda" if torch.cuda.is_available() else "cpu")
        m = evaluate_recommender(best.model, best.tokenizer, best.item_token_ids, split, num_beams=args.beams,
                                 ks=(5, 10), batch_size=args.eval_batch_size, desc=f"{args.reevaluate} {method}",
                                 return_rankings=True)
        # as in a training run: --exclude-history adds the figures without the user's own items beside the plain
        excluded = evaluate_recommender(best.model, best.tokenizer, best.item_token_ids, split,
                                        num_beams=args.beams, ks=(5, 10), batch_size=args.eval_batch_size,
                                        desc=f"{args.reevaluate} {method}, history excluded",
                                        exclude_history=True) if args.exclude_history else None
        split_hits = history_split(m.pop("rankings"), split, m["recall@10"])
        log = json.loads((folder / "train_log.json").read_text())
        step = log["best_step"]
        rows[method] = {"test": m, "test_history_excluded": excluded, "split": split_hits,
                        "validation": log["best_metrics"], "epochs": log["epochs"],
                        "best_epoch": log["best_epoch"], "train_s": log["train_seconds"],
                        "curve": [{"epoch": e["epoch"], "seconds": e["train_seconds"], "ndcg@10": e["ndcg@10"]}
                                  for e in log["log"] if "ndcg@10" in e]}
        lines.append(f"| {NAMES[method]} | {m['recall@5']:.4f} | {m['ndcg@5']:.4f} | {m['recall@10']:.4f} | "
                     f"{m['ndcg@10']:.4f} | {_share(split_hits['repeat'])} | {_share(split_hits['new'])} | "
                     f"{m['invalid_items']} | {m['num_examples']} | {step} | "
                     f"{time.time() - start:.0f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if not args.no_results:
        reporting.append_results(
                    f"\nRe-evaluation of the saved generators (best validation checkpoints, no retraining) on the "
                    f"{args.reevaluate} split, {reporting.utc_minute()}, threads "
                    f"{torch.get_num_threads()}"
                    f"{'; the figures with the history excluded are in the results file' if args.exclude_history else ''}"
                    f". Command: `{command}`\n\n{table}\n")
    if args.results_name and rows:   # --no-results: the file goes to the run folder, nothing in benchmarks/
        path = write_results(RESULTS_DIR if not args.no_results else workdir / "results", args.results_name, rows,
                             command, "cuda" if torch.cuda.is_available() else "cpu", time.time() - wall_start)
        print(f"wrote {path} (wall_s: this re-evaluation's; train_s: each generator's training)")
    return 0


class RunContext(NamedTuple):
    """What every row of one run shares: the split, the item features and the SID settings."""
    rec: object
    feats: object
    workdir: Path
    simcit_args: object
    modalities: list[str]
    base_modalities: list[str]
    levels: int
    size: int
    n: int
    test_split: object
    device: str


def run_context(args) -> RunContext:
    rec = load_data(args.dataset)
    feats = load_features(args.dataset, rec, args.cf, Path(args.lgmd_cache))
    workdir = CACHE / "runs" / args.dataset
    simcit_args = quantizer_recipe(args.dataset, args, workdir)
    modalities = list(simcit_args.modalities or feats.modalities)
    base_modalities = modalities if args.baseline_modalities == "same" else \
        [m.strip() for m in args.baseline_modalities.split(",") if m.strip()]
    return RunContext(rec, feats, workdir, simcit_args, modalities, base_modalities, simcit_args.num_levels,
                      simcit_args.codebook_size, len(rec.items),
                      test_subset(rec.splits["test"], args.test_examples, args.seed),
                      "cuda" if torch.cuda.is_available() else "cpu")


def row_sids(tokenizer: str, args, ctx: RunContext) -> tuple[object, dict]:
    """One tokenizer's SIDs for a learned row: ``(assignment, SID statistics)``."""
    t0 = time.time()
    assignment, _ = build_sids(tokenizer, ctx.feats, ctx.modalities if tokenizer == "simcit" else ctx.base_modalities,
                               ctx.levels, ctx.size, args.seed, ctx.simcit_args, args.rqvae_steps, args.resolve,
                               args.disambiguation_order)
    raw = assignment.raw_statistics
    stats = {"collision": raw["collision_rate"], "levels": assignment.codes.shape[1],
             "sizes": assignment.codebook_sizes, "usage": raw["usage"], "sid_s": time.time() - t0}
    print(f"[{tokenizer}] SIDs in {time.time() - t0:.1f}s: raw collision {raw['collision_rate']:.4f}, usage "
          f"{[round(u, 3) for u in raw['usage']]}, codebook sizes {assignment.codebook_sizes}", flush=True)
    return assignment, stats


def learned_row(method: str, args, ctx: RunContext) -> tuple[dict, dict | None]:
    """Train and test one learned row (a SID generator, SASRec, or SASRec over SIDs): ``(row, SID statistics
    or None)``."""
    if method == "sasrec" or method in SID_SASREC:
        assignment, stats = row_sids(SID_SASREC[method], args, ctx) if method in SID_SASREC else (None, None)
        row = run_sasrec(ctx.rec, ctx.test_split, ctx.n, args, ctx.device, assignment=assignment)
        row["test"]["num_examples"] = len(ctx.test_split)
        print(f"[{method}] test {json.dumps({k: round(v, 4) for k, v in row['test'].items() if isinstance(v, float)})}",
              flush=True)
        return row, stats
    assignment, stats = row_sids(method, args, ctx)
    row = run_generator(method, assignment, ctx.rec, ctx.test_split, args, ctx.workdir,
                        item_embeddings=ctx.feats.features["text"] if args.dense_head else None)
    print(f"[{method}] test {json.dumps({k: round(v, 4) for k, v in row['test'].items() if isinstance(v, float)})}"
          f" invalid={row['test']['invalid_items']} users={row['test']['num_examples']} "
          f"train {row['train_s']:.0f}s eval {row['eval_s']:.0f}s, best step {row['best_step']}", flush=True)
    return row, stats


def learned_row_in_worker(method: str, args) -> tuple[str, dict, dict | None]:
    """:func:`learned_row` in a worker process of ``--jobs``: it loads the (cached) split and features itself."""
    torch.set_num_threads(args.threads or 1)
    row, stats = learned_row(method, args, run_context(args))
    row["rankings"] = np.asarray(row["rankings"])
    return method, row, stats


def add_dense_head_options(parser: argparse.ArgumentParser) -> None:
    """The dense item head's training options (``RecommenderTrainingArguments.dense_*``), for every benchmark
    that trains generators with a head."""
    from hf_simcit.recommender.dense import DENSE_NEGATIVES

    parser.add_argument("--dense-negatives", default="batch", choices=DENSE_NEGATIVES,
                        help="the head's InfoNCE negatives: the batch's other targets, or every item (a full softmax)")
    parser.add_argument("--dense-loss-weight", type=float, default=1.0, help="the head's loss beside the SID loss")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k", choices=sorted(DATA_DIRS))
    parser.add_argument("--methods", default="simcit,rqvae,rqkmeans,random,sasrec,history,popularity,knn")
    parser.add_argument("--levels", type=int, default=None, help="SID levels (default: the quantizer recipe's)")
    parser.add_argument("--codebook-size", type=int, default=None, help="codes per level (default: the recipe's)")
    parser.add_argument("--simcit-steps", type=int, default=None, help="SimCIT max_steps (default: the recipe's)")
    parser.add_argument("--simcit-set", action="append", default=None, metavar="KEY=VALUE",
                        help="override one QuantizerTrainingArguments field of the recipe, e.g. "
                             "contrastive_temperature=0.3 (repeatable)")
    parser.add_argument("--rqvae-steps", type=int, default=1500, help="RQ-VAE AdamW steps (batch 1024)")
    parser.add_argument("--resolve", default="level", choices=["level", "sinkhorn"],
                        help="SID collision resolution for every tokenizer (assign_semantic_ids)")
    parser.add_argument("--disambiguation-order", default="index", choices=["index", "distance", "random"],
                        help="with --resolve level: how items sharing a SID are numbered (index = item order)")
    parser.add_argument("--cf", default="svd", choices=["svd", "sequential", *LGMD_SOURCES],
                        help="the collaborative modality: svd of the training user x item matrix, sequential "
                             "(SPPMI-SVD of items that follow each other in training sequences), or LGMD of the "
                             "user x item matrix (lgmd, lgmd-attractive) or of the sequential SPPMI "
                             "(lgmd-sequential, Beauty's recipe)")
    parser.add_argument("--lgmd-cache", default=str(CACHE),
                        help="where the LGMD cf is fitted once and kept (<dataset>-<cf>.npz)")
    parser.add_argument("--baseline-modalities", default="same",
                        help="features of the baseline tokenizers: 'same' as SimCIT's recipe, or e.g. 'text'")
    parser.add_argument("--model", default=None, help="LLM path/name (default: tiny Llama from a config)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=None, help="FFN width (default: 2 x hidden)")
    parser.add_argument("--dropout", type=float, default=0.2, help="generator residual + embedding dropout")
    parser.add_argument("--attention-dropout", type=float, default=0.0, help="generator attention dropout")
    parser.add_argument("--tie-embeddings", action="store_true",
                        help="generator input embeddings and output layer share one matrix (as in T5 / TIGER)")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--objective", default="full_sequence", choices=["full_sequence", "prefix"])
    parser.add_argument("--dense-head", action="store_true",
                        help="the SID generators also train a dense item head on the items' text embeddings "
                             "(LIGER, hf_simcit.recommender.dense)")
    add_dense_head_options(parser)
    parser.add_argument("--epochs", type=float, default=30.0,
                        help="the common epoch cap of every learned row (each stops early on its own)")
    parser.add_argument("--patience", type=int, default=5, help="validations without improvement before stopping")
    parser.add_argument("--patience-window", type=int, default=1,
                        help="validations in the trailing mean that also counts as improvement (1: the value "
                             "alone); every learned row, SASRec too")
    parser.add_argument("--eval-epochs", type=int, default=1, help="validate every N epochs")
    parser.add_argument("--scheduler", default="constant_with_warmup",
                        help="learning-rate schedule (cosine would decay over the cap, not the stopping point)")
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--eval-steps", type=int, default=0, help="validate every N steps instead (0: by epochs)")
    parser.add_argument("--eval-examples", type=int, default=2000,
                        help="validation users: a fixed random sample (seed --seed), the same for every row "
                             "(0: every validation user)")
    parser.add_argument("--test-examples", type=int, default=None,
                        help="test users evaluated (default: all; else a seeded random subset, same for all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (per job with --jobs)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="train the learned rows in this many processes side by side (e.g. 2 on 2 cores "
                             "with --threads 1)")
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--sasrec-epochs", type=int, default=0, help="SASRec's epoch cap (0: --epochs)")
    parser.add_argument("--sasrec-patience", type=int, default=0, help="(0: --patience)")
    parser.add_argument("--sasrec-lr", type=float, default=None, help="(default: SASRecConfig's)")
    parser.add_argument("--sasrec-eval-examples", type=int, default=None,
                        help="SASRec's validation users (default: --eval-examples; 0: every validation user, "
                             "cheap for an item-id model)")
    parser.add_argument("--sasrec-set", action="append", default=None, metavar="KEY=VALUE",
                        help=f"override one SASRecConfig field, e.g. negatives=256 (repeatable; one of "
                             f"{', '.join(SASREC_SETTABLE)})")
    parser.add_argument("--results-name", default=None,
                        help="benchmarks/results/<name>.json (default recommend-<data>, -gpu on a GPU)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="no training: merge results files of runs that trained different rows")
    parser.add_argument("--merge-wall-s", type=float, default=None, metavar="SECONDS",
                        help="with --merge: the measured wall time of all the rows (default: the longest source's)")
    parser.add_argument("--smoke", action="store_true",
                        help="a minute on CPU: ML-100K, 1 epoch, small samples, nothing written to benchmarks/")
    parser.add_argument("--exclude-history", action="store_true",
                        help="never rank a user's own history items (RecBole's protocol; for data without repeat "
                             "consumption): with --reevaluate the only scoring; in a training run every learned "
                             "row is also tested this way (extra columns; validation stays on the plain protocol)")
    parser.add_argument("--reevaluate", choices=["validation", "test"], default=None,
                        help="no training: evaluate the generators saved by an earlier run on this split")
    parser.add_argument("--refit-with-validation", default=None, metavar="JSON",
                        help="no early stopping: refit each learned row of that results file (--methods) on the "
                             "training + validation interactions for its best epoch count, with its settings, "
                             "and test it (only --methods, --threads, --results-name, --no-results apply)")
    parser.add_argument("--seeds-summary", nargs="+", default=None, metavar="JSON[:methods]",
                        help="no training: mean +- sd over results files of runs that differ only in --seed; "
                             "FILE:rqkmeans,rqvae takes only those rows of a file (a seed's rows may come from "
                             "several files); simcit-ablation-beauty.json#ROW adds that ablation row's "
                             "generators as the simcit row of their seeds")
    return parser


def with_bad_input_as_one_line(run_benchmark, argv: list[str] | None) -> int:
    """``run_benchmark(argv)``, where bad input (data not found, a damaged file, SIDs that cannot be built: a
    ``SimCITInputError``) is one line on stderr and exit status 2, not a traceback (every benchmark's ``main``)."""
    from hf_simcit.errors import SimCITInputError

    try:
        return run_benchmark(argv)
    except SimCITInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    return with_bad_input_as_one_line(run, argv)


def import_every_stage() -> None:
    """Import every stage up front, in the main process and in each ``--jobs`` worker as it starts: a run of
    hours must not import a module on first use from a working tree edited since it started (a worker that
    imported the old ``hf_simcit.utils.dropout`` and, hours later, the new ``baselines.sasrec`` stopped a run)."""
    import hf_simcit.baselines.knn  # noqa: F401
    import hf_simcit.baselines.popularity  # noqa: F401
    import hf_simcit.baselines.sasrec  # noqa: F401
    import hf_simcit.recommender.evaluation  # noqa: F401
    import hf_simcit.recommender.modeling  # noqa: F401
    import hf_simcit.training.quantizer  # noqa: F401
    import hf_simcit.training.recommender  # noqa: F401


def with_smoke_settings(args: argparse.Namespace) -> argparse.Namespace:
    """``--smoke``: a minute on CPU (ML-100K, 1 epoch, small samples, a tiny generator, nothing in benchmarks/)."""
    if args.smoke:
        args.dataset, args.epochs, args.patience, args.eval_examples = "ml-100k", 1.0, 1, 50
        args.test_examples, args.simcit_steps, args.rqvae_steps, args.no_results = 100, 5, 20, True
        args.hidden, args.layers, args.batch_size = 32, 1, 256
    return args


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.merge:
        return merge_results(args.merge, args.results_name or "recommend-merged", args.merge_wall_s)
    if args.seeds_summary:
        return seeds_summary(args.seeds_summary, args.results_name or "recommend-seeds")
    if args.refit_with_validation:
        if args.threads:
            torch.set_num_threads(args.threads)
        return refit_with_validation(args.refit_with_validation, args)
    with_smoke_settings(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    command = reporting.command_line("python benchmarks/recommend.py", argv)
    started, load_start = time.time(), os.getloadavg()
    import_every_stage()
    unknown = [m for m in methods if m not in NAMES]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown} ({', '.join(NAMES)})")
    if args.sasrec_set:   # a bad setting stops here, before hours of other rows
        from hf_simcit.baselines.sasrec import SASRecConfig

        SASRecConfig(num_items=1, **sasrec_overrides(args.sasrec_set))
    ctx = run_context(args)
    if args.reevaluate:
        return reevaluate(args, ctx.rec, ctx.workdir, command)
    rec, workdir, simcit_args, modalities, base_modalities, levels, size, n, test_split = (
        ctx.rec, ctx.workdir, ctx.simcit_args, ctx.modalities, ctx.base_modalities, ctx.levels, ctx.size, ctx.n,
        ctx.test_split)
    print(f"{args.dataset}: {n} items, {len(rec.splits['train'])} training examples, "
          f"{len(rec.splits['test'])} test users (evaluated {len(test_split)}); SimCIT modalities {modalities}, "
          f"baselines {base_modalities}; {levels} levels x {size}; device {device}; threads {torch.get_num_threads()}"
          f"; {args.jobs} job(s)", flush=True)
    repeat = in_history(test_split)
    print(f"test targets already in the user's history: {repeat.mean():.2%} ({repeat.sum()} of {len(repeat)})",
          flush=True)
    learned = [m for m in methods if m in LEARNED]
    done: dict[str, tuple[dict, dict | None]] = {}
    if args.jobs > 1 and len(learned) > 1:
        # one process per learned row, ``--threads`` each: the rows of one run train side by side
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(min(args.jobs, len(learned)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=import_every_stage) as pool:
            futures = [pool.submit(learned_row_in_worker, method, args) for method in learned]
            for future in as_completed(futures):
                method, row, stats = future.result()
                done[method] = (row, stats)
    else:
        for method in learned:
            done[method] = learned_row(method, args, ctx)
    rows, sid_stats = {}, {}
    for method in learned:
        rows[method], stats = done[method]
        if stats is not None:
            sid_stats[method] = stats
    # the learned rows' validation sample: the non-learned rows' test / validation ratio is the protocol's own
    # drift (leave-one-out validation targets are nearer the training data in time than test targets)
    from hf_simcit.data import sample_rows

    validation_split = rec.splits["validation"].select(
        sample_rows(len(rec.splits["validation"]), args.eval_examples or None, args.seed))
    for method in [m for m in methods if m in ("history", "popularity", "knn")]:
        rows[method] = (run_knn(ctx, test_split, validation_split) if method == "knn"
                        else run_baseline(method, rec, test_split, validation_split))
        print(f"[{method}] test {json.dumps({k: round(v, 4) for k, v in rows[method]['test'].items() if isinstance(v, float)})}",
              flush=True)
    for row in rows.values():
        row["split"] = history_split(row.pop("rankings"), test_split, row["test"]["recall@10"])

    table = format_table(rows, sid_stats) + hybrid_table(rows)
    wall = time.time() - started
    print(table)
    simcit_keys = ("max_steps", "learning_rate", "per_device_batch_size", "contrastive_temperature",
                   "symmetric_loss", "codebook_init", "codebook_refit", "codebook_refresh_steps", "init_latent_rms")
    settings = (
        f"data {args.dataset} ({n} items, {len(rec.splits['train'])} training examples, "
        f"{len(rec.splits['test'])} test users, evaluated: "
        f"{'all' if len(test_split) == len(rec.splits['test']) else f'{len(test_split)} (seeded random subset, seed {args.seed}, the same for every method)'}"
        f"; leave-one-out, history <= 20, full ranking over all items; test targets already in the user's "
        f"history: {repeat.mean():.1%} ({repeat.sum()} of {len(repeat)} evaluated users), R@10 repeat / new = "
        f"Recall@10 over those users / the others)")
    uses_sids = any(m in rows for m in (*GENERATORS, *SID_SASREC))
    settings += (   # the SID, generator and SASRec settings only where such a row ran
        f"; SIDs: {levels} levels x {size} codes, collisions resolved identically for every tokenizer by "
        + (f"`assign_semantic_ids(resolve='level', disambiguation_order='{args.disambiguation_order}')` (an extra "
           f"level numbering items that share a SID, in "
           f"{dict(index='item order', distance='order of distance to the last codeword', random='a seeded random order')[args.disambiguation_order]})"
           if args.resolve == "level" else
           "`assign_semantic_ids(resolve='sinkhorn')` (colliding items moved to free last-level codes, no extra level)")
        + f"; SimCIT = `train_quantizer` with recipes/{args.dataset}/"
        f"quantizer.yaml ({', '.join(f'{k} {getattr(simcit_args, k)}' for k in simcit_keys)}) on {modalities}; "
        f"RQ-VAE ({args.rqvae_steps} steps), RQ-KMeans, random IDs = `hf_simcit.quantizers` baselines on "
        f"{base_modalities}") if uses_sids else ""
    settings += "; cf = " + cf_description(args.cf)
    settings += (
        "; generator: "
        f"{args.model or f'Llama from config (hidden {args.hidden}, {args.layers} layers, {args.heads} heads)'}, "
        f"FFN {args.ffn or 2 * args.hidden}, dropout {args.dropout}, attention dropout {args.attention_dropout}, "
        f"{'tied' if args.tie_embeddings else 'untied'} embeddings, weight decay {args.weight_decay}), "
        f"full fine-tune, plain prompt, objective {args.objective}, lr {args.lr} {args.scheduler}, batch "
        f"{args.batch_size}; every generator: up to {args.epochs:g} epochs"
        f"{f' (max_steps {args.max_steps})' if args.max_steps > 0 else ''}, validation NDCG@10 every "
        f"{f'{args.eval_steps} steps' if args.eval_steps else f'{args.eval_epochs} epoch(s)'} on the same "
        f"{args.eval_examples or 'all'} validation users (seeded sample), early stopping after {args.patience} "
        f"validations without improvement"
        f"{f' of the value or of its mean over the last {args.patience_window}' if args.patience_window > 1 else ''}"
        f", best checkpoint tested"
        f"{' (also with each user history items excluded from the ranking, RecBole protocol)' if args.exclude_history else ''}"
        f"; beam {args.beams}"
        + ("; with a dense item head on the items' text embeddings (--dense-head, LIGER; InfoNCE against "
           + ("the batch's other targets" if args.dense_negatives == "batch" else "every item")
           + f", weight {args.dense_loss_weight:g}, temperature 0.07), also ranked by the hybrid: the beam's "
           "candidates re-ordered by "
           "log P(SID) + w x the head's logit, w of " + "/".join(f"{w:g}" for w in HYBRID_WEIGHTS)
           + " chosen on the validation sample" if args.dense_head else "")) if any(m in rows for m in GENERATORS) else ""
    if any(m in rows for m in ("sasrec", *SID_SASREC)):
        settings += (
            f"; SASRec: {_sasrec_summary(rows.get('sasrec') or next((rows[m] for m in SID_SASREC if m in rows), None))}"
            f"{'; SASRec over SIDs: the same, items = sums of their SID codes embeddings (SASRecConfig.sid_sizes)' if any(m in rows for m in SID_SASREC) else ''}")
    settings += (
        f"; history = the user's history items by count, ties most recent first, "
        f"then the most popular training targets not in the history; popularity = the most frequent training "
        f"targets; last-item kNN = every item ranked by the cosine of its {'+'.join(base_modalities)} features "
        f"(as the baseline tokenizers get them) to the user's last history item, history excluded; seed {args.seed}; threads {torch.get_num_threads()}; device {device}")
    print(settings)
    print(f"total wall time {wall:.0f} s")
    if not args.no_results:
        load_end = os.getloadavg()
        machine = (f"GPU {torch.cuda.get_device_name()}" if device == "cuda" else
                   f"{os.cpu_count()} CPU cores ({platform.machine()}), shared with other jobs: load average "
                   f"{load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end")
        reporting.append_results(
                    f"\n## Generative recommender: SID tokenizers side by side ({args.dataset})\n\n"
                    f"Date: {reporting.utc_minute()}. Machine: {machine}; "
                    f"total wall time {wall:.0f} s ({wall / 60:.1f} min).\n"
                    f"Command: `{command}`\n\nSettings: {settings}.\n\nTest split:\n\n{table}\n"
                    + (f"\nLearning curves: `benchmarks/results/curves-{args.results_name or 'recommend-' + args.dataset}.png`.\n"
                       if any(r.get("curve") for r in rows.values()) else ""))
    results = RESULTS_DIR if not args.no_results else workdir / "results"   # --no-results: nothing in benchmarks/
    name = args.results_name or f"recommend-{args.dataset}{'-gpu' if device == 'cuda' else ''}"
    write_results(results, name, rows, command, device, wall)
    from hf_simcit.report import plot_learning_curves

    plot_learning_curves({NAMES.get(m, m): r["curve"] for m, r in rows.items() if r.get("curve")},
                         results / f"curves-{name}.png", title=f"{args.dataset}: validation NDCG@10")
    positions = {"prefix": training_positions(rec, assignment_levels(sid_stats), "prefix"),
                 "full_sequence": training_positions(rec, assignment_levels(sid_stats), "full_sequence")}
    reporting.write_json(results / f"training-positions-{args.dataset}.json", positions)
    print(f"training positions per epoch: {positions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
