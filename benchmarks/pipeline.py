"""Benchmark: the one-command pipeline end to end (what `make demo` runs), time per stage and the metrics.

Runs ``hf-simcit run RECIPE`` into a fresh run folder, then prints and appends to ``benchmarks/RESULTS.md``
the wall time of every stage (from ``RUN/pipeline.json``), the test metrics of the generative recommender
and of SASRec on the same split, and the SID statistics.

    .venv/bin/python benchmarks/pipeline.py                                  # ML-100K, the demo recipe
    .venv/bin/python benchmarks/pipeline.py --recipe recipes/beauty/pipeline.yaml --set recommender.max_steps=1000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "ml-100k" / "pipeline.yaml"))
    parser.add_argument("--run-dir", default="/tmp/hf_simcit_bench_pipeline")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)

    from hf_simcit.commands.run import _value
    from hf_simcit.pipeline import load_pipeline, run_pipeline

    shutil.rmtree(args.run_dir, ignore_errors=True)  # a cold run: no stage is skipped
    overrides = {key: _value(value) for key, _, value in (item.partition("=") for item in args.settings)}
    overrides["run_dir"] = args.run_dir
    start = time.perf_counter()
    result = run_pipeline(load_pipeline(args.recipe, overrides))
    total = time.perf_counter() - start
    run = Path(result["run_dir"])
    stages = result["stages"]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    sasrec_path = run / "baselines" / "sasrec.json"
    sasrec = json.loads(sasrec_path.read_text()) if sasrec_path.is_file() else None
    sids = json.loads((run / "quantizer" / "sid_assignment.json").read_text())
    stats = json.loads((run / "data" / "stats.json").read_text())

    lines = ["| stage | seconds | share |", "|---|---|---|"]
    for stage, entry in stages.items():
        if "seconds" in entry:
            lines.append(f"| {stage} | {entry['seconds']:.1f} | {entry['seconds'] / total:.0%} |")
    lines.append(f"| **total** | **{total:.1f}** | 100% |")
    keys = ["recall@5", "ndcg@5", "recall@10", "ndcg@10"]
    table = ["| system | " + " | ".join(k.replace("recall", "R").replace("ndcg", "N") for k in keys)
             + " | invalid items |", "|---" * (len(keys) + 2) + "|",
             "| SimCIT SIDs + generator | " + " | ".join(f"{metrics[k]:.4f}" for k in keys)
             + f" | {metrics['invalid_items']} |"]
    if sasrec is not None:
        table.append("| SASRec (same split, same steps) | " + " | ".join(f"{sasrec[k]:.4f}" for k in keys) + " | - |")
    recipe = os.path.relpath(args.recipe, ROOT)
    threads = os.environ.get("OMP_NUM_THREADS")
    command = (f"OMP_NUM_THREADS={threads} " if threads else "") + "python benchmarks/pipeline.py" + (f" --recipe {recipe}" if "ml-100k" not in recipe else "") + "".join(
        f" --set {s}" for s in args.settings)
    section = "\n".join([
        f"## Pipeline end to end: `hf-simcit run {recipe}` "
        f"({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC)",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), shared with other jobs unless said "
        f"otherwise. Command: `{command}`. Total {total:.0f} s ({total / 60:.1f} min), cold run folder "
        "(the feature cache may be warm).",
        f"Data: {stats.get('dataset')}, {stats.get('users'):,} users, {stats.get('items'):,} items, "
        f"{stats.get('interactions'):,} interactions; test metrics on {metrics['num_examples']} users, full "
        f"ranking. SIDs: {sids['num_levels']} levels {sids['codebook_sizes']}, raw collision "
        f"{sids['raw_collision_rate']:.2%}, usage {' / '.join(f'{u:.0%}' for u in sids['usage'])}, unique "
        f"{sids['unique_share']:.0%}.",
        "",
        *lines,
        "",
        *table,
        "",
    ])
    print(section)
    if not args.no_results:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as handle:
            handle.write("\n" + section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
