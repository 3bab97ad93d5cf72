"""Benchmark: which semantic IDs make the best generative recommender? One command, one split.

Side by side, on the same leave-one-out split, with the same generator (architecture, prompt, optimiser,
steps, seed) and the same full-ranking evaluation (trie-constrained beam search, 0 invalid items):
SimCIT SIDs vs RQ-VAE (TIGER-style) SIDs vs RQ-KMeans SIDs vs random SIDs, plus SASRec trained on the same
examples, plus two non-learned rankings (``hf_simcit.baselines.popularity``): ``history`` (the user's history
items by count, ties most recent first, then popular items) and ``popularity`` (most frequent training targets).
The SIDs come from the library's own tokenizers: SimCIT is ``train_quantizer`` with the data set's
recipe (``recipes/<dataset>/quantizer.yaml``), the baselines are ``hf_simcit.quantizers`` ``RQVAEQuantizer``,
``RQKMeansQuantizer`` and ``RandomIDQuantizer`` fitted on the same item features; every tokenizer's codes go
through the same ``assign_semantic_ids(..., resolve="level")`` (TIGER's extra disambiguation level).
Reports Recall@{5,10}, NDCG@{5,10} on the test split, and for every row Recall@10 split by whether the test
target is already in the user's history (repeat) or not (new), and appends the table to ``benchmarks/RESULTS.md``.

    nice -n 10 .venv/bin/python benchmarks/recommend.py --dataset ml-100k --max-steps 250 --threads 1
    .venv/bin/python benchmarks/recommend.py --dataset beauty --epochs 1 --eval-steps 500 --threads 1
    .venv/bin/python benchmarks/recommend.py --dataset foursquare-nyc    # text + geography; takes a GPU if present
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = Path(os.environ.get("HF_SIMCIT_REC_BENCH_CACHE", "/tmp/hf_simcit_bench_rec"))
# benchmarks/quantizers.py caches the same MiniLM text + 32-d SVD / geo features here (reused when item ids match)
QUANTIZER_CACHE = Path(os.environ.get("HF_SIMCIT_BENCH_CACHE", "/tmp/hf_simcit_bench"))
sys.path.insert(0, str(ROOT))

DATA_DIRS = {"beauty": DATA / "amazon2014_beauty", "foursquare-nyc": DATA / "foursquare_nyc",
             "scientific": DATA / "amazon2018_scientific", "yelp": DATA / "yelp", "ml-100k": None}
NAMES = {"simcit": "SimCIT SIDs", "rqvae": "RQ-VAE SIDs", "rqkmeans": "RQ-KMeans SIDs", "random": "random SIDs",
         "sasrec": "SASRec", "history": "history (count, recency; then popular)",
         "popularity": "popularity (training targets)"}
GENERATORS = ("simcit", "rqvae", "rqkmeans", "random")


# ------------------------------------------------------------------------------------------------ data
def load_data(name: str):
    from hf_simcit.data import load_prepared, prepare_dataset

    path = CACHE / "prepared" / name
    if (path / "stats.json").exists():
        return load_prepared(path)
    rec = prepare_dataset(name, data_dir=DATA_DIRS.get(name))
    rec.save_to_disk(path)
    return rec


def load_features(name: str, rec):
    """:class:`hf_simcit.quantizers.ItemFeatures`: MiniLM text, 32-d SVD collaborative, geography for POIs.

    Reuses ``benchmarks/quantizers.py``'s cache when its item order matches; else computes them with the
    package's feature functions and caches them under ``CACHE/features``.
    """
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
                 "--resume", "false", "--show_progress", "false", "--seed", str(args.seed)]
    if args.levels:
        overrides += ["--num_levels", str(args.levels)]
    if args.codebook_size:
        overrides += ["--codebook_size", str(args.codebook_size)]
    if args.simcit_steps:
        overrides += ["--max_steps", str(args.simcit_steps)]
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
    from hf_simcit.quantizers import BASELINES, ItemFeatures, assign_semantic_ids

    sub = ItemFeatures({m: feats.features[m] for m in modalities}, {m: feats.masks[m] for m in modalities},
                       feats.item_ids)
    if method == "simcit":
        from hf_simcit.training.quantizer import train_quantizer

        quantizer = train_quantizer(simcit_args, sub).model.eval()
    elif method in BASELINES:
        kwargs = {"steps": rqvae_steps} if method == "rqvae" else {}
        quantizer = BASELINES[method](num_levels=levels, codebook_size=size, seed=seed, **kwargs)
        quantizer.fit(sub.features, sub.masks)
    else:
        raise SystemExit(f"unknown method {method!r} (simcit, rqvae, rqkmeans, random, sasrec)")
    with torch.no_grad():
        assignment = assign_semantic_ids(quantizer, sub.features, sub.masks, resolve=resolve,
                                         disambiguation_order=disambiguation_order, disambiguation_seed=seed)
    return assignment, quantizer


# ------------------------------------------------------------------------------------------------ runs
def run_generator(name: str, assignment, rec, test_split, args, workdir: Path) -> dict:
    from hf_simcit.recommender.modeling import RecommenderModelArguments, load_recommender
    from hf_simcit.recommender.sid import SIDTable
    from hf_simcit.training.evaluation import evaluate_recommender
    from hf_simcit.training.recommender import (
        RecommenderDataArguments,
        RecommenderTrainingArguments,
        train_recommender,
    )

    table = SIDTable(assignment.codes, rec.items["item_id"], codebook_sizes=assignment.codebook_sizes)
    model_args = RecommenderModelArguments(
        model_name_or_path=args.model, tiny_hidden_size=args.hidden, tiny_num_layers=args.layers,
        tiny_num_heads=args.heads, tiny_intermediate_size=2 * args.hidden)
    data_args = RecommenderDataArguments(eval_max_examples=args.eval_examples)
    train_args = RecommenderTrainingArguments(
        output_dir=str(workdir / name), checkpoint_dir=str(workdir / f"{name}_checkpoints"),
        seed=args.seed, learning_rate=args.lr, num_train_epochs=args.epochs, max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size, warmup_ratio=0.02, eval_steps=args.eval_steps,
        save_steps=0, logging_steps=100, eval_num_beams=args.beams, eval_batch_size=args.eval_batch_size,
        resume_from_checkpoint="no")
    start = time.time()
    result = train_recommender(model_args, data_args, train_args, splits=rec.splits, sid_source=table)
    train_time = time.time() - start
    best = load_recommender(train_args.output_dir, device=result["recommender"].model.device)
    start = time.time()
    test = evaluate_recommender(best.model, best.tokenizer, best.item_token_ids, test_split,
                                num_beams=args.beams, ks=(5, 10), batch_size=args.eval_batch_size,
                                desc=f"test {name}", return_rankings=True)
    rankings = test.pop("rankings")
    return {"test": test, "rankings": rankings, "validation": result["best_metrics"], "train_s": train_time,
            "eval_s": time.time() - start, "steps": result["final_step"], "best_step": result["best_step"]}


def run_sasrec(rec, test_split, n: int, args, device: str, steps: int | None) -> dict:
    """SASRec on the same training examples and batch size for ``steps`` optimizer steps (the generators'
    budget; ``None``: ``ceil(epochs)`` epochs), best epoch by validation NDCG@10."""
    from hf_simcit.baselines.sasrec import SASRecConfig, rank_items, train_sasrec

    t0 = time.time()
    steps = steps if steps and steps > 0 else None
    epochs = 10 ** 6 if steps else max(1, int(np.ceil(args.epochs)))
    patience = 10 ** 6
    if args.sasrec_epochs:   # its own budget: up to N epochs, early stopping on validation NDCG@10
        steps, epochs, patience = None, args.sasrec_epochs, args.sasrec_patience
    config = SASRecConfig(num_items=n, max_len=20, hidden_size=64, num_layers=2, num_heads=2, dropout=0.2,
                          learning_rate=args.sasrec_lr, batch_size=args.batch_size, num_epochs=epochs,
                          patience=patience, seed=args.seed, eval_max_examples=args.eval_examples)
    splits = {**rec.splits, "test": test_split}
    model, res = train_sasrec(splits, config, device=device, max_steps=steps)
    rankings = rank_items(model, test_split["history"], 10, device=device)   # the best model's test lists
    return {"test": {**res["test"], "invalid_items": 0}, "rankings": rankings, "validation": res.get("validation"),
            "train_s": time.time() - t0, "eval_s": 0.0, "steps": res["steps"],
            "best_step": max(res["history"], key=lambda h: h["ndcg@10"])["step"] if res.get("history") else None}


def run_baseline(method: str, rec, test_split) -> dict:
    """A non-learned ranking (``history`` or ``popularity``, counts from the training split) on the test users."""
    from hf_simcit.baselines.popularity import evaluate_baseline, item_popularity

    t0 = time.time()
    popularity = item_popularity(rec.splits["train"]["target"], len(rec.items))
    fit_s = time.time() - t0
    t0 = time.time()
    test = evaluate_baseline(method, test_split, popularity, ks=(5, 10), return_rankings=True)
    rankings = test.pop("rankings")
    return {"test": test, "rankings": rankings, "validation": None, "train_s": fit_s,
            "eval_s": time.time() - t0, "steps": "-", "best_step": None}


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


def format_table(rows: dict, sid_stats: dict) -> str:
    header = ("| method | R@5 | N@5 | R@10 | N@10 | R@10 repeat | R@10 new | invalid | test users | raw collision | "
              "SID levels (sizes) | steps (best) | train s | test eval s |")
    lines = [header, "|" + "---|" * 14]
    for method, row in rows.items():
        t, s = row["test"], sid_stats.get(method, {})
        sizes = f"{s['levels']} ({'/'.join(map(str, s['sizes']))})" if s else "-"
        best = f" ({row['best_step']})" if row.get("best_step") is not None else ""
        split = row.get("split", {})
        lines.append(
            f"| {NAMES.get(method, method)} | {t['recall@5']:.4f} | {t['ndcg@5']:.4f} | {t['recall@10']:.4f} | "
            f"{t['ndcg@10']:.4f} | {_share(split.get('repeat'))} | {_share(split.get('new'))} | "
            f"{t['invalid_items']} | {t.get('num_examples', '-')} | "
            f"{format(s['collision'], '.2%') if s else '-'} | {sizes} | {row['steps']}{best} | "
            f"{row['train_s']:.0f} | {row['eval_s']:.0f} |")
    return "\n".join(lines)


def reevaluate(args, rec, workdir: Path, command: str) -> int:
    """Evaluate the generators a previous run saved under ``workdir`` on another split (no training)."""
    from hf_simcit.recommender.modeling import load_recommender
    from hf_simcit.training.evaluation import evaluate_recommender

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
        split_hits = history_split(m.pop("rankings"), split, m["recall@10"])
        step = json.loads((folder / "train_log.json").read_text())["best_step"]
        lines.append(f"| {NAMES[method]} | {m['recall@5']:.4f} | {m['ndcg@5']:.4f} | {m['recall@10']:.4f} | "
                     f"{m['ndcg@10']:.4f} | {_share(split_hits['repeat'])} | {_share(split_hits['new'])} | "
                     f"{m['invalid_items']} | {m['num_examples']} | {step} | "
                     f"{time.time() - start:.0f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if not args.no_results:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
            f.write(f"\nRe-evaluation of the saved generators (best validation checkpoints, no retraining) on the "
                    f"{args.reevaluate} split, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, threads "
                    f"{torch.get_num_threads()}. Command: `{command}`\n\n{table}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k", choices=sorted(DATA_DIRS))
    parser.add_argument("--methods", default="simcit,rqvae,rqkmeans,random,sasrec,history,popularity")
    parser.add_argument("--levels", type=int, default=None, help="SID levels (default: the quantizer recipe's)")
    parser.add_argument("--codebook-size", type=int, default=None, help="codes per level (default: the recipe's)")
    parser.add_argument("--simcit-steps", type=int, default=None, help="SimCIT max_steps (default: the recipe's)")
    parser.add_argument("--rqvae-steps", type=int, default=1500, help="RQ-VAE AdamW steps (batch 1024)")
    parser.add_argument("--resolve", default="level", choices=["level", "sinkhorn"],
                        help="SID collision resolution for every tokenizer (assign_semantic_ids)")
    parser.add_argument("--disambiguation-order", default="index", choices=["index", "distance", "random"],
                        help="with --resolve level: how items sharing a SID are numbered (index = item order)")
    parser.add_argument("--baseline-modalities", default="same",
                        help="features of the baseline tokenizers: 'same' as SimCIT's recipe, or e.g. 'text'")
    parser.add_argument("--model", default=None, help="LLM path/name (default: tiny Llama from a config)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--eval-steps", type=int, default=0, help="validate every N steps (0: at the end only)")
    parser.add_argument("--eval-examples", type=int, default=None, help="validation users (default: all)")
    parser.add_argument("--test-examples", type=int, default=None,
                        help="test users evaluated (default: all; else a seeded random subset, same for all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--sasrec-epochs", type=int, default=0,
                        help="SASRec's own budget: up to N epochs with early stopping (0: the generators' steps)")
    parser.add_argument("--sasrec-patience", type=int, default=3)
    parser.add_argument("--sasrec-lr", type=float, default=1e-3)
    parser.add_argument("--reevaluate", choices=["validation", "test"], default=None,
                        help="no training: evaluate the generators saved by an earlier run on this split")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    command = "python benchmarks/recommend.py " + " ".join(argv if argv is not None else sys.argv[1:])
    started, load_start = time.time(), os.getloadavg()
    # import every stage up front: a long run must not pick up half-edited modules of a working tree
    import hf_simcit.baselines.popularity  # noqa: F401
    import hf_simcit.baselines.sasrec  # noqa: F401
    import hf_simcit.recommender.modeling  # noqa: F401
    import hf_simcit.training.evaluation  # noqa: F401
    import hf_simcit.training.quantizer  # noqa: F401
    import hf_simcit.training.recommender  # noqa: F401

    rec = load_data(args.dataset)
    feats = load_features(args.dataset, rec)
    workdir = CACHE / "runs" / args.dataset
    if args.reevaluate:
        return reevaluate(args, rec, workdir, command)
    simcit_args = quantizer_recipe(args.dataset, args, workdir)
    modalities = list(simcit_args.modalities or feats.modalities)
    base_modalities = modalities if args.baseline_modalities == "same" else \
        [m.strip() for m in args.baseline_modalities.split(",") if m.strip()]
    levels, size = simcit_args.num_levels, simcit_args.codebook_size
    n = len(rec.items)
    test_split = test_subset(rec.splits["test"], args.test_examples, args.seed)
    print(f"{args.dataset}: {n} items, {len(rec.splits['train'])} training examples, "
          f"{len(rec.splits['test'])} test users (evaluated {len(test_split)}); SimCIT modalities {modalities}, "
          f"baselines {base_modalities}; {levels} levels x {size}; device {device}; threads {torch.get_num_threads()}",
          flush=True)

    unknown = [m for m in methods if m not in NAMES]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown} ({', '.join(NAMES)})")
    repeat = in_history(test_split)
    print(f"test targets already in the user's history: {repeat.mean():.2%} ({repeat.sum()} of {len(repeat)})",
          flush=True)
    rows, sid_stats = {}, {}
    for method in methods:
        if method not in GENERATORS:
            continue
        t0 = time.time()
        assignment, _ = build_sids(method, feats, modalities if method == "simcit" else base_modalities, levels,
                                   size, args.seed, simcit_args, args.rqvae_steps, args.resolve,
                                   args.disambiguation_order)
        raw = assignment.raw_statistics
        sid_stats[method] = {"collision": raw["collision_rate"], "levels": assignment.codes.shape[1],
                             "sizes": assignment.codebook_sizes, "usage": raw["usage"], "sid_s": time.time() - t0}
        print(f"[{method}] SIDs in {time.time() - t0:.1f}s: raw collision {raw['collision_rate']:.4f}, usage "
              f"{[round(u, 3) for u in raw['usage']]}, codebook sizes {assignment.codebook_sizes}", flush=True)
        rows[method] = run_generator(method, assignment, rec, test_split, args, workdir)
        row = rows[method]
        print(f"[{method}] test {json.dumps({k: round(v, 4) for k, v in row['test'].items() if isinstance(v, float)})}"
              f" invalid={row['test']['invalid_items']} users={row['test']['num_examples']} "
              f"train {row['train_s']:.0f}s eval {row['eval_s']:.0f}s, best step {row['best_step']}", flush=True)

    if "sasrec" in methods:
        generator_steps = next((r["steps"] for r in rows.values()), None)
        rows["sasrec"] = run_sasrec(rec, test_split, n, args, device, generator_steps or args.max_steps)
        rows["sasrec"]["test"]["num_examples"] = len(test_split)
        print(f"[sasrec] test {json.dumps({k: round(v, 4) for k, v in rows['sasrec']['test'].items() if isinstance(v, float)})}",
              flush=True)
    for method in [m for m in methods if m in ("history", "popularity")]:
        rows[method] = run_baseline(method, rec, test_split)
        print(f"[{method}] test {json.dumps({k: round(v, 4) for k, v in rows[method]['test'].items() if isinstance(v, float)})}",
              flush=True)
    for row in rows.values():
        row["split"] = history_split(row.pop("rankings"), test_split, row["test"]["recall@10"])

    table = format_table(rows, sid_stats)
    wall = time.time() - started
    print(table)
    simcit_keys = ("max_steps", "learning_rate", "per_device_batch_size", "symmetric_loss", "codebook_init",
                   "codebook_refresh_steps", "init_latent_rms")
    settings = (
        f"data {args.dataset} ({n} items, {len(rec.splits['train'])} training examples, "
        f"{len(rec.splits['test'])} test users, evaluated: "
        f"{'all' if len(test_split) == len(rec.splits['test']) else f'{len(test_split)} (seeded random subset, seed {args.seed}, the same for every method)'}"
        f"; leave-one-out, history <= 20, full ranking over all items; test targets already in the user's "
        f"history: {repeat.mean():.1%} ({repeat.sum()} of {len(repeat)} evaluated users), R@10 repeat / new = "
        f"Recall@10 over those users / the others); SIDs: {levels} levels x {size} codes, "
        f"collisions resolved identically for every tokenizer by "
        + (f"`assign_semantic_ids(resolve='level', disambiguation_order='{args.disambiguation_order}')` (an extra "
           f"level numbering items that share a SID, in "
           f"{dict(index='item order', distance='order of distance to the last codeword', random='a seeded random order')[args.disambiguation_order]})"
           if args.resolve == "level" else
           "`assign_semantic_ids(resolve='sinkhorn')` (colliding items moved to free last-level codes, no extra level)")
        + f"; SimCIT = `train_quantizer` with recipes/{args.dataset}/"
        f"quantizer.yaml ({', '.join(f'{k} {getattr(simcit_args, k)}' for k in simcit_keys)}) on {modalities}; "
        f"RQ-VAE ({args.rqvae_steps} steps), RQ-KMeans, random IDs = `hf_simcit.quantizers` baselines on "
        f"{base_modalities}; generator: "
        f"{args.model or f'Llama from config (hidden {args.hidden}, {args.layers} layers, {args.heads} heads)'}, "
        f"full fine-tune, plain prompt, lr {args.lr} cosine, batch {args.batch_size}, "
        f"{f'max_steps {args.max_steps}' if args.max_steps > 0 else f'epochs {args.epochs}'}, best-of validation "
        f"({args.eval_examples or 'all'} validation users) every {args.eval_steps or 'end'} steps, beam {args.beams}; "
        f"SASRec: hidden 64, 2 layers, dropout 0.2, full-softmax CE, lr {args.sasrec_lr}, same examples and batch "
        f"size, "
        f"{f'up to {args.sasrec_epochs} epochs, early stopping (patience {args.sasrec_patience})' if args.sasrec_epochs else 'same number of optimizer steps as the generators'}"
        f", best epoch on validation; history = the user's history items by count, ties most recent first, "
        f"then the most popular training targets not in the history; popularity = the most frequent training "
        f"targets; seed {args.seed}; threads {torch.get_num_threads()}; device {device}")
    print(settings)
    print(f"total wall time {wall:.0f} s")
    if not args.no_results:
        load_end = os.getloadavg()
        machine = (f"GPU {torch.cuda.get_device_name()}" if device == "cuda" else
                   f"{os.cpu_count()} CPU cores ({platform.machine()}), shared with other jobs: load average "
                   f"{load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end")
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
            f.write(f"\n## Generative recommender: SID tokenizers side by side ({args.dataset})\n\n"
                    f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {machine}; "
                    f"total wall time {wall:.0f} s ({wall / 60:.1f} min).\n"
                    f"Command: `{command}`\n\nSettings: {settings}.\n\nTest split:\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
