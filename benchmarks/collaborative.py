"""Collaborative modality benchmark: which item embedding finds the next item?

For every user with a validation item, rank all items by the cosine of their embedding to the embedding of the
user's last training item (the item just before the validation item; the item itself excluded) and score the
validation item: Recall@10 and NDCG@10. No model is trained, so this isolates what an embedding says about
"what comes next", the signal the SIDs have to carry into the generator. Rows: the text embedding (MiniLM), the
collaborative methods of :func:`hf_simcit.features.collaborative_embeddings` (``svd`` of the user x item
matrix, ``sequential`` SPPMI-SVD of the co-occurrence within a window), with ``--lgmd`` the pipeline's LGMD
stage (``recipes/<data>/lgmd.yaml``) on either matrix (``matrix: interactions`` / ``sequential``), and the
text + cf concatenations the baseline tokenizers quantize. Every embedding comes from training interactions only.

    .venv/bin/python benchmarks/collaborative.py --lgmd               # Beauty; appends to benchmarks/RESULTS.md
    .venv/bin/python benchmarks/collaborative.py --dataset ml-100k --no-write
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recommend as rb  # noqa: E402  (the cached split and text features of the recommender benchmark)
import reporting  # noqa: E402

from hf_simcit.baselines.knn import content_knn_rankings  # noqa: E402
from hf_simcit.data import training_cooccurrence, training_matrix  # noqa: E402
from hf_simcit.features import collaborative_embeddings  # noqa: E402
from hf_simcit.metrics.ranking import ranking_metrics  # noqa: E402


def next_item_metrics(embeddings: np.ndarray, previous: np.ndarray, target: np.ndarray, k: int = 10) -> dict:
    """Recall@k / NDCG@k of ``target`` when all items are ranked by cosine to ``previous`` (itself excluded): the
    last-item kNN of :mod:`hf_simcit.baselines.knn` with a one-item history."""
    rankings = content_knn_rankings(embeddings, [[int(p)] for p in previous], min(k, len(embeddings) - 1), last=1)
    metrics = ranking_metrics(rankings, torch.as_tensor(target), (k,))
    return {f"recall@{k}": metrics[f"recall@{k}"], f"ndcg@{k}": metrics[f"ndcg@{k}"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--dim", type=int, default=32, help="collaborative embedding size (as recommend.py)")
    parser.add_argument("--windows", default="1,3,5", help="co-occurrence windows of the sequential rows")
    parser.add_argument("--lgmd", action="store_true",
                        help="add the lgmd stage of recipes/<data>/lgmd.yaml on both matrices (minutes each)")
    parser.add_argument("--no-write", action="store_true", help="print only: no RESULTS.md, no JSON")
    args = parser.parse_args()

    rec = rb.load_data(args.dataset)
    text = rb.load_features(args.dataset, rec).features["text"].numpy()
    pairs = np.array([(items[-3], items[-2]) for items in rec.sequences["items"] if len(items) >= 3])
    previous, target = pairs[:, 0], pairs[:, 1]

    embeddings: dict[str, tuple[np.ndarray, float]] = {"text (MiniLM)": (text, float("nan"))}
    start = time.perf_counter()
    svd, _ = collaborative_embeddings(training_matrix(rec), args.dim, "svd")
    embeddings["cf svd (user x item)"] = (svd, time.perf_counter() - start)
    windows = [int(w) for w in args.windows.split(",")]
    for window in windows:
        start = time.perf_counter()
        seq, _ = collaborative_embeddings(training_cooccurrence(rec, window), args.dim, "sequential")
        embeddings[f"cf sequential, window {window}"] = (seq, time.perf_counter() - start)
    concatenated = ["cf svd (user x item)", f"cf sequential, window {rb.CF_WINDOW}"]
    if args.lgmd:
        for matrix in ("interactions", "sequential"):
            start = time.perf_counter()
            name = f"cf lgmd ({'user x item' if matrix == 'interactions' else f'sequential, window {rb.CF_WINDOW}'})"
            # the pipeline's LGMD stage on that matrix; zero rows where an item has no training interaction
            embeddings[name] = (rb.lgmd_item_embeddings(args.dataset, rec, matrix)[0], time.perf_counter() - start)
            concatenated.append(name)
    for name in concatenated:
        embeddings[f"text + {name}"] = (np.concatenate([text, embeddings[name][0]], axis=1), float("nan"))

    rows = {name: next_item_metrics(x, previous, target) | {"seconds": None if np.isnan(seconds) else seconds}
            for name, (x, seconds) in embeddings.items()}
    lines = ["| embedding | R@10 | N@10 | seconds |", "|---|---|---|---|"]
    for name, r in rows.items():
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        lines.append(f"| {name} | {r['recall@10']:.4f} | {r['ndcg@10']:.4f} | {seconds} |")
    table = "\n".join(lines)
    print(table)
    if args.no_write:
        return 0
    command = reporting.command_line("python benchmarks/collaborative.py")
    date = datetime.now(timezone.utc)
    out = {"date": reporting.utc_iso(date), "command": command, "dataset": args.dataset,
           "users": len(pairs), "dim": args.dim, "rows": rows}
    reporting.write_json(f"collaborative-{args.dataset}", out)
    reporting.append_results(
        f"\n## Collaborative modality: which embedding finds the next item? ({args.dataset})\n\n"
        f"Date: {reporting.utc_minute(date)}. Command: `{command}`. {len(pairs)} users: every item "
        f"ranked by cosine to the user's last training item, the validation item scored (no model "
        f"trained); {args.dim}-d cf from training interactions only; seconds = computing the embedding "
        f"(1 process, 2 shared cores).\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
