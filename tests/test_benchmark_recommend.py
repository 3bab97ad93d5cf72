"""benchmarks/recommend.py: every tokenizer is the package's, and collisions are resolved the same way."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import benchmark_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return benchmark_module("recommend")


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory):
    """Environment of the benchmark subprocesses: one cache (ML-100K prepared once, with its features)."""
    import os

    root = tmp_path_factory.mktemp("bench")
    return {**os.environ, "HF_SIMCIT_REC_BENCH_CACHE": str(root / "cache"), "HF_SIMCIT_BENCH_CACHE": str(root / "qcache")}


@pytest.fixture(scope="module")
def features():
    from hf_simcit.quantizers import ItemFeatures

    g = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(400, 16, generator=g), dim=-1)
    text[1] = text[0]                                             # two items with identical features
    cf = torch.nn.functional.normalize(torch.randn(400, 8, generator=g), dim=-1)
    cf[1] = cf[0]
    masks = {"text": torch.ones(400, dtype=torch.bool), "cf": torch.ones(400, dtype=torch.bool)}
    return ItemFeatures({"text": text, "cf": cf}, masks, [f"i{k}" for k in range(400)])


@pytest.mark.parametrize("method", ["rqvae", "rqkmeans", "random"])
def test_baseline_sids_are_unique_with_a_disambiguation_level(bench, features, method):
    from hf_simcit.quantizers import BASELINES

    assignment, quantizer = bench.build_sids(method, features, ["text", "cf"], 2, 8, seed=0, rqvae_steps=5)
    assert isinstance(quantizer, BASELINES[method])
    codes = assignment.codes
    assert codes.shape == (400, 3) and len(np.unique(codes, axis=0)) == 400
    assert assignment.codebook_sizes[:2] == [8, 8] and assignment.resolve == "level"
    if method != "random":                                        # identical features -> the same raw SID
        assert (assignment.raw_codes[0] == assignment.raw_codes[1]).all() and codes[0, -1] != codes[1, -1]


def test_simcit_sids_come_from_train_quantizer_with_the_recipe(bench, features, tmp_path):
    from hf_simcit.modeling_simcit import SimCITQuantizer

    args = SimpleNamespace(seed=0, levels=2, codebook_size=8, simcit_steps=2)
    recipe = bench.quantizer_recipe("beauty", args, tmp_path)
    assert recipe.modalities == ["text", "cf"] and recipe.symmetric_loss and recipe.codebook_init == "kmeans"
    assert (recipe.num_levels, recipe.codebook_size, recipe.max_steps) == (2, 8, 2)
    recipe.per_device_batch_size, recipe.eval_steps = 64, 1
    assignment, quantizer = bench.build_sids("simcit", features, recipe.modalities, 2, 8, 0, recipe)
    assert isinstance(quantizer, SimCITQuantizer)
    assert len(np.unique(assignment.codes, axis=0)) == 400 and assignment.codes.shape[1] == 3


def test_test_subset_is_seeded_and_shared(bench):
    from datasets import Dataset

    split = Dataset.from_dict({"user_id": list(range(100)), "target": list(range(100))})
    a, b = bench.test_subset(split, 10, 42), bench.test_subset(split, 10, 42)
    assert a["user_id"] == b["user_id"] and len(a) == 10 and a["user_id"] != list(range(10))
    assert bench.test_subset(split, None, 42) is split and bench.test_subset(split, 500, 42) is split


def test_resolution_options_reach_assign_semantic_ids(bench, features):
    shuffled, _ = bench.build_sids("rqkmeans", features, ["text", "cf"], 2, 8, seed=0,
                                   disambiguation_order="random")
    assert shuffled.resolve == "level" and shuffled.disambiguation_order == "random"
    assert len(np.unique(shuffled.codes, axis=0)) == 400
    balanced, _ = bench.build_sids("rqkmeans", features, ["text", "cf"], 2, 64, seed=0, resolve="sinkhorn")
    assert balanced.resolve == "sinkhorn" and balanced.codes.shape == (400, 2)


def test_history_split_separates_repeat_and_new_targets(bench):
    from datasets import Dataset

    split = Dataset.from_dict({"history": [[1, 2], [3], [4, 5], [6]], "target": [2, 7, 8, 6]})
    assert bench.in_history(split).tolist() == [True, False, False, True]
    rankings = torch.tensor([[2, 9], [0, 7], [1, 3], [5, 4]])              # hits: yes, yes, no, no
    s = bench.history_split(rankings, split, recall=0.5, k=2)
    assert (s["repeat"], s["new"], s["repeat_users"], s["new_users"]) == (0.5, 0.5, 2, 2)
    assert bench.history_split(rankings, split, k=1)["new"] == 0.0         # 7 is second, outside the top 1
    with pytest.raises(RuntimeError, match="metric code"):
        bench.history_split(rankings, split, recall=0.75, k=2)


def test_run_baseline_counts_training_targets(bench):
    from datasets import Dataset

    rec = SimpleNamespace(items=list(range(5)), splits={"train": Dataset.from_dict(
        {"history": [[0], [0], [1]], "target": [3, 3, 4]})})
    test = Dataset.from_dict({"history": [[0, 1], [2]], "target": [1, 3]})
    pop = bench.run_baseline("popularity", rec, test)
    assert pop["rankings"][:, :3].tolist() == [[3, 4, 0], [3, 4, 0]] and pop["test"]["recall@5"] == 1.0
    hist = bench.run_baseline("history", rec, test)
    assert hist["rankings"][0, :3].tolist() == [1, 0, 3] and hist["test"]["num_examples"] == 2
    assert bench.history_split(hist["rankings"], test, hist["test"]["recall@10"]) == {
        "repeat": 1.0, "new": 1.0, "repeat_users": 1, "new_users": 1}


def test_results_json_has_the_checked_shape(bench, tmp_path):
    import json

    test = {"recall@5": 0.1, "recall@10": 0.2, "ndcg@5": 0.05, "ndcg@10": 0.08, "mrr": 0.04, "invalid_items": 0}
    rows = {"simcit": {"test": test, "epochs": 7.0, "best_epoch": 4.0, "train_s": 12.34,
                       "curve": [{"epoch": 1, "seconds": 2.0, "ndcg@10": 0.05}]},
            "popularity": {"test": test, "epochs": None, "best_epoch": None, "train_s": 0.1}}
    path = bench.write_results(tmp_path, "recommend-x", rows, "python benchmarks/recommend.py", "cpu", 99.0)
    out = json.loads(path.read_text())
    assert set(out) >= {"date", "command", "device", "wall_s", "rows"} and out["wall_s"] == 99.0
    row = out["rows"]["simcit"]
    assert row["test"] == {"recall@5": 0.1, "recall@10": 0.2, "ndcg@5": 0.05, "ndcg@10": 0.08}
    assert (row["invalid_items"], row["epochs"], row["best_epoch"], row["train_s"]) == (0, 7.0, 4.0, 12.3)


def test_gpu_script_smoke_mode_runs_on_cpu(bench_env):
    """benchmarks/gpu_beauty.sh --smoke: the GPU script's code path, on ML-100K for one epoch, on the CPU."""
    import json
    import subprocess
    import sys

    env = {**bench_env, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_beauty.sh"), "--smoke"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = Path(env["HF_SIMCIT_REC_BENCH_CACHE"]) / "runs" / "ml-100k" / "results"
    out = json.loads((results / "recommend-ml-100k.json").read_text())
    assert set(out["rows"]) == {"simcit", "rqvae", "rqkmeans", "random", "sasrec", "history", "popularity", "knn"}
    for method, row in out["rows"].items():
        assert row["invalid_items"] == 0, method
        assert 0.0 <= row["test"]["ndcg@10"] <= row["test"]["recall@10"] <= 1.0
    assert out["rows"]["simcit"]["epochs"] == 1.0 and out["rows"]["simcit"]["curve"]
    positions = json.loads((results / "training-positions-ml-100k.json").read_text())
    assert positions["full_sequence"] < positions["prefix"] / 5
    assert (results / "curves-recommend-ml-100k.png").stat().st_size > 10_000


def test_jobs_train_the_learned_rows_side_by_side_with_the_same_results(bench_env):
    """``--jobs 2`` (one process per learned row) reassembles exactly the rows one process trains in turn."""
    import json
    import subprocess
    import sys

    env = bench_env
    results = Path(env["HF_SIMCIT_REC_BENCH_CACHE"]) / "runs" / "ml-100k" / "results"
    out = {}
    for jobs in ("1", "2"):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recommend.py"), "--smoke", "--threads", "1",
                               "--methods", "random,sasrec,sasrec+random,popularity,knn", "--jobs", jobs,
                               "--results-name", f"jobs{jobs}", "--cf", "sequential",
                               "--exclude-history", "--dense-head", "--dense-negatives", "catalogue",
                               "--dense-loss-weight", "0.5"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        out[jobs] = json.loads((results / f"jobs{jobs}.json").read_text())["rows"]
    assert list(out["2"]) == ["random", "sasrec", "sasrec+random", "popularity", "knn"]
    for method in out["1"]:
        assert out["2"][method]["test"] == out["1"][method]["test"], method
        assert out["2"][method]["repeat_new"] == out["1"][method]["repeat_new"], method
    assert out["2"]["sasrec"]["test"]["ndcg@10"] > 0
    # SASRec over SIDs: another model (items = sums of their SID codes), ranked over the same catalogue
    assert out["2"]["sasrec+random"]["test"]["ndcg@10"] > 0
    assert out["2"]["sasrec+random"]["test"] != out["2"]["sasrec"]["test"]
    # --exclude-history: every learned row is also tested under RecBole's protocol. ML-100K has no repeat
    # ratings, so an exact full ranking (SASRec) can only gain hits when the history items leave the lists
    for method in ("random", "sasrec"):
        assert out["2"][method]["test_history_excluded"] == out["1"][method]["test_history_excluded"], method
    excluded, plain = out["1"]["sasrec"]["test_history_excluded"], out["1"]["sasrec"]["test"]
    assert excluded["recall@10"] >= plain["recall@10"] and excluded != plain
    assert "test_history_excluded" not in out["1"]["popularity"]
    # the last-item kNN over the tokenizers' features (text + the sequential cf of --cf): a real ranking
    assert 0 < out["1"]["knn"]["test"]["ndcg@10"] <= out["1"]["knn"]["test"]["recall@10"] <= 1
    assert out["1"]["knn"]["invalid_items"] == 0 and out["1"]["knn"]["epochs"] is None
    # every row carries its validation N@10: the non-learned rows on the learned rows' validation sample, so the
    # table's test / validation ratio separates the protocol's drift from a model's over-fitting
    for method in ("popularity", "knn"):
        assert 0 < out["1"][method]["validation"]["ndcg@10"] <= out["1"][method]["validation"]["recall@10"] <= 1
        assert out["2"][method]["validation"] == out["1"][method]["validation"], method
    for method in ("random", "sasrec"):
        assert 0 <= out["1"][method]["validation"]["ndcg@10"] <= 1, method
    # --dense-head: the generator also ranks by the hybrid, its head's weight chosen on the validation sample,
    # where weight 0 is the beam's own order (the early stopping's validation figure)
    hybrid = out["1"]["random"]["hybrid"]
    assert out["2"]["random"]["hybrid"] == hybrid
    assert hybrid["validation_ndcg@10"]["0"] == out["1"]["random"]["validation"]["ndcg@10"]
    assert hybrid["validation_ndcg@10"][f"{hybrid['weight']:g}"] == max(hybrid["validation_ndcg@10"].values())
    assert hybrid["test"]["invalid_items"] == 0 and 0 <= hybrid["test"]["ndcg@10"] <= hybrid["test"]["recall@10"]
    assert "hybrid" not in out["1"]["sasrec"]
    assert hybrid["head"] == {"negatives": "catalogue", "loss_weight": 0.5}   # the head as asked, in both processes
    # --reevaluate test --results-name: the saved generator's rows again (a stopped run completed without
    # retraining): the same figures, plain and history excluded, and its epochs / curve from its train_log.json
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recommend.py"), "--smoke", "--threads", "1",
                           "--methods", "random", "--cf", "sequential", "--exclude-history", "--reevaluate", "test",
                           "--results-name", "again"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    again = json.loads((results / "again.json").read_text())["rows"]["random"]
    for key in ("test", "test_history_excluded", "epochs", "best_epoch", "curve", "repeat_new"):
        assert again[key] == out["2"]["random"][key], key
    assert again["train_s"] == pytest.approx(out["2"]["random"]["train_s"], abs=0.1)
    # --refit-with-validation: each learned row again, on training + validation interactions, for its best epochs
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recommend.py"), "--refit-with-validation",
                           str(results / "jobs1.json"), "--methods", "random,sasrec", "--threads", "1", "--no-results"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    refit = {line.split()[0][1:-1]: json.loads(line.split(" refit ", 1)[1])
             for line in done.stdout.splitlines() if " refit {" in line}
    assert list(refit) == ["random", "sasrec"]
    for method, row in refit.items():
        assert row["epochs"] == int(np.ceil(out["1"][method]["best_epoch"])) == 1
        assert row["early_stopped"]["test"] == out["1"][method]["test"]
        assert 0.0 <= row["test"]["ndcg@10"] <= row["test"]["recall@10"] <= 1.0
        assert set(row["test_history_excluded"]) == {"recall@5", "recall@10", "ndcg@5", "ndcg@10"}
    assert refit["sasrec"]["test"]["ndcg@10"] > 0


def test_refit_splits_add_each_validation_interaction_to_training(bench):
    """The refit's splits: every training target of before plus the user's validation target, the test target
    still held out (never a training target), and the test examples where the validation examples were."""
    from datasets import Dataset, DatasetDict

    from hf_simcit.data.dataset import SPLIT_FEATURES
    from hf_simcit.data.splits import leave_one_out, training_sequences_from_splits

    sequences = [[0, 1, 2, 3, 4], [5, 6, 7], [8, 9, 8, 10, 8], [1, 2, 3, 4, 5, 6, 7, 8]]
    before = leave_one_out(sequences, max_history=3)
    rec = SimpleNamespace(sequences={"items": sequences}, stats={"config": {"max_history": 3}},
                          splits=DatasetDict({n: Dataset.from_dict(getattr(before, n), features=SPLIT_FEATURES)
                                              for n in ("train", "validation", "test")}))
    after = bench.splits_with_validation_in_training(rec)
    for user, seq in enumerate(sequences):
        old = [t for u, t in zip(before.train["user_id"], before.train["target"]) if u == user]
        new = [t for u, t in zip(after["train"]["user_id"], after["train"]["target"]) if u == user]
        assert new == [t for t in old + [seq[-2]] if t != seq[-1]]
    assert after["validation"]["history"] == before.test["history"]
    assert after["validation"]["target"] == before.test["target"]
    rebuilt = training_sequences_from_splits(after["train"][:], after["validation"][:], after["test"][:])
    assert {u: (items, held) for u, (items, held) in rebuilt.items()} == {
        u: (seq[:-1], {seq[-1]}) for u, seq in enumerate(sequences)}


def test_seeds_summary_is_mean_and_sd_over_runs_that_differ_only_in_the_seed(bench, tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(bench.reporting, "RESULTS_MD", tmp_path / "benchmarks" / "RESULTS.md")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "results").mkdir()

    def run(seed: str, ndcg: dict, extra: str = "", epochs: float = 9.0) -> str:
        rows = {m: {"test": {"recall@10": 2 * v, "ndcg@10": v}, "epochs": epochs, "best_epoch": 4.0, "train_s": 1.0,
                    "test_history_excluded": {"recall@10": 3 * v, "ndcg@10": 1.5 * v}} for m, v in ndcg.items()}
        rows["popularity"] = {"test": {"recall@10": 0.01, "ndcg@10": 0.005}, "epochs": None}
        path = tmp_path / f"seed{seed}{extra.strip()}.json"
        seed_flag = f" --seed {seed}" if seed != "42" else ""      # 42 is the default, as in the recorded run
        path.write_text(json.dumps({"command": f"python benchmarks/recommend.py --dataset beauty --jobs 2 "
                                               f"--sasrec-patience 10{seed_flag}{extra} --results-name r{seed}",
                                    "rows": rows}))
        return str(path)

    paths = [run("42", {"simcit": 0.02, "rqvae": 0.03}), run("1", {"simcit": 0.04, "rqvae": 0.03}),
             run("2", {"simcit": 0.03, "rqvae": 0.03})]
    assert bench.main(["--seeds-summary", *paths, "--results-name", "seeds"]) == 0
    out = json.loads((tmp_path / "results" / "seeds.json").read_text())
    assert out["seeds"] == [42, 1, 2] and list(out["rows"]) == ["simcit", "rqvae"]
    simcit = out["rows"]["simcit"]
    assert simcit["ndcg@10"]["mean"] == pytest.approx(0.03) and simcit["ndcg@10"]["sd"] == pytest.approx(0.01)
    assert simcit["recall@10"]["mean"] == pytest.approx(0.06) and out["rows"]["rqvae"]["ndcg@10"]["sd"] == 0.0
    assert simcit["history_excluded"]["ndcg@10"]["values"] == pytest.approx([0.03, 0.06, 0.045])
    assert "SimCIT / RQ-VAE SIDs N@10 1.00x" in (tmp_path / "benchmarks" / "RESULTS.md").read_text()
    # a run with other settings, or two runs with one seed, cannot be summarised as seeds
    with pytest.raises(SystemExit, match="differ in \\['lr'\\] for row simcit"):
        bench.main(["--seeds-summary", *paths[:2], run("3", {"simcit": 0.1, "rqvae": 0.1}, " --lr 0.01")])
    with pytest.raises(SystemExit, match="seed 42: rows \\['rqvae', 'simcit'\\] are in more than one"):
        bench.main(["--seeds-summary", paths[0], paths[0]])
    # a seed's rows from several files: one row trained again in its own run replaces that row, by choice
    again = [run(seed, {"simcit": value}, " --methods simcit") for seed, value in (("42", 0.05), ("1", 0.05),
                                                                                    ("2", 0.08))]
    assert bench.main(["--seeds-summary", *(f"{p}:rqvae" for p in paths), *again, "--results-name", "mixed"]) == 0
    mixed = json.loads((tmp_path / "results" / "mixed.json").read_text())
    assert mixed["seeds"] == [42, 1, 2] and set(mixed["rows"]) == {"simcit", "rqvae"}
    assert mixed["rows"]["simcit"]["ndcg@10"]["mean"] == pytest.approx(0.06)
    assert mixed["rows"]["rqvae"]["ndcg@10"]["mean"] == pytest.approx(0.03)
    assert mixed["runs"][0].endswith("--results-name r42 (rows rqvae)")
    with pytest.raises(SystemExit, match="differ in \\['lr'\\] for row simcit"):   # rows compared per row
        bench.main(["--seeds-summary", *(f"{p}:rqvae" for p in paths[:2]), *again[:1],
                    run("1", {"simcit": 0.05}, " --methods simcit --lr 0.01")])
    # refits (--refit-with-validation files) are summarised by the seeds and settings of the runs they refit
    refits = []
    for path, value in zip(paths, (0.05, 0.06, 0.07)):
        source = json.loads(Path(path).read_text())
        refit = {"command": f"python benchmarks/recommend.py --refit-with-validation {path} --methods simcit",
                 "refit_of": {"file": Path(path).name, "command": source["command"]},
                 "rows": {"simcit": {"epochs": 4, "test": {"recall@10": 2 * value, "ndcg@10": value}}}}
        refits.append(str(tmp_path / f"refit-{Path(path).name}"))
        Path(refits[-1]).write_text(json.dumps(refit))
    assert bench.main(["--seeds-summary", *refits, "--results-name", "refits"]) == 0
    out = json.loads((tmp_path / "results" / "refits.json").read_text())
    assert out["seeds"] == [42, 1, 2] and out["rows"]["simcit"]["ndcg@10"]["mean"] == pytest.approx(0.06)
    assert out["rows"]["simcit"]["best_epoch"] == [4, 4, 4]
    # --patience-window: a run that trained to its epoch cap (--epochs 30) never stopped early, so it is also the
    # run of any window; a run that stopped early under another window is not comparable
    stopped = [run(seed, {"simcit": 0.04}, f" --methods simcit --epochs 30{flag}") for seed, flag in
               (("42", ""), ("1", " --patience-window 3"))]
    with pytest.raises(SystemExit, match="differ in \\['patience_window'\\] for row simcit"):
        bench.main(["--seeds-summary", *stopped])
    capped = run("42", {"simcit": 0.02}, " --methods simcit --epochs 30 --seed 42", epochs=30.0)
    assert bench.main(["--seeds-summary", capped, stopped[1], "--results-name", "windows"]) == 0
    assert json.loads((tmp_path / "results" / "windows.json").read_text())["rows"]["simcit"]["ndcg@10"]["mean"] \
        == pytest.approx(0.03)


def test_seeds_summary_takes_the_simcit_row_of_an_ablation_rows_seeds(bench, tmp_path, monkeypatch):
    """``ABLATION_FILE#ROW``: the generators a SimCIT ablation row trained, one per seed, summarised as the
    simcit row beside recommend.py's own rows of the same seeds, with their settings compared across seeds."""
    import json

    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(bench.reporting, "RESULTS_MD", tmp_path / "benchmarks" / "RESULTS.md")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "results").mkdir()
    paths = []
    for seed, value in (("42", 0.03), ("1", 0.02), ("2", 0.025)):
        paths.append(str(tmp_path / f"rqkmeans{seed}.json"))
        Path(paths[-1]).write_text(json.dumps({
            "command": f"python benchmarks/recommend.py --dataset beauty --methods rqkmeans --seed {seed} "
                       "--cf lgmd-sequential --epochs 40 --patience 10",
            "rows": {"rqkmeans": {"test": {"recall@10": 2 * value, "ndcg@10": value}, "epochs": 30.0,
                                  "best_epoch": 20.0, "train_s": 5.0}}}))

    def seed_run(seed: int, ndcg: float | None, extra: str = "") -> dict:
        run = {"seed": seed, "raw_collision": 0.03, "test": {"ndcg@10": ndcg, "recall@10": ndcg and 2 * ndcg},
               "command": f"python benchmarks/simcit_ablation.py --dataset beauty --seed {seed} --rows R "
                          f"--downstream R{extra}"}
        if ndcg is not None:
            run["generator"] = {"epochs": 40.0, "best_epoch": 30.0 + seed % 10, "train_s": 9.0}
        return run

    def ablation(runs: list[dict]) -> str:
        path = tmp_path / "ablation.json"
        path.write_text(json.dumps({"rows": [
            {"name": "other", "settings": {"cf": "svd-32"}, "per_seed": [seed_run(42, 0.5)]},
            {"name": "R", "settings": {"cf": "lgmd-sequential", "seeds": [r["seed"] for r in runs]},
             "per_seed": runs}]}))
        return str(path)

    # seed 7 measured the quantizer only: no generator, so it is not one of the summary's seeds
    abl = ablation([seed_run(1, 0.04), seed_run(2, 0.02), seed_run(7, None), seed_run(42, 0.03)])
    assert bench.main(["--seeds-summary", *paths, f"{abl}#R", "--results-name", "mixed"]) == 0
    out = json.loads((tmp_path / "results" / "mixed.json").read_text())
    assert out["seeds"] == [42, 1, 2] and set(out["rows"]) == {"rqkmeans", "simcit"}
    simcit = out["rows"]["simcit"]
    assert simcit["ndcg@10"]["values"] == pytest.approx([0.03, 0.04, 0.02])
    assert simcit["recall@10"]["mean"] == pytest.approx(0.06) and simcit["best_epoch"] == [32.0, 31.0, 32.0]
    assert out["rows"]["rqkmeans"]["ndcg@10"]["mean"] == pytest.approx(0.025)
    assert any(run.startswith("python benchmarks/simcit_ablation.py") and "--seed 2 " in run for run in out["runs"])
    assert "SimCIT / RQ-KMeans SIDs N@10 1.20x" in (tmp_path / "benchmarks" / "RESULTS.md").read_text()
    # a seed whose generator trained under another protocol is no seed of the same row
    abl = ablation([seed_run(1, 0.04), seed_run(2, 0.02, " --dropout 0.1"), seed_run(42, 0.03)])
    with pytest.raises(SystemExit, match="differ in \\['dropout'\\] for row simcit"):
        bench.main(["--seeds-summary", *paths, f"{abl}#R"])
    with pytest.raises(SystemExit, match="no ablation row named 'nope'"):
        bench.main(["--seeds-summary", *paths, f"{abl}#nope"])
    with pytest.raises(SystemExit, match="trained no generator"):
        bench.main(["--seeds-summary", *paths, f"{ablation([seed_run(7, None)])}#R"])


def test_missing_data_is_one_line_and_exit_status_2(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "CACHE", tmp_path / "cache")
    monkeypatch.setitem(bench.DATA_DIRS, "foursquare-nyc", tmp_path / "nowhere")
    assert bench.main(["--dataset", "foursquare-nyc", "--methods", "popularity", "--no-results"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "nowhere" in err[0] and "not found" in err[0], err


def test_merge_takes_whole_files_or_the_rows_named(bench, tmp_path, monkeypatch):
    """``--merge A B:sasrec``: one results file from several runs; a row two sources hold is refused."""
    import json

    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path)

    def source(name: str, rows: dict, flags: str = "") -> str:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"date": "2026-12-05T00:00:00Z", "command": f"python benchmarks/recommend.py "
                                    f"--results-name {name}{flags}", "device": "2 CPU cores", "wall_s": 10.0,
                                    "rows": {m: {"test": {"ndcg@10": v}} for m, v in rows.items()}}))
        return str(path)

    generators = source("generators", {"simcit": 0.03, "rqkmeans": 0.02})
    old = source("old", {"simcit": 0.01, "sasrec": 0.04, "popularity": 0.005})
    assert bench.main(["--merge", generators, f"{old}:sasrec,popularity", "--results-name", "merged"]) == 0
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert {m: r["test"]["ndcg@10"] for m, r in merged["rows"].items()} == {
        "simcit": 0.03, "rqkmeans": 0.02, "sasrec": 0.04, "popularity": 0.005}
    assert f"--merge {generators} {old}:sasrec,popularity" in merged["command"]
    assert merged["wall_s"] == 10.0                 # the whole file's; the rows taken from "old" have no train_s
    assert bench.main(["--merge", generators, f"{old}:sasrec", "--merge-wall-s", "7200", "--results-name", "m2"]) == 0
    assert json.loads((tmp_path / "m2.json").read_text())["wall_s"] == 7200.0   # measured outside the sources
    with pytest.raises(SystemExit, match="rows \\['simcit'\\] appear in more than one"):
        bench.main(["--merge", generators, old, "--results-name", "clash"])
    # rows are merged only where the options their figures depend on agree
    other_lr = source("lr", {"rqvae": 0.02}, " --lr 0.01 --jobs 2")
    with pytest.raises(SystemExit, match="rows simcit and rqvae were run with different lr \\(0.001 / 0.01\\)"):
        bench.main(["--merge", generators, other_lr, "--results-name", "x"])
    sasrec = source("sasrec", {"sasrec": 0.05}, " --dropout 0.5 --threads 1")   # a generator option: not SASRec's
    assert bench.main(["--merge", generators, sasrec, "--results-name", "ok"]) == 0
    other_seed = source("seed", {"sasrec": 0.05}, " --seed 1")
    with pytest.raises(SystemExit, match="different seed"):
        bench.main(["--merge", generators, other_seed, "--results-name", "x"])
    knn = source("knn", {"knn": 0.04, "popularity": 0.005}, " --cf sequential")
    with pytest.raises(SystemExit, match="rows simcit and knn were run with different cf"):
        bench.main(["--merge", generators, knn, "--results-name", "x"])
    assert bench.main(["--merge", generators, f"{knn}:popularity", "--results-name", "ok"]) == 0
    warmer = source("t03", {"rqvae": 0.02}, " --simcit-set contrastive_temperature=0.3")   # not rqvae's option
    assert bench.main(["--merge", generators, warmer, "--results-name", "ok"]) == 0
    sampled = source("ss", {"sasrec": 0.05}, " --sasrec-set negatives=256")     # SASRec's own: not the generators'
    assert bench.main(["--merge", generators, sampled, "--results-name", "ok"]) == 0
    plain, ss = (vars(bench.recorded_options(f"python benchmarks/recommend.py{flags}"))
                 for flags in ("", " --sasrec-set negatives=256"))
    assert bench._differing(bench.row_protocol("sasrec", plain, {}), bench.row_protocol("sasrec", ss, {})) == [
        "sasrec_set"]                                  # two SASRec runs with different losses never merge


def test_sasrec_set_overrides_config_fields_with_their_types(bench):
    assert bench.sasrec_overrides(["negatives=256", "dropout=0.2", "objective=last_position"]) == {
        "negatives": 256, "dropout": 0.2, "objective": "last_position"}
    assert bench.sasrec_overrides(None) == {}
    with pytest.raises(SystemExit, match="--sasrec-set 'seed=3': expected KEY=VALUE with KEY one of hidden_size"):
        bench.sasrec_overrides(["seed=3"])         # the run's --seed, not a SASRec setting
    with pytest.raises(SystemExit, match="--sasrec-set 'negatives=many': negatives takes a int"):
        bench.sasrec_overrides(["negatives=many"])
    assert bench.sasrec_overrides(["eval_exclude_history=True"]) == {"eval_exclude_history": True}
    assert bench.sasrec_overrides(["eval_exclude_history=false"]) == {"eval_exclude_history": False}
    with pytest.raises(SystemExit, match="eval_exclude_history takes a bool"):   # bool("no") would be True
        bench.sasrec_overrides(["eval_exclude_history=no"])


def test_simcit_set_overrides_one_recipe_field_and_names_an_unknown_one(bench, tmp_path):
    from hf_simcit.errors import SimCITInputError

    args = bench.build_parser().parse_args(["--dataset", "beauty", "--simcit-set", "contrastive_temperature=0.5",
                                            "--simcit-set", "max_steps=7"])
    recipe = bench.quantizer_recipe("beauty", args, tmp_path)
    assert (recipe.contrastive_temperature, recipe.max_steps) == (0.5, 7)
    assert bench.quantizer_recipe("beauty", bench.build_parser().parse_args(["--dataset", "beauty"]),
                                  tmp_path).contrastive_temperature == 0.3          # the recipe's own
    with pytest.raises(SimCITInputError, match="unknown key 'nope'"):
        bench.quantizer_recipe("beauty", bench.build_parser().parse_args(["--simcit-set", "nope=1"]), tmp_path)
