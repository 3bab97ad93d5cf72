"""Benchmark: which semantic IDs make the best generative recommender? One command, one split.

Side by side, on the same leave-one-out split, with the same generator (architecture, prompt, optimiser,
steps, seed) and the same full-ranking evaluation (trie-constrained beam search, 0 invalid items):
SimCIT SIDs vs RQ-VAE (TIGER-style) SIDs vs RQ-KMeans SIDs vs random SIDs, plus SASRec trained on the same
examples. Collisions are resolved the same way for every tokenizer (TIGER's extra disambiguation level).
Reports Recall@{5,10}, NDCG@{5,10} on the test split and appends the table to ``benchmarks/RESULTS.md``.

    nice -n 10 .venv/bin/python benchmarks/recommend.py --dataset ml-100k            # CPU, small budget
    .venv/bin/python benchmarks/recommend.py --dataset beauty --epochs 3              # takes a GPU if present
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
# benchmarks/quantizers.py caches the same MiniLM text + 32-d SVD features here (reused when item ids match)
QUANTIZER_CACHE = Path(os.environ.get("HF_SIMCIT_BENCH_CACHE", "/tmp/hf_simcit_bench"))
sys.path.insert(0, str(ROOT))

DATA_DIRS = {"beauty": DATA / "amazon2014_beauty", "foursquare-nyc": DATA / "foursquare_nyc",
             "scientific": DATA / "amazon2018_scientific", "yelp": DATA / "yelp", "ml-100k": None}


# ------------------------------------------------------------------------------------------------ data
def load_data(name: str):
    from hf_simcit.data import load_prepared, prepare_dataset

    path = CACHE / "prepared" / name
    if (path / "stats.json").exists():
        return load_prepared(path)
    rec = prepare_dataset(name, data_dir=DATA_DIRS.get(name))
    rec.save_to_disk(path)
    return rec


def load_features(name: str, rec) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{modality: (features (n, d), present (n,))}``: MiniLM text, 32-d SVD collaborative, geo for POIs."""
    from hf_simcit.data import training_matrix
    from hf_simcit.features.collaborative import collaborative_embeddings
    from hf_simcit.features.text import encode_texts

    path = CACHE / "features" / f"{name}.npz"
    if path.exists():
        z = np.load(path)
        return {m: (z[f"{m}_x"], z[f"{m}_p"]) for m in z["modalities"]}
    shared = QUANTIZER_CACHE / f"{name}.npz"
    if shared.exists():
        z = np.load(shared, allow_pickle=False)
        if "item_ids" in z.files and list(z["item_ids"]) == list(rec.items["item_id"]):
            print(f"features: reusing {shared} (MiniLM text + SVD/geo, same item order)")
            return {m: (z[m], z[f"{m}_mask"]) for m in ("text", "cf", "geo") if m in z.files}
    feats = {"text": encode_texts(rec.items["text"], batch_size=128, max_length=64),
             "cf": collaborative_embeddings(training_matrix(rec), dim=32, method="svd")}
    if "latitude" in rec.items.column_names:
        from hf_simcit.features.geo import geo_features

        feats["geo"] = geo_features(rec.items["latitude"], rec.items["longitude"])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, modalities=np.array(list(feats)), **{f"{m}_x": x for m, (x, _) in feats.items()},
             **{f"{m}_p": p for m, (_, p) in feats.items()})
    return feats


# ------------------------------------------------------------------------------------------------ SIDs
def disambiguate(codes: np.ndarray) -> tuple[np.ndarray, float]:
    """TIGER's fix: append a level numbering the items that share a SID (0, 1, 2, ...); raw collision rate."""
    codes = np.asarray(codes, dtype=np.int64)
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    collision = float((counts[inverse] > 1).mean())
    extra = np.zeros(len(codes), dtype=np.int64)
    seen: dict[int, int] = {}
    for i, group in enumerate(inverse):
        extra[i] = seen.get(group, 0)
        seen[group] = extra[i] + 1
    return np.concatenate([codes, extra[:, None]], axis=1), collision


def rq_kmeans_codes(x: np.ndarray, levels: int, size: int, seed: int) -> np.ndarray:
    """Residual k-means (k-means++ init, scikit-learn), the RQ-KMeans tokenizer of GRID / semantic-id."""
    from sklearn.cluster import KMeans

    residual, codes = np.asarray(x, dtype=np.float64), []
    for level in range(levels):
        km = KMeans(size, n_init=1, random_state=seed + level).fit(residual)
        codes.append(km.labels_)
        residual = residual - km.cluster_centers_[km.labels_]
    return np.stack(codes, axis=1)


@torch.no_grad()
def reset_dead_codes(z: torch.Tensor, codebooks: torch.Tensor, generator: torch.Generator) -> int:
    """Replace codewords no item uses by random residuals of that level (in place); returns how many.

    Why: with a moving encoder, codewords that lose all their items get no gradient and the residual
    quantizer collapses onto a few codes (seen here within 20 epochs for both RQ-VAE and SimCIT).
    """
    residual, replaced = z, 0
    for level in range(codebooks.shape[0]):
        code = torch.cdist(residual, codebooks[level]).argmin(-1)
        unused = torch.ones(codebooks.shape[1], dtype=torch.bool)
        unused[code] = False
        if unused.any():
            pick = torch.randint(0, len(residual), (int(unused.sum()),), generator=generator)
            codebooks[level][unused] = residual[pick]
            replaced += int(unused.sum())
            code = torch.cdist(residual, codebooks[level]).argmin(-1)
        residual = residual - codebooks[level][code]
    return replaced


def random_codes(n: int, levels: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, size, size=(n, levels))


def rq_vae_codes(x: np.ndarray, levels: int, size: int, seed: int, epochs: int) -> np.ndarray:
    """TIGER-style RQ-VAE: MLP encoder -> residual VQ (straight-through, commitment 0.25) -> MLP decoder.

    Uses ``hf_simcit.quantizers`` when it provides an RQ-VAE, else this compact reference.
    """
    try:
        from hf_simcit.quantizers import rqvae_codes  # type: ignore[attr-defined]

        return np.asarray(rqvae_codes(x, num_levels=levels, codebook_size=size, seed=seed, epochs=epochs))
    except ImportError:
        pass
    from hf_simcit.quantizers.residual import residual_kmeans

    torch.manual_seed(seed)
    data = torch.as_tensor(x, dtype=torch.float32)
    d, latent = data.shape[1], 32
    encoder = torch.nn.Sequential(torch.nn.Linear(d, 256), torch.nn.SiLU(), torch.nn.Linear(256, 128),
                                  torch.nn.SiLU(), torch.nn.Linear(128, latent))
    decoder = torch.nn.Sequential(torch.nn.Linear(latent, 128), torch.nn.SiLU(), torch.nn.Linear(128, 256),
                                  torch.nn.SiLU(), torch.nn.Linear(256, d))
    with torch.no_grad():
        codebooks = torch.nn.Parameter(residual_kmeans(encoder(data), levels, size, seed=seed)[0].clone())
    params = [*encoder.parameters(), *decoder.parameters(), codebooks]
    optimizer = torch.optim.Adam(params, lr=1e-3)

    def quantize(z):
        residual, quantized, codes, commit = z, torch.zeros_like(z), [], 0.0
        for level in range(levels):
            dist = torch.cdist(residual, codebooks[level])
            code = dist.argmin(-1)
            chosen = codebooks[level][code]
            commit = commit + ((residual.detach() - chosen) ** 2).mean() + 0.25 * ((residual - chosen.detach()) ** 2).mean()
            quantized = quantized + chosen
            residual = residual - chosen.detach()
            codes.append(code)
        return z + (quantized - z).detach(), torch.stack(codes, -1), commit

    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        with torch.no_grad():
            reset_dead_codes(encoder(data), codebooks.data, generator)
        for idx in torch.randperm(len(data), generator=generator).split(256):
            z = encoder(data[idx])
            q, _, commit = quantize(z)
            loss = ((decoder(q) - data[idx]) ** 2).mean() + commit
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return quantize(encoder(data))[1].numpy()


def simcit_codes(feats: dict, modalities: list[str], levels: int, size: int, seed: int, epochs: int) -> np.ndarray:
    """Train ``SimCITQuantizer`` on its own loss (k-means initialised codebooks, AdamW 1e-3, wd 1e-3, batch
    256), then quantize its learned fused space with residual k-means.

    Why the final k-means re-fit: in this loop the trained codebooks collapse (3-8 codes used per level
    within 5 epochs on ML-100K, at lr 1e-3 and 2e-4 alike; the fused embeddings have norm ~0.02 while the
    diversity term spreads the codewords), which would make the comparison about collapse, not about the
    contrastive space. The raw collision of the trained codebooks is printed for the record.
    """
    from hf_simcit.configuration_simcit import SimCITConfig
    from hf_simcit.modeling_simcit import SimCITQuantizer
    from hf_simcit.quantizers.residual import residual_kmeans

    torch.manual_seed(seed)
    x = {m: torch.as_tensor(feats[m][0]) for m in modalities}
    p = {m: torch.as_tensor(feats[m][1]) for m in modalities}
    config = SimCITConfig(modality_names=modalities, modality_dims=[x[m].shape[1] for m in modalities],
                          num_levels=levels, codebook_size=size)
    model = SimCITQuantizer(config)
    model.set_codebooks(residual_kmeans(model.fused_embeddings(x, p), levels, size, seed=seed)[0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
    generator = torch.Generator().manual_seed(seed)
    n = len(next(iter(x.values())))
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=generator).split(256):
            if len(idx) < 2:
                continue
            out = model({m: v[idx] for m, v in x.items()}, {m: v[idx] for m, v in p.items()})
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
    model.eval()
    trained = model.encode(x, p).numpy()
    print(f"[simcit] trained codebooks: raw collision {disambiguate(trained)[1]:.3f}, codes used per level "
          f"{[len(np.unique(trained[:, level])) for level in range(levels)]}; re-fitting by residual k-means")
    return rq_kmeans_codes(model.fused_embeddings(x, p).numpy(), levels, size, seed)


# ------------------------------------------------------------------------------------------------ runs
def run_generator(name: str, codes: np.ndarray, rec, args, workdir: Path) -> dict:
    from hf_simcit.recommender.modeling import RecommenderModelArguments
    from hf_simcit.recommender.sid import SIDTable
    from hf_simcit.training.evaluation import evaluate_recommender
    from hf_simcit.training.recommender import (
        RecommenderDataArguments,
        RecommenderTrainingArguments,
        train_recommender,
    )

    table = SIDTable(codes, rec.items["item_id"])
    model_args = RecommenderModelArguments(
        model_name_or_path=args.model, tiny_hidden_size=args.hidden, tiny_num_layers=args.layers,
        tiny_num_heads=args.heads, tiny_intermediate_size=2 * args.hidden)
    data_args = RecommenderDataArguments(eval_max_examples=args.eval_examples)
    train_args = RecommenderTrainingArguments(
        output_dir=str(workdir / name), checkpoint_dir=str(workdir / f"{name}_checkpoints"),
        seed=args.seed, learning_rate=args.lr, num_train_epochs=args.epochs, max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size, warmup_ratio=0.02, eval_steps=args.eval_steps,
        save_steps=0, logging_steps=100, eval_num_beams=args.beams, eval_batch_size=64,
        resume_from_checkpoint="no")
    start = time.time()
    result = train_recommender(model_args, data_args, train_args, splits=rec.splits, sid_source=table)
    train_time = time.time() - start
    best = result["recommender"]
    from hf_simcit.recommender.modeling import load_recommender

    best = load_recommender(train_args.output_dir, device=best.model.device)
    start = time.time()
    test = evaluate_recommender(best.model, best.tokenizer, best.item_token_ids, rec.splits["test"],
                                num_beams=args.beams, ks=(5, 10), batch_size=64, desc=f"test {name}",
                                max_examples=args.test_examples)
    return {"test": test, "validation": result["best_metrics"], "train_s": train_time,
            "eval_s": time.time() - start, "steps": result["final_step"], "best_step": result["best_step"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k", choices=sorted(DATA_DIRS))
    parser.add_argument("--methods", default="simcit,rqvae,rqkmeans,random,sasrec")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codebook-size", type=int, default=None, help="default: 32 (ml-100k) / 256")
    parser.add_argument("--quantizer-epochs", type=int, default=60)
    parser.add_argument("--model", default=None, help="LLM path/name (default: tiny Llama from a config)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--eval-steps", type=int, default=0)
    parser.add_argument("--eval-examples", type=int, default=None, help="validation examples (default: all)")
    parser.add_argument("--test-examples", type=int, default=None,
                        help="test histories evaluated (default: all; the first N users otherwise)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.codebook_size or (32 if args.dataset == "ml-100k" else 256)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    command = "python benchmarks/recommend.py " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.time()

    rec = load_data(args.dataset)
    feats = load_features(args.dataset, rec)
    modalities = ["text", "cf"] + (["geo"] if "geo" in feats else [])
    n = rec.num_items if hasattr(rec, "num_items") else len(rec.items)
    print(f"{args.dataset}: {n} items, {len(rec.splits['train'])} training examples, "
          f"{len(rec.splits['test'])} test users; modalities {modalities}; device {device}")

    workdir = CACHE / "runs" / args.dataset
    rows, sid_stats = {}, {}
    for method in methods:
        if method == "sasrec":
            continue
        t0 = time.time()
        if method == "random":
            raw = random_codes(n, args.levels, size, args.seed)
        elif method == "rqkmeans":
            raw = rq_kmeans_codes(feats["text"][0], args.levels, size, args.seed)
        elif method == "rqvae":
            raw = rq_vae_codes(feats["text"][0], args.levels, size, args.seed, args.quantizer_epochs)
        elif method == "simcit":
            raw = simcit_codes(feats, modalities, args.levels, size, args.seed, args.quantizer_epochs)
        else:
            raise SystemExit(f"unknown method {method}")
        codes, collision = disambiguate(raw)
        sid_stats[method] = {"collision": collision, "levels": codes.shape[1], "sid_s": time.time() - t0,
                             "usage": [len(np.unique(raw[:, level])) / size for level in range(args.levels)]}
        print(f"[{method}] SIDs in {time.time() - t0:.1f}s: raw collision {collision:.3f}, "
              f"{codes.shape[1]} levels (max disambiguation index {codes[:, -1].max()})", flush=True)
        rows[method] = run_generator(method, codes, rec, args, workdir)
        print(f"[{method}] test {json.dumps({k: round(v, 4) for k, v in rows[method]['test'].items() if isinstance(v, float)})}"
              f" invalid={rows[method]['test']['invalid_items']}", flush=True)

    if "sasrec" in methods:
        from hf_simcit.baselines.sasrec import SASRecConfig, train_sasrec

        t0 = time.time()
        epochs = max(1, int(round(args.epochs))) if args.max_steps <= 0 else 1000
        config = SASRecConfig(num_items=n, max_len=20, hidden_size=64, num_layers=2, num_heads=2, dropout=0.2,
                              batch_size=args.batch_size, num_epochs=max(epochs, 1), patience=10 ** 6,
                              seed=args.seed, eval_max_examples=args.eval_examples)
        steps = args.max_steps if args.max_steps > 0 else None
        splits = rec.splits
        if args.test_examples:
            splits = {**rec.splits, "test": rec.splits["test"].select(range(min(args.test_examples,
                                                                                len(rec.splits["test"]))))}
        _, res = train_sasrec(splits, config, device=device, max_steps=steps)
        rows["sasrec"] = {"test": {**res["test"], "invalid_items": 0}, "train_s": time.time() - t0,
                          "eval_s": 0.0, "steps": res["steps"]}
        print(f"[sasrec] test {json.dumps({k: round(v, 4) for k, v in res['test'].items() if isinstance(v, float)})}")

    header = "| method | R@5 | N@5 | R@10 | N@10 | invalid | raw collision | SID levels | steps | train s | test eval s |"
    lines = [header, "|" + "---|" * 11]
    names = {"simcit": "SimCIT SIDs", "rqvae": "RQ-VAE SIDs", "rqkmeans": "RQ-KMeans SIDs", "random": "random SIDs",
             "sasrec": "SASRec"}
    for method, row in rows.items():
        t, s = row["test"], sid_stats.get(method, {})
        lines.append(
            f"| {names.get(method, method)} | {t['recall@5']:.4f} | {t['ndcg@5']:.4f} | {t['recall@10']:.4f} | "
            f"{t['ndcg@10']:.4f} | {t['invalid_items']} | "
            f"{format(s['collision'], '.3f') if 'collision' in s else '-'} | "
            f"{s.get('levels', '-')} | {row['steps']} | {row['train_s']:.0f} | {row['eval_s']:.0f} |")
    table = "\n".join(lines)
    print(table)
    settings = (f"data {args.dataset} ({n} items, {len(rec.splits['train'])} training examples, "
                f"{len(rec.splits['test'])} test users (evaluated: {args.test_examples or 'all'}), leave-one-out, history <= 20, full ranking); SIDs: "
                f"{args.levels} levels x {size} codes + a disambiguation level, quantizer epochs "
                f"{args.quantizer_epochs}, SimCIT modalities {modalities} (quantizer trained on its contrastive loss, codebooks re-fit by residual k-means on its fused space), RQ-VAE (dead-code reset per epoch)/RQ-KMeans on MiniLM text; "
                f"generator: {args.model or f'Llama from config (hidden {args.hidden}, {args.layers} layers, {args.heads} heads)'}"
                f", full fine-tune, plain prompt, lr {args.lr}, batch {args.batch_size}, epochs {args.epochs}, "
                f"max_steps {args.max_steps}, best-of validation every {args.eval_steps or 'end'} steps, beam "
                f"{args.beams}; SASRec: hidden 64, 2 layers, full-softmax CE, same examples and batch size, "
                f"{'same number of optimizer steps' if args.max_steps > 0 else 'same number of epochs'}; seed {args.seed}; threads {torch.get_num_threads()}; device {device}")
    print(settings)
    if not args.no_results:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
            f.write(f"\n## Generative recommender: SID tokenizers side by side ({args.dataset})\n\n"
                    f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: "
                    f"{'GPU ' + torch.cuda.get_device_name() if device == 'cuda' else f'{os.cpu_count()} CPU cores'}"
                    f" ({platform.machine()}), total wall time {time.time() - started:.0f} s.\n"
                    f"Command: `{command}`\n\nSettings: {settings}.\n\nTest split:\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
