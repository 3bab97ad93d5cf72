"""Bad input, tried as a new user would: every case of the catalogue through the ``hf-simcit`` command line.

Small files are built once (a 14-user interaction table, its prepared splits, an 8-d item feature table, a tiny
SimCIT quantizer with its SIDs, an untrained tiny recommender, stage recipes and a pipeline recipe); each case
then makes its own bad input next to them, snapshots the folder, runs one ``hf-simcit`` command in a fresh
process and records: the exit status, whether stderr is one line, whether it holds a traceback, whether any
file was written or changed, and ``ok`` (the case's expectation: exit 2 with one line naming the problem and
nothing written, or, for the inputs that are dropped-and-counted or cut, exit 0 with the count or note).

    nice -n 10 .venv/bin/python benchmarks/bad_input.py            # appends to RESULTS.md, writes the JSON
    .venv/bin/python benchmarks/bad_input.py --cases prepare_nan_timestamp --no-write

``tests/test_bad_input.py`` runs the same catalogue in-process through ``hf_simcit.cli.main``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import reporting

ROOT = reporting.ROOT
NUM_USERS, NUM_ITEMS, MAX_HISTORY = 14, 16, 4


# ----------------------------------------------------------------------------------------------- fixtures
@dataclass
class Fixtures:
    """The good small files every case starts from (all under ``root``)."""

    root: Path

    def __getattr__(self, name: str) -> Path:        # fx.table, fx.data, fx.quantizer, ... (see build_fixtures)
        return self.root / LAYOUT[name]


LAYOUT = {
    "table": "interactions.csv", "items": "items.csv", "data": "data", "features": "features",
    "quantizer": "quantizer", "recommender": "recommender", "recommender_recipe": "recommender.yaml",
    "quantizer_recipe": "quantizer.yaml", "features_recipe": "features.yaml", "pipeline": "pipeline.yaml",
    "cases": "cases",
}


def _table_rows(duplicate_every: int = 0) -> list[str]:
    rows = ["user_id,item_id,timestamp"]
    for user in range(NUM_USERS):
        for t in range(7):
            rows.append(f"u{user},i{(user * 3 + t) % NUM_ITEMS},{t}")
            if duplicate_every and (user * 7 + t) % duplicate_every == 0:
                rows.append(rows[-1])
    return rows


def build_fixtures(root: Path) -> Fixtures:
    """Write the good inputs; seconds on a CPU."""
    import numpy as np
    import torch
    import yaml
    from datasets import Dataset

    from hf_simcit.configuration_simcit import SimCITConfig
    from hf_simcit.data import prepare_dataset
    from hf_simcit.modeling_simcit import SimCITQuantizer
    from hf_simcit.quantizers.assignment import save_semantic_ids
    from hf_simcit.recommender.modeling import RecommenderModelArguments, build_recommender, save_recommender
    from hf_simcit.training.recommender import load_sid_source

    fx = Fixtures(Path(root))
    fx.root.mkdir(parents=True, exist_ok=True)
    fx.table.write_text("\n".join(_table_rows()) + "\n")
    fx.items.write_text("\n".join(["item_id,text", *(f"i{i},item number {i}" for i in range(NUM_ITEMS))]) + "\n")
    prepared = prepare_dataset("table", fx.table, item_text_file=str(fx.items), min_user_interactions=2,
                               min_item_interactions=2, max_history=MAX_HISTORY)
    prepared.save_to_disk(fx.data)
    item_ids = list(prepared.items["item_id"])
    embeddings = np.random.default_rng(0).normal(size=(len(item_ids), 8)).astype("float32")
    Dataset.from_dict({"item_index": list(range(len(item_ids))), "item_id": item_ids,
                       "text_embedding": embeddings.tolist()}).save_to_disk(str(fx.features))
    torch.manual_seed(0)
    config = SimCITConfig(modality_names=["text"], modality_dims=[8], encoder_hidden_sizes=[16], latent_dim=8,
                          num_levels=2, codebook_size=4)
    SimCITQuantizer(config).save_pretrained(fx.quantizer)
    save_semantic_ids(fx.quantizer, str(fx.features))
    args = RecommenderModelArguments(tiny_hidden_size=16, tiny_num_layers=1, tiny_num_heads=2,
                                     tiny_intermediate_size=32, tiny_max_position_embeddings=64)
    rec = build_recommender(args, load_sid_source(str(fx.quantizer), item_ids), seed=0)
    rec.max_history = MAX_HISTORY
    save_recommender(rec, fx.recommender, extra={"training_args": {"eval_num_beams": 10}})
    fx.recommender_recipe.write_text(yaml.safe_dump({
        "model": {"tiny_hidden_size": 16, "tiny_num_layers": 1, "tiny_num_heads": 2, "tiny_intermediate_size": 32},
        "data": {"data_dir": str(fx.data), "sid_dir": str(fx.quantizer)},
        "training": {"output_dir": str(fx.root / "trained"), "max_steps": 2, "cpu": True}}))
    fx.quantizer_recipe.write_text(yaml.safe_dump({
        "features_path": str(fx.features), "output_dir": str(fx.root / "quantizer_trained"), "latent_dim": 8,
        "encoder_hidden_sizes": [16], "num_levels": 2, "codebook_size": 4, "max_steps": 2, "eval_steps": 1,
        "per_device_batch_size": 4, "show_progress": False}))
    fx.features_recipe.write_text(yaml.safe_dump({"data": str(fx.data), "output": str(fx.root / "features_out"),
                                                  "modalities": ["text"]}))
    recipes = ROOT / "recipes" / "ml-100k"
    fx.pipeline.write_text(yaml.safe_dump({
        "dataset": "table", "data_dir": str(fx.table), "run_dir": str(fx.root / "run"),
        "prepare": {"item_text_file": str(fx.items), "min_user_interactions": 2, "min_item_interactions": 2},
        **{f"{stage}_recipe": str(recipes / f"{stage}.yaml")
           for stage in ("features", "lgmd", "quantizer", "recommender")}}))
    fx.cases.mkdir(exist_ok=True)
    return fx


# ----------------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    """One bad input: ``setup(fx, work)`` writes it under ``work`` and returns the ``hf-simcit`` arguments."""

    name: str
    item: int                                   # the item of issue 12 it checks (0: a further case)
    setup: Callable[[Fixtures, Path], list[str]]
    expect: str                                 # a piece of the one-line message (or, exit 0: of the output)
    exit_code: int = 2
    check: Callable[[Fixtures, Path, str], bool] | None = None   # exit-0 cases: what must be true afterwards
    env: dict[str, str | None] = field(default_factory=dict)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst) if src.is_dir() else shutil.copy2(src, dst)
    return dst


def _pickle_instead(folder: Path, weights: str, pickle_name: str, keep: bool = False) -> Path:
    """A model folder whose weights are a torch.save pickle (``keep``: next to the safetensors file)."""
    import torch
    from safetensors.torch import load_file

    tensors = {name: tensor.clone() for name, tensor in load_file(str(folder / weights)).items()}  # off the mmap
    torch.save(tensors, folder / f".{pickle_name}.tmp")
    os.replace(folder / f".{pickle_name}.tmp", folder / pickle_name)
    if not keep:
        (folder / weights).unlink()
    return folder


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 64])
    return path


def _table(work: Path, rows: list[str], name: str = "t.csv") -> Path:
    path = work / name
    path.write_text("\n".join(rows) + "\n")
    return path


def _yaml_with(src: Path, dst: Path, **changes) -> Path:
    import yaml

    data = yaml.safe_load(src.read_text())
    for key, value in changes.items():
        section = next((s for s in ("model", "data", "training") if isinstance(data.get(s), dict)
                        and key in data[s]), None)
        (data[section] if section else data)[key] = value
    dst.write_text(yaml.safe_dump(data))
    return dst


def _prepare(table: Path, work: Path, *extra: str) -> list[str]:
    return ["prepare", "--dataset", "table", "--data-dir", str(table), "--output", str(work / "out"),
            "--min-user-interactions", "2", "--min-item-interactions", "2", *extra]


def _recommend(model: Path, *extra: str) -> list[str]:
    return ["recommend", "--model", str(model), *extra]


def _evaluate(fx: Fixtures, model: Path, work: Path, *extra: str) -> list[str]:
    return ["evaluate", "--model", str(model), "--data", str(fx.data), "--output", str(work / "m.json"), *extra]


def _assign(quantizer: Path, fx: Fixtures, work: Path) -> list[str]:
    return ["assign", "--quantizer", str(quantizer), "--features", str(fx.features), "--output", str(work / "out")]


def _stats_count(work: Path, count: int) -> bool:
    stats = json.loads((work / "out" / "stats.json").read_text())
    return stats["read"]["dropped_by_reader"].get("duplicate_rows") == count \
        and stats["read"]["interactions"] == NUM_USERS * 7


CASES: list[Case] = [
    # 1. pickle weights are never read, and never copied
    Case("assign_pickle_quantizer", 1, lambda fx, w: _assign(
        _pickle_instead(_copy(fx.quantizer, w / "q"), "model.safetensors", "pytorch_model.bin"), fx, w),
        "refusing to load pytorch_model.bin"),
    Case("assign_pickle_next_to_safetensors", 1, lambda fx, w: _assign(
        _pickle_instead(_copy(fx.quantizer, w / "q"), "model.safetensors", "pytorch_model.bin", keep=True), fx, w),
        "refusing to load pytorch_model.bin"),
    Case("recommend_pickle_recommender", 1, lambda fx, w: _recommend(
        _pickle_instead(_copy(fx.recommender, w / "r"), "model.safetensors", "pytorch_model.bin"),
        "--history", "i1", "i2"), "refusing to load pytorch_model.bin"),
    Case("evaluate_pickle_recommender", 1, lambda fx, w: _evaluate(
        fx, _pickle_instead(_copy(fx.recommender, w / "r"), "model.safetensors", "pytorch_model.bin"), w),
        "refusing to load pytorch_model.bin"),
    Case("recommend_pickle_renamed_safetensors", 1, lambda fx, w: _recommend(
        _pickle_instead(_copy(fx.recommender, w / "r"), "model.safetensors", "model.safetensors", keep=True),
        "--history", "i1"), "refusing to load model.safetensors"),
    # 2. NaN timestamps
    Case("prepare_nan_timestamp", 2, lambda fx, w: _prepare(_table(w, [*_table_rows()[:3], "u0,i5,",
                                                                       *_table_rows()[3:]]), w),
         ".csv:4: column 'timestamp' is empty"),
    # 3. a missing or misnamed timestamp column
    Case("prepare_missing_timestamp_column", 3, lambda fx, w: _prepare(_table(
        w, [",".join(r.split(",")[:2]) for r in _table_rows()]), w), "no timestamp column 'timestamp'"),
    Case("prepare_misnamed_timestamp_column", 3, lambda fx, w: _prepare(fx.table, w, "--timestamp-column", "time"),
         "no timestamp column 'time'"),
    # 4. duplicate rows: dropped and counted (exit 0)
    Case("prepare_duplicate_rows_dropped_and_counted", 4, lambda fx, w: _prepare(_table(w, _table_rows(5)), w),
         "duplicate rows", exit_code=0, check=lambda fx, w, out: _stats_count(w, len(range(0, NUM_USERS * 7, 5)))),
    # 5. recipe and --set values typed before the first stage
    Case("run_eval_num_beams_word", 5, lambda fx, w: ["run", str(_yaml_with(fx.pipeline, w / "p.yaml",
                                                                            eval_num_beams="twenty"))],
         "eval_num_beams must be an int, got 'twenty'"),
    Case("run_set_max_steps_abc", 5, lambda fx, w: ["run", str(fx.pipeline), "--set", "recommender.max_steps=abc"],
         "max_steps must be an int, got 'abc'"),
    Case("run_set_quantizer_max_steps_words", 5, lambda fx, w: [
        "run", str(fx.pipeline), "--set", "quantizer.max_steps=two hundred"], "max_steps must be an int"),
    Case("run_set_text_batch_size_big", 5, lambda fx, w: ["run", str(fx.pipeline), "--set",
                                                          "features.text_batch_size=big"],
         "text_batch_size must be an int, got 'big'"),
    Case("features_recipe_text_batch_size_big", 5, lambda fx, w: ["features", str(_yaml_with(
        fx.features_recipe, w / "f.yaml", text_batch_size="big"))], "text_batch_size must be an int, got 'big'"),
    Case("train_quantizer_recipe_max_steps_words", 5, lambda fx, w: ["train-quantizer", str(_yaml_with(
        fx.quantizer_recipe, w / "q.yaml", max_steps="two hundred"))], "max_steps must be an int"),
    Case("train_recipe_eval_num_beams_word", 5, lambda fx, w: ["train", str(_yaml_with(
        fx.recommender_recipe, w / "r.yaml", eval_num_beams="twenty"))], "eval_num_beams must be an int"),
    Case("run_set_missing_model_path", 5, lambda fx, w: ["run", str(fx.pipeline), "--set",
                                                         f"recommender.model_name_or_path={w / 'no-such-model'}"],
         "model_name_or_path"),
    Case("run_set_eval_ks_zero", 5, lambda fx, w: ["run", str(fx.pipeline), "--set", "eval_ks=[0, 10]"],
         "eval_ks must be comma-separated positive integers"),
    # 6. long histories: cut to the training history length (exit 0, said so), or refused past the context
    Case("recommend_long_history_cut", 6, lambda fx, w: _recommend(
        fx.recommender, "--history", *[f"i{j % NUM_ITEMS}" for j in range(10_000)], "-k", "3"),
        f"cut to their most recent {MAX_HISTORY}", exit_code=0,
        check=lambda fx, w, out: out.count('"item_id"') == 3),
    Case("recommend_history_past_the_context", 6, lambda fx, w: _recommend(
        _without_max_history(_copy(fx.recommender, w / "r")), "--history", *[f"i{j % NUM_ITEMS}" for j in range(40)]),
        "exceeds the model's context of 64 positions"),
    # 8. one line and exit 2, not a traceback
    Case("recommend_truncated_safetensors", 8, lambda fx, w: _recommend(
        _trunc_in(_copy(fx.recommender, w / "r"), "model.safetensors"), "--history", "i1"),
        "truncated or corrupt safetensors"),
    Case("evaluate_truncated_safetensors", 8, lambda fx, w: _evaluate(
        fx, _trunc_in(_copy(fx.recommender, w / "r"), "model.safetensors"), w), "truncated or corrupt safetensors"),
    Case("assign_truncated_safetensors", 8, lambda fx, w: _assign(
        _trunc_in(_copy(fx.quantizer, w / "q"), "model.safetensors"), fx, w), "truncated or corrupt safetensors"),
    Case("train_bogus_option", 8, lambda fx, w: ["train", str(fx.recommender_recipe), "--bogus", "3"],
         "unknown key 'bogus'"),
    Case("train_quantizer_bogus_option", 8, lambda fx, w: ["train-quantizer", str(fx.quantizer_recipe), "--bogus",
                                                           "3"], "unknown key 'bogus'"),
    Case("train_missing_sid_dir", 8, lambda fx, w: ["train", str(_yaml_with(
        fx.recommender_recipe, w / "r.yaml", sid_dir=str(w / "no-such-sids")))], "sid_dir"),
    Case("evaluate_ks_five", 8, lambda fx, w: _evaluate(fx, fx.recommender, w, "--ks", "five"),
         "--ks must be comma-separated positive integers"),
    Case("push_without_token", 8, lambda fx, w: ["push", str(fx.root), "--repo-id", "someone/something"],
         "no Hugging Face token", env={"HF_TOKEN": None, "HUGGING_FACE_HUB_TOKEN": None}),
    # 9. silent no-ops
    Case("recommend_empty_histories_file", 9, lambda fx, w: _recommend(
        fx.recommender, "--histories", str(_table(w, [], "h.txt"))), "no histories"),
    Case("evaluate_max_examples_0", 9, lambda fx, w: _evaluate(fx, fx.recommender, w, "--max-examples", "0"),
         "max_examples must be at least 1"),
    # 10. smaller
    Case("run_set_prepare_key_is_read", 10, lambda fx, w: ["run", str(fx.pipeline), "--set",
                                                           "prepare.min_user_interactions=abc"],
         "prepare: min_user_interactions must be an int"),
    Case("prepare_output_is_a_file", 10, lambda fx, w: ["prepare", "--dataset", "table", "--data-dir",
                                                        str(fx.table), "--output", str(_table(w, ["keep me"]))],
         "is a file, not a folder"),
    Case("assign_output_is_a_file", 10, lambda fx, w: [
        "assign", "--quantizer", str(fx.quantizer), "--features", str(fx.features), "--output",
        str(_table(w, ["keep me"]))], "is a file, not a folder"),
    # further cases a new user runs into
    Case("prepare_missing_file", 0, lambda fx, w: _prepare(w / "nope.csv", w), "nope.csv"),
    Case("recommend_unknown_item", 0, lambda fx, w: _recommend(fx.recommender, "--history", "i1", "zzz"),
         "'zzz' (history 0)"),
    Case("recommend_num_beams_below_k", 0, lambda fx, w: _recommend(fx.recommender, "--history", "i1", "-k", "5",
                                                                    "--num-beams", "2"), "smaller than k=5"),
    Case("run_unknown_set_stage", 0, lambda fx, w: ["run", str(fx.pipeline), "--set", "quantiser.max_steps=3"],
         "unknown stage 'quantiser'"),
    Case("train_quantizer_missing_features", 0, lambda fx, w: ["train-quantizer", str(_yaml_with(
        fx.quantizer_recipe, w / "q.yaml", features_path=str(w / "none")))], "does not exist"),
]


def _trunc_in(folder: Path, name: str) -> Path:
    _truncate(folder / name)
    return folder


def _without_max_history(folder: Path) -> Path:
    """A recommender folder written before the history length was recorded."""
    config_file = folder / "recommender_config.json"
    config = json.loads(config_file.read_text())
    config.pop("max_history", None)
    config_file.write_text(json.dumps(config))
    return folder


# ----------------------------------------------------------------------------------------------- running
def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time (to tell whether a command wrote)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file() or p.is_dir()}


def judge(case: Case, fx: Fixtures, work: Path, exit_code: int, out: str, err: str, wrote: bool) -> dict:
    """The JSON row of one case."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    traceback = "Traceback (most recent call last)" in err
    if case.exit_code == 2:
        one_line = len(lines) == 1
        ok = exit_code == 2 and one_line and not traceback and not wrote and case.expect in err
    else:
        notes = [line for line in lines if not line.startswith(("Map", "Saving", "Writing"))]
        one_line = len(notes) <= 1
        ok = exit_code == case.exit_code and not traceback and case.expect in (out + err) and \
            (case.check is None or case.check(fx, work, out))
    shown = [line for line in (out + err).splitlines() if case.expect in line] if case.exit_code == 0 else lines
    return {"name": case.name, "item": case.item, "exit_code": exit_code, "one_line": one_line,
            "traceback": traceback, "wrote_output": wrote, "ok": bool(ok),
            "message": (shown[-1] if shown else "").replace(str(fx.root), "FILES")}


def run_case(case: Case, fx: Fixtures, runner: Callable[[list[str], dict], tuple[int, str, str]]) -> dict:
    """Set the case up, run it with ``runner(argv, env) -> (exit code, stdout, stderr)``, judge it."""
    work = fx.cases / case.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    argv = case.setup(fx, work)
    before = snapshot(fx.root)
    exit_code, out, err = runner(argv, case.env)
    wrote = snapshot(fx.root) != before
    return judge(case, fx, work, exit_code, out, err, wrote)


def subprocess_runner(hf_home: Path) -> Callable[[list[str], dict], tuple[int, str, str]]:
    """``python -m hf_simcit.cli ARGV`` in a fresh process, offline, one thread."""
    def run(argv: list[str], env_changes: dict) -> tuple[int, str, str]:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home), "OMP_NUM_THREADS": "1",
               "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"}
        for key, value in env_changes.items():
            env.pop(key, None) if value is None else env.__setitem__(key, value)
        done = subprocess.run([sys.executable, "-m", "hf_simcit.cli", *argv], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=600)
        return done.returncode, done.stdout, done.stderr
    return run


def format_table(rows: list[dict]) -> str:
    lines = ["| case | issue item | exit | one line | traceback | wrote output | ok | message |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        message = r["message"].replace("|", "\\|")
        message = message if len(message) <= 110 else message[:107] + "..."
        lines.append(f"| {r['name']} | {r['item'] or '-'} | {r['exit_code']} | {'yes' if r['one_line'] else 'no'} | "
                     f"{'yes' if r['traceback'] else 'no'} | {'yes' if r['wrote_output'] else 'no'} | "
                     f"{'yes' if r['ok'] else 'NO'} | {message} |")
    lines.append(f"\n{sum(r['ok'] for r in rows)} of {len(rows)} cases as promised.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print only; no RESULTS.md, no JSON")
    args = parser.parse_args()
    selected = [c for c in CASES if args.cases is None or c.name in args.cases.split(",")]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hf-simcit-bad-input-") as tmp:
        fx = build_fixtures(Path(tmp) / "files")
        runner = subprocess_runner(Path(tmp) / "hf_home")
        rows = []
        for case in selected:
            rows.append(run_case(case, fx, runner))
            print(f"{case.name}: exit {rows[-1]['exit_code']}, ok {rows[-1]['ok']}", flush=True)
    table = format_table(rows)
    print(table)
    if args.no_write:
        return
    now = datetime.now(timezone.utc)
    reporting.write_json("bad-input", {"date": now.isoformat(timespec="seconds"), "cases": rows})
    command = reporting.command_line("nice -n 10 .venv/bin/python benchmarks/bad_input.py")
    reporting.append_results(
        f"\n## Bad input through the CLI, the catalogue of issue 12 ({reporting.utc_minute(now)})\n\n"
        f"Each case: small files, one `hf-simcit` command in a fresh process (offline, no token), "
        f"{time.perf_counter() - start:.0f} s in all. ok = exit 2, one stderr line naming the problem, "
        f"no traceback, nothing written or changed (dropped-and-counted / cut cases: exit 0 with "
        f"the count or note). FILES = the folder of small files. JSON: `benchmarks/results/bad-input.json`.\n\n"
        f"Command: `{command}`\n\n{table}\n")


if __name__ == "__main__":
    main()
