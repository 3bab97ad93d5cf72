"""Benchmark: the one-command pipeline end to end (what `make demo` runs), time per stage and the metrics.

Runs ``hf-simcit run RECIPE`` into a fresh run folder (once per ``--seeds`` entry, every trained stage
seeded), then prints and appends to ``benchmarks/RESULTS.md`` the wall time of every stage (from
``RUN/pipeline.json``), the test metrics of the generative recommender, SASRec and the non-learned rows on the
same split (median, min and max over the seeds), and the SID statistics; writes
``benchmarks/results/pipeline-<data>.json`` (``{date, command, wall_s, seeds, rows: {generator | sasrec |
history | popularity: {test: {...median}, min, max, per_seed}}}``).

    .venv/bin/python benchmarks/pipeline.py --seeds 0,1,2                    # ML-100K, the demo recipe
    .venv/bin/python benchmarks/pipeline.py --recipe recipes/beauty/pipeline.yaml --set recommender.max_steps=1000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import reporting

ROOT = reporting.ROOT
sys.path.insert(0, str(ROOT))


KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")
ROWS = {"generator": "SimCIT SIDs + generator", "sasrec": "SASRec (same split, own early stopping)",
        "history": "history (no training)", "popularity": "popularity (no training)"}


def run_once(recipe: str, run_dir: str, settings: list[str], seed: int | None) -> dict:
    """One cold ``hf-simcit run`` with every trained stage seeded by ``seed``; its metrics and stage times."""
    from hf_simcit.commands.run import _value
    from hf_simcit.pipeline import load_pipeline, run_pipeline

    shutil.rmtree(run_dir, ignore_errors=True)  # a cold run: no stage is skipped
    overrides = {key: _value(value) for key, _, value in (item.partition("=") for item in settings)}
    if seed is not None:
        overrides |= {"lgmd.seed": seed, "quantizer.seed": seed, "recommender.seed": seed}
    overrides["run_dir"] = run_dir
    start = time.perf_counter()
    result = run_pipeline(load_pipeline(recipe, overrides))
    total = time.perf_counter() - start
    run = Path(result["run_dir"])

    def read(path: Path):
        return json.loads(path.read_text()) if path.is_file() else None

    rows = {"generator": read(run / "eval" / "metrics.json")}
    for name in ("sasrec", "history", "popularity"):
        found = read(run / "baselines" / f"{name}.json")
        if found is not None:
            rows[name] = found
    log = read(run / "recommender" / "train_log.json") or {}
    return {"seed": seed, "total_s": total, "stages": result["stages"], "rows": rows, "train_log": log,
            "sids": read(run / "quantizer" / "sid_assignment.json"), "stats": read(run / "data" / "stats.json")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "ml-100k" / "pipeline.yaml"))
    parser.add_argument("--run-dir", default="/tmp/hf_simcit_bench_pipeline")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds (lgmd, quantizer, recommender and SASRec); default: the recipes'")
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--results-name", default=None,
                        help="JSON file name in benchmarks/results (default pipeline-<dataset>, the checked demo "
                             "figures; name a variant's own)")
    args = parser.parse_args(argv)

    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [None]
    load_start = os.getloadavg()
    runs = [run_once(args.recipe, args.run_dir, args.settings, seed) for seed in seeds]
    first = runs[0]
    lines = ["| stage | seconds (" + ", ".join(f"seed {r['seed']}" for r in runs) + ") |", "|---|---|"]
    for stage, entry in first["stages"].items():
        if "seconds" in entry:
            lines.append(f"| {stage} | " + ", ".join(f"{r['stages'][stage]['seconds']:.1f}" for r in runs) + " |")
    lines.append("| **total** | " + ", ".join(f"**{r['total_s']:.1f}**" for r in runs) + " |")
    spread = len(runs) > 1
    header = "| system | " + " | ".join(k.replace("recall", "R").replace("ndcg", "N") for k in KEYS)
    table = [header + (" | R@10 per seed |" if spread else " |"), "|---" * (len(KEYS) + 1 + spread) + "|"]
    summary: dict[str, dict] = {}
    for name, label in ROWS.items():
        values = {k: [r["rows"][name][k] for r in runs if name in r["rows"]] for k in KEYS}
        if not values[KEYS[0]]:
            continue
        stats = {k: (min(v), float(statistics.median(v)), max(v)) for k, v in values.items()}
        summary[name] = {"test": {k: stats[k][1] for k in KEYS}, "min": {k: stats[k][0] for k in KEYS},
                         "max": {k: stats[k][2] for k in KEYS}, "per_seed": values}
        cells = [f"{s[1]:.4f} ({s[0]:.4f}-{s[2]:.4f})" if spread else f"{s[1]:.4f}" for s in stats.values()]
        table.append(f"| {label} | " + " | ".join(cells)
                     + (" | " + ", ".join(f"{v:.4f}" for v in values["recall@10"]) + " |" if spread else " |"))
    ratio = {r["seed"]: r["rows"]["generator"]["recall@10"] / r["rows"]["popularity"]["recall@10"]
             for r in runs if "popularity" in r["rows"] and r["rows"]["popularity"]["recall@10"] > 0}
    log = first["train_log"]
    recipe = os.path.relpath(args.recipe, ROOT)
    threads = os.environ.get("OMP_NUM_THREADS")
    command = ((f"OMP_NUM_THREADS={threads} " if threads else "") + "python benchmarks/pipeline.py"
               + (f" --recipe {recipe}" if "ml-100k" not in recipe else "")
               + (f" --seeds {args.seeds}" if args.seeds else "") + "".join(f" --set {s}" for s in args.settings)
               + (f" --results-name {args.results_name}" if args.results_name else ""))
    stats, sids, metrics = first["stats"], first["sids"], first["rows"]["generator"]
    wall = sum(r["total_s"] for r in runs)
    load_end = os.getloadavg()
    section = "\n".join([
        f"## Pipeline end to end: `hf-simcit run {recipe}` "
        f"({reporting.utc_minute()})",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), shared with other jobs: load average "
        f"{load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end. Command: `{command}`. "
        f"{len(runs)} cold run(s), {wall:.0f} s in all; the feature cache may be warm.",
        f"Data: {stats.get('dataset')}, {stats.get('users'):,} users, {stats.get('items'):,} items, "
        f"{stats.get('interactions'):,} interactions; test metrics on {metrics['num_examples']} users, full "
        f"ranking. SIDs (first seed): {sids['num_levels']} levels {sids['codebook_sizes']}, raw collision "
        f"{sids['raw_collision_rate']:.2%}, usage {' / '.join(f'{u:.0%}' for u in sids['usage'])}. Generator "
        f"(first seed): objective {log.get('objective')}, {log.get('token_positions_per_epoch')} token positions "
        f"per epoch, {log.get('epochs')} epochs, best at epoch {log.get('best_epoch')}, "
        f"{log.get('train_seconds', 0):.0f} s of training.",
        "",
        *lines,
        "",
        ("Median (min-max) over seeds " + ", ".join(map(str, seeds)) + ":" if spread else "Test split:"),
        "",
        *table,
        "",
        "Generator R@10 / popularity R@10 per seed: " + ", ".join(f"{v:.2f}" for v in ratio.values()) + ".",
        "",
    ])
    print(section)
    if not args.no_results:
        reporting.append_results("\n" + section)
        name = args.results_name or f"pipeline-{stats.get('dataset')}"
        out = {"date": reporting.utc_iso(), "command": command,
               "wall_s": round(wall, 1), "seeds": seeds, "rows": summary,
               "generator_over_popularity_recall@10": list(ratio.values()),
               "total_s_per_seed": [round(r["total_s"], 1) for r in runs]}
        reporting.write_json(name, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
