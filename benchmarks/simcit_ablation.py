"""Benchmark: SimCIT's departures from the reference, one at a time, on Beauty (issue #13).

Every row trains the SimCIT quantizer (``train_quantizer`` with ``recipes/<dataset>/quantizer.yaml`` plus the
row's overrides) on the cached MiniLM text + collaborative features of ``benchmarks/recommend.py`` and reports
what is cheap for every row: the raw collision rate (items whose raw SID another item holds) and the codebook
usage per level, of the codes the trained quantizer itself gives (no re-fit unless the row asks for one).
Downstream test NDCG@10 / Recall@10 need a Beauty generator per row (``--downstream NAME,...``, trained with
``recommend.py``'s ``run_generator``, 30-50 min each on one shared CPU core); rows without one carry
``null`` test values and ``test_missing`` saying why.

Every row sees Beauty's recipe cf (:data:`RECIPE_CF`, the LGMD of the sequential SPPMI that
``recipes/beauty/lgmd.yaml`` fits) unless it is a modality row, so ``default`` is the recipe itself. Rows:
``default`` and the reference settings; each departure alone, removed from the default and added to the
reference; the default with a k-means re-fit (``codebook_refit`` periodic / final); modalities (text, text + cf
from the user x item SVD, its LGMD, with attractive graphs, and the SPPMI-SVD of ``recommend.py --cf sequential``);
contrastive temperature; the recipe's 800 quantizer steps against 400; diversity weight 2; 3 x 256 vs 4 x 64 codes.
A missing LGMD cf is fitted into ``--lgmd-cache`` first (40-100 s, once).

    nice -n 10 .venv/bin/python benchmarks/simcit_ablation.py --dataset beauty --threads 1
    nice -n 10 .venv/bin/python benchmarks/simcit_ablation.py --rows default "refit final (k-means once after training)" --downstream default
    nice -n 10 .venv/bin/python benchmarks/simcit_ablation.py --rows "modalities text + cf (LGMD)" "modalities text + cf (LGMD, attractive graphs)"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recommend as rb  # noqa: E402  (benchmarks/recommend.py: data, features, tokenizers, generator runs)
import reporting  # noqa: E402

ROOT = reporting.ROOT
# the reference (alibaba/SimCIT) settings the recipe departs from; every departure is one of these keys
REFERENCE = {"codebook_init": "uniform", "init_latent_rms": None, "symmetric_loss": False,
             "gumbel_temperature": 0.2, "gumbel_temperature_end": None, "codebook_refit": "none",
             "commitment_weight": 0.0, "codebook_loss_weight": 0.0, "codebook_learning_rate": None,
             "dead_code_restart_steps": 0, "contrastive_temperature": 0.07}


# each departure of the recipe from the reference, as the settings that make it
DEPARTURES = {"k-means init (RMS 1)": ("codebook_init", "init_latent_rms"), "symmetric InfoNCE": ("symmetric_loss",),
              "Gumbel 10 -> 0.5": ("gumbel_temperature", "gumbel_temperature_end"),
              "codebook loss": ("codebook_loss_weight",), "codebook learning rate": ("codebook_learning_rate",),
              "dead-code restarts": ("dead_code_restart_steps",),
              "contrastive temperature 0.3": ("contrastive_temperature",)}


# Beauty's recipe cf (``recommend.py --cf lgmd-sequential``): the cf of every row that does not vary the modalities
RECIPE_CF = "lgmd-sequential"


def ablation_rows(recipe) -> list[tuple[str, dict, str | None]]:
    """``(name, overrides of the recipe, cf source)`` for every row, most telling first; the cf source is a
    ``recommend.py --cf`` value (None: no cf modality)."""
    rows = [("default", {}, RECIPE_CF),
            ("refit final (k-means once after training)", {"codebook_refit": "final"}, RECIPE_CF),
            ("refit periodic (k-means every 50 steps and last)", {"codebook_refit": "periodic"}, RECIPE_CF),
            ("reference", dict(REFERENCE), RECIPE_CF)]
    for name, keys in DEPARTURES.items():
        rows.append((f"default without {name}", {k: REFERENCE[k] for k in keys}, RECIPE_CF))
    for name, keys in DEPARTURES.items():
        rows.append((f"reference + {name}", REFERENCE | {k: getattr(recipe, k) for k in keys}, RECIPE_CF))
    rows += [("modalities text", {"modalities": ["text"]}, None),
             ("modalities text + cf (SVD)", {}, "svd"),
             ("modalities text + cf (LGMD)", {}, "lgmd"),
             ("modalities text + cf (LGMD, attractive graphs)", {}, "lgmd-attractive"),
             ("modalities text + cf (sequential)", {}, "sequential"),
             ("contrastive temperature 0.03", {"contrastive_temperature": 0.03}, RECIPE_CF),
             ("contrastive temperature 0.2", {"contrastive_temperature": 0.2}, RECIPE_CF),
             ("contrastive temperature 0.5", {"contrastive_temperature": 0.5}, RECIPE_CF),
             # the recipe trains 800 steps (400 until 2026-12-06)
             ("400 quantizer steps", {"max_steps": 400, "gumbel_anneal_steps": 400}, RECIPE_CF),
             ("diversity weight 2", {"codeword_diversity_weight": 2.0}, RECIPE_CF),
             ("4 x 64 codes", {"num_levels": 4, "codebook_size": 64}, RECIPE_CF)]
    return rows


def row_folder(name: str, seed: int) -> str:
    """The folder of one row and seed: the whole name, so that rows sharing a long prefix (or one row's seeds)
    never share a folder, where a later row overwrites an earlier one's saved quantizer and checkpoints."""
    return f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}-seed{seed}"


def generator_options(args: argparse.Namespace) -> argparse.Namespace:
    """A downstream row's generator options: ``recommend.py``'s own parser with this run's protocol, so the
    ablation's generators train exactly as the tokenizer comparison's (and pick up its new options)."""
    return rb.build_parser().parse_args([
        "--dataset", args.dataset, "--seed", str(args.seed), "--epochs", str(args.epochs),
        "--patience", str(args.patience), "--patience-window", str(args.patience_window),
        "--eval-examples", str(args.eval_examples), "--batch-size", str(args.batch_size),
        "--eval-batch-size", str(args.eval_batch_size), "--lr", str(args.lr), "--dropout", str(args.dropout)])


def run_row(name: str, overrides: dict, feats, recipe, workdir: Path) -> tuple[dict, object, float]:
    """Train one quantizer; returns (SemanticIDAssignment statistics, assignment, seconds)."""
    from dataclasses import replace

    from hf_simcit.training.quantizer import train_quantizer

    slug = row_folder(name, recipe.seed)
    args = replace(recipe, output_dir=str(workdir / slug), checkpoint_dir=str(workdir / f"{slug}_ck"), **overrides)
    sub = feats.select(args.modalities or feats.modalities)
    start = time.time()
    model = train_quantizer(args, sub).model.eval()
    seconds = time.time() - start
    assignment = rb.assign_sids(model, sub, args.seed)
    settings = {k: getattr(args, k) for k in (*REFERENCE, "modalities", "num_levels",
                                              "codebook_size", "max_steps", "seed")}
    settings["codes"] = "learned" if args.codebook_refit == "none" else f"k-means re-fit ({args.codebook_refit})"
    return settings, assignment, seconds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="beauty", choices=["beauty"])
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW", help="row names (default: all; names hold "
                   "commas and spaces, so quote each)")
    p.add_argument("--downstream", nargs="+", default=[], metavar="ROW", help="rows that also train a generator")
    p.add_argument("--lgmd-cache", default=str(rb.CACHE), help="folder with beauty-lgmd[-attractive|-sequential].npz")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--epochs", type=float, default=40.0, help="the generators' epoch cap (recommend.py's protocol)")
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--patience-window", type=int, default=3)
    p.add_argument("--eval-examples", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--no-results", action="store_true")
    p.add_argument("--finalize", action="store_true",
                   help="write the JSON and RESULTS table from the rows a stopped run finished (no training)")
    return p


def seed_sources(path: str, name: str) -> list[tuple[dict, None, dict]]:
    """Row ``name``'s generator runs in the ablation file ``path`` as ``recommend.py --seeds-summary``
    sources, one per seed: ``(results file with its "simcit" row, None, the recommend.py options that
    generator trained with)``. The ablation trains its generators with those options
    (:func:`generator_options`) on the row's cf, so a row's seeds summarise beside ``recommend.py``'s runs."""
    rows = [r for r in json.loads(Path(path).read_text())["rows"] if r["name"] == name]
    if not rows:
        raise SystemExit(f"{path}: no ablation row named {name!r}")
    sources = []
    for run in seed_runs(rows[0]):
        if not run.get("generator"):   # a seed whose quantizer was measured without a generator
            continue
        generator = run["generator"]
        argv = shlex.split(run["command"])
        script = next(i for i, a in enumerate(argv) if a.endswith("simcit_ablation.py"))
        ablation = build_parser().parse_args(argv[script + 1:])
        option = vars(generator_options(ablation)) | {"cf": rows[0]["settings"]["cf"]}
        source = {"command": run["command"], "rows": {"simcit": {
            "test": run["test"], **{k: generator[k] for k in ("epochs", "best_epoch", "train_s")}}}}
        sources.append((source, None, option))
    if not sources:
        raise SystemExit(f"{path}: ablation row {name!r} trained no generator (--downstream)")
    return sources


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python benchmarks/simcit_ablation.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    load_start, started = os.getloadavg(), time.time()
    workdir = rb.CACHE / "ablation" / args.dataset
    recipe = rb.quantizer_recipe(args.dataset, argparse.Namespace(seed=args.seed, levels=None, codebook_size=None,
                                                                   simcit_steps=None), workdir)
    rows_spec = ablation_rows(recipe)
    names = [r[0] for r in rows_spec]
    wanted = args.rows or names
    downstream = args.downstream
    unknown = [n for n in wanted + downstream if n not in names]
    if unknown:
        print(f"error: unknown row {unknown[0]!r}; rows: {names}", file=sys.stderr)
        return 2
    rec = rb.load_data(args.dataset)
    row_features = {}   # one feature table per cf source (an LGMD cf is fitted into --lgmd-cache when missing)

    def features_with(cf: str | None):   # the text-only row selects from the SVD table: no second load
        source = cf or "svd"
        if source not in row_features:
            row_features[source] = rb.load_features(args.dataset, rec, source, Path(args.lgmd_cache))
        return row_features[source]

    partial = workdir / "partial.json"
    done = {r["name"]: r for r in json.loads(partial.read_text())} if args.finalize and partial.exists() else {}
    results = []
    for name, overrides, cf in rows_spec:
        if name not in wanted:
            continue
        if args.finalize:   # write what an earlier, stopped run finished; the rest is said to be missing
            results.append(done.get(name) or {
                "name": name, "settings": {"overrides": overrides, "cf": cf}, "raw_collision": None,
                "usage": None, "test": {"ndcg@10": None, "recall@10": None},
                "missing": "not run: the session's time ran out before this row"})
            continue
        row_feats = features_with(cf)
        settings, assignment, seconds = run_row(name, overrides, row_feats, recipe, workdir)
        settings["cf"] = None if "cf" not in (settings["modalities"] or row_feats.modalities) else (
            "svd-32" if cf == "svd" else cf)
        raw = assignment.raw_statistics
        row = {"name": name, "settings": settings, "raw_collision": float(raw["collision_rate"]),
               "usage": [float(u) for u in raw["usage"]], "perplexity": [float(x) for x in raw["perplexity"]],
               "train_s": round(seconds, 1), "test": {"ndcg@10": None, "recall@10": None},
               "test_missing": "no generator trained for this row (30-50 min each on one shared core)"}
        if name in downstream:
            run_args = generator_options(args)
            # one folder per row and seed: rows sharing a first word must not overwrite each other's generator
            run = rb.run_generator(f"ablation-{row_folder(name, args.seed)}", assignment, rec, rec.splits["test"], run_args,
                                   workdir)
            row["test"] = {k: float(run["test"][k]) for k in ("ndcg@10", "recall@10")}
            row.pop("test_missing")
            # the best validation figures too: a setting is chosen on validation, the test figure only reported
            row["generator"] = {"epochs": run["epochs"], "best_epoch": run["best_epoch"], "train_s": run["train_s"],
                                "validation": {k: float(run["validation"][k]) for k in ("ndcg@10", "recall@10")},
                                "protocol": {k: getattr(run_args, k) for k in ("epochs", "patience", "patience_window",
                                                                               "eval_examples", "dropout", "lr")}}
        results.append(row)
        workdir.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(results, indent=1))
        print(f"[{name}] raw collision {row['raw_collision']:.4f} usage {[round(u, 3) for u in row['usage']]} "
              f"({seconds:.0f}s)", flush=True)
    table = format_table(results)
    print(table)
    if args.no_results:
        return 0
    load_end = os.getloadavg()
    if args.finalize:   # the run that trained the rows had the same options, without --finalize
        command = f"{command.replace(' --finalize', '')} (stopped; the rows it finished written by `{command}`)"
    out = {"date": reporting.utc_iso(), "command": command,
           "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), threads {torch.get_num_threads()}, "
                      f"load {load_start[0]:.1f} -> {load_end[0]:.1f}",
           "wall_s": None if args.finalize else round(time.time() - started, 1), "rows": results}
    if args.finalize:
        out["machine"] = (f"{os.cpu_count()} CPU cores ({platform.machine()}), threads 1, shared with 5-6 other "
                          f"processes; load {load_end[0]:.1f} when the rows were written")
    this_run = out   # the RESULTS section describes this run, also when its rows join an earlier file

    def joined(earlier: dict | None) -> dict:   # join the file: other rows and other seeds' runs stay
        other_seeds = earlier and {run["seed"] for row in earlier["rows"] if row["raw_collision"] is not None
                                   for run in seed_runs(row)} - {args.seed}
        joined = merge_rows(earlier, out) if earlier and (args.rows or other_seeds) else out
        order = {name: i for i, name in enumerate(names)}   # the rows in the table's order, retired names last
        return joined | {"rows": sorted(joined["rows"], key=lambda r: order.get(r["name"], len(order)))}

    path = reporting.update_json(f"simcit-ablation-{args.dataset}", joined)
    reporting.append_results(
        f"\n## SimCIT ablation ({args.dataset}): learned codes, each departure, re-fit, modalities\n\n"
        f"Date: {this_run['date']}. Machine: {this_run['machine']} (load average at start -> end; shared cores). "
        f"Command: `{command}`\n\nEvery row: `train_quantizer` with recipes/{args.dataset}/quantizer.yaml "
        f"plus the row's overrides, seed {args.seed}; raw collision and usage of the quantizer's own codes "
        f"over all {rec.num_items} items. Test N@10 / R@10: `-` where no generator was trained for "
        f"the row (null in the JSON).\n\n{table}\n\nJSON: `{path.relative_to(ROOT)}`.\n")
    print(f"wrote {path}")
    return 0


def merge_rows(earlier: dict, new: dict) -> dict:
    """The results file ``earlier`` with ``new``'s rows merged into their namesakes (new names at the end), each
    run carrying the command that ran it; the file's own command and date stay, ``updated`` says when.

    A row run with another seed and otherwise the same settings joins its namesake as one more seed
    (:func:`combine_seeds`); the same seed, or changed settings, replaces it."""
    fresh = {r["name"]: r | {"command": new["command"]} for r in new["rows"]}
    rows = [combine_seeds(r if "command" in r or "per_seed" in r else r | {"command": earlier["command"]},
                          fresh.pop(r["name"])) if r["name"] in fresh else r for r in earlier["rows"]]
    return earlier | {"rows": rows + list(fresh.values()), "updated": new["date"]}


SEED_FIELDS = ("raw_collision", "usage", "perplexity", "train_s", "test", "generator", "command")


def seed_runs(row: dict) -> list[dict]:
    """The row's runs, one per seed: ``per_seed`` of a multi-seed row, else the row itself as one run."""
    if "per_seed" in row:
        return row["per_seed"]
    return [{"seed": row["settings"].get("seed")} | {k: row[k] for k in SEED_FIELDS if k in row}]


def combine_seeds(old: dict, new: dict) -> dict:
    """``new`` (one seed) added to ``old``'s seeds: the row's figures become means over the seeds (test N@10 / R@10
    over the seeds that trained a generator), with ``sd`` and every seed's run under ``per_seed``."""
    if old["raw_collision"] is None or new["raw_collision"] is None:
        return new
    without_seed = {k: v for k, v in old["settings"].items() if k not in ("seed", "seeds")}
    if without_seed != {k: v for k, v in new["settings"].items() if k != "seed"}:
        return new   # another configuration under the same name: its figures replace the old ones
    runs = {run["seed"]: run for run in seed_runs(old)} | {run["seed"]: run for run in seed_runs(new)}
    runs = [runs[seed] for seed in sorted(runs)]
    if len(runs) == 1:
        return new

    def stats(values: list) -> tuple:
        array = np.asarray(values, dtype=float)
        return array.mean(axis=0).tolist(), array.std(axis=0, ddof=1).tolist() if len(array) > 1 else None

    row = {"name": new["name"], "settings": without_seed | {"seeds": [run["seed"] for run in runs]}}
    for key in ("raw_collision", "usage", "perplexity"):
        row[key], sd = stats([run[key] for run in runs])
        row.setdefault("sd", {})[key] = sd
    row["train_s"] = round(float(np.mean([run["train_s"] for run in runs])), 1)
    trained = [run for run in runs if run["test"]["ndcg@10"] is not None]
    row["test"] = {"ndcg@10": None, "recall@10": None}
    for key in row["test"]:
        if trained:
            row["test"][key], row["sd"][f"test {key}"] = stats([run["test"][key] for run in trained])
    row["test_seeds"] = [run["seed"] for run in trained]
    return row | {"per_seed": runs}


def format_table(rows: list[dict]) -> str:
    lines = ["| row | codes | raw collision | usage per level | perplexity per level | test N@10 | test R@10 | "
             "train s |", "|" + "---|" * 8]
    for r in rows:
        if r["raw_collision"] is None:
            lines.append(f"| {r['name']} | - | - | - | - | - | - | {r['missing']} |")
            continue
        ndcg, recall = (r["test"][k] for k in ("ndcg@10", "recall@10"))
        seeds = f" ({len(r['test_seeds'])} seeds)" if len(r.get("test_seeds", [])) > 1 else ""
        name = r["name"] + (f", mean of seeds {', '.join(map(str, r['settings']['seeds']))}" if "per_seed" in r else "")
        lines.append(f"| {name} | {r['settings']['codes']} | {r['raw_collision']:.2%} | "
                     f"{' / '.join(f'{u:.1%}' for u in r['usage'])} | "
                     f"{' / '.join(f'{x:.0f}' for x in r['perplexity'])} | "
                     f"{'-' if ndcg is None else f'{ndcg:.4f}{seeds}'} | {'-' if recall is None else f'{recall:.4f}'} | "
                     f"{r['train_s']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
