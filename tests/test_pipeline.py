"""The one-command pipeline (``hf-simcit run``): every stage on a tiny table, resume, reruns, bad recipes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from hf_simcit.cli import main
from hf_simcit.errors import SimCITInputError
from hf_simcit.pipeline import STAGES, load_pipeline, run_pipeline

NUM_USERS, NUM_ITEMS = 48, 24
RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _write_table(folder: Path) -> Path:
    """Users walk through the catalogue in steps of 1 or 2 from a user-specific start: a learnable pattern."""
    rows = ["user_id,item_id,timestamp"]
    for user in range(NUM_USERS):
        step = 1 + user % 2
        for t in range(9):
            rows.append(f"u{user},i{(user * 5 + step * t) % NUM_ITEMS},{t}")
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n")
    genres = ["comedy", "drama", "horror", "space opera"]
    texts = ["item_id,text"] + [f"i{i},a {genres[i % 4]} film number {i}" for i in range(NUM_ITEMS)]
    (folder / "items.csv").write_text("\n".join(texts) + "\n")
    return folder / "interactions.csv"


def _pipeline(tmp_path: Path, run_name: str = "run", **extra) -> Path:
    """A pipeline.yaml with the ML-100K stage recipes and budgets shrunk to seconds."""
    data = _write_table(tmp_path)
    recipe = {
        "dataset": "table",
        "data_dir": str(data),
        "run_dir": str(tmp_path / run_name),
        "prepare": {"item_text_file": str(tmp_path / "items.csv"), "max_history": 6},
        "features_recipe": str(RECIPES / "ml-100k" / "features.yaml"),
        "lgmd_recipe": str(RECIPES / "ml-100k" / "lgmd.yaml"),
        "quantizer_recipe": str(RECIPES / "ml-100k" / "quantizer.yaml"),
        "recommender_recipe": str(RECIPES / "ml-100k" / "recommender.yaml"),
        "overrides": {
            "features": {"cache_dir": str(tmp_path / "cache"), "text_max_length": 16, "progress": False},
            "lgmd": {"rank": 4, "max_iter": 3, "progress": False},
            "quantizer": {"latent_dim": 8, "encoder_hidden_sizes": [16], "num_levels": 2, "codebook_size": 4,
                          "max_steps": 6, "eval_steps": 3, "per_device_batch_size": 8, "warmup_steps": 1,
                          "codebook_refresh_steps": 0, "show_progress": False},
            "recommender": {"tiny_hidden_size": 16, "tiny_num_layers": 1, "tiny_num_heads": 2,
                            "tiny_intermediate_size": 32, "max_steps": 8, "per_device_train_batch_size": 16,
                            "learning_rate": 1e-2, "eval_steps": 4, "save_steps": 2, "logging_steps": 2,
                            "eval_max_examples": 8, "eval_num_beams": 10},
            "sasrec": {"hidden_size": 8, "num_layers": 1, "num_heads": 1, "num_epochs": 1},
        },
        "eval_num_beams": 10,
        **extra,
    }
    path = tmp_path / f"{run_name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete tiny run: (pipeline path, result, printed output is not needed)."""
    tmp = tmp_path_factory.mktemp("pipeline")
    path = _pipeline(tmp)
    return path, run_pipeline(load_pipeline(path))


def test_every_stage_writes_its_artifact_and_the_report(finished):
    path, result = finished
    run = Path(result["run_dir"])
    for part in ("data/stats.json", "features/features.json", "lgmd/lgmd.json", "lgmd/items",
                 "quantizer/model.safetensors", "quantizer/sid_table.json", "quantizer/sid_assignment.json",
                 "recommender/train_log.json", "eval/metrics.json", "baselines/sasrec.json", "report.md",
                 "plots/training_curves.png", "plots/codebook_usage.png", "plots/recall_at_k.png"):
        assert (run / part).exists(), part
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["invalid_items"] == 0
    assert metrics["num_examples"] == NUM_USERS  # every test user, full ranking
    assert 0.0 <= metrics["ndcg@10"] <= metrics["recall@10"] <= 1.0
    report = (run / "report.md").read_text()
    # the recipe's head serves the hybrid its training chose: the row says so and names the weight
    weight = metrics["hybrid_weight"]
    label = "SimCIT SIDs + Llama from config" + (f", hybrid with its dense head (W {weight:g})" if weight else "")
    assert f"| {label} |" in report and "| SASRec (same split, own early stopping) |" in report
    assert f"{metrics['recall@10']:.4f}" in report
    state = json.loads((run / "pipeline.json").read_text())["stages"]
    assert [s for s in STAGES if state.get(s, {}).get("status") == "done"] == [
        "prepare", "features", "lgmd", "quantizer", "assign", "recommender", "evaluate", "baselines", "report"]
    # the quantizer read LGMD's collaborative column next to the text column
    assignment = json.loads((run / "quantizer" / "sid_assignment.json").read_text())
    assert assignment["num_items"] == NUM_ITEMS and assignment["unique_share"] == 1.0
    from datasets import load_from_disk

    items = load_from_disk(str(run / "lgmd" / "items"))
    assert {"text_embedding", "cf_embedding"} <= set(items.column_names)
    assert "cf_embedding" not in load_from_disk(str(run / "features")).column_names
    # SASRec trains on its own budget (the recipe's epoch cap, early stopping), not the generator's steps
    sasrec = json.loads((run / "baselines" / "sasrec.json").read_text())
    assert (sasrec["epochs"], sasrec["best_epoch"]) == (1, 1) and sasrec["config"]["num_epochs"] == 1
    assert sasrec["history"][0]["seconds"] > 0 and sasrec["num_examples"] == NUM_USERS
    # the non-learned baselines: every test user, the same numbers as the library call, rows in the report
    from hf_simcit.baselines.popularity import evaluate_baseline, item_popularity
    from hf_simcit.data import load_prepared

    prepared = load_prepared(run / "data")
    popularity = item_popularity(prepared.splits["train"]["target"], prepared.num_items)
    for name, label in (("history", "| history: the user's most frequent items (no training) |"),
                        ("popularity", "| popularity: most frequent training targets (no training) |")):
        saved = json.loads((run / "baselines" / f"{name}.json").read_text())
        assert saved["num_examples"] == NUM_USERS and saved["invalid_items"] == 0
        assert saved == pytest.approx(evaluate_baseline(name, prepared.splits["test"], popularity))
        assert label in report and f"{saved['recall@10']:.4f}" in report
    # ... and the note that says why the history row is what it is, counted on the test split
    test = prepared.splits["test"]
    repeats = sum(int(t) in set(h) for h, t in zip(test["history"], test["target"]))
    assert f"- history baseline: {repeats:,} of {NUM_USERS:,} test targets ({repeats / NUM_USERS:.1%})" in report


def test_rerun_skips_finished_stages_and_changed_settings_rerun_downstream(finished, capsys):
    path, result = finished
    run = Path(result["run_dir"])
    before = (run / "eval" / "metrics.json").read_text()
    quantizer_mtime = (run / "quantizer" / "model.safetensors").stat().st_mtime_ns
    run_pipeline(load_pipeline(path))
    out = capsys.readouterr().out
    for stage in ("prepare", "features", "lgmd", "quantizer", "assign", "recommender", "evaluate", "baselines"):
        assert f"{stage}: done earlier, skipped" in out
    assert (run / "eval" / "metrics.json").read_text() == before
    # a recommender setting changes: upstream stays, the recommender and everything after it run again
    run_pipeline(load_pipeline(path, {"recommender.learning_rate": 5e-3}))
    out = capsys.readouterr().out
    assert "quantizer: done earlier, skipped" in out and "recommender: done earlier" not in out
    assert (run / "quantizer" / "model.safetensors").stat().st_mtime_ns == quantizer_mtime
    log = json.loads((run / "recommender" / "train_log.json").read_text())
    assert log["final_step"] == 8


def test_interrupted_training_resumes_to_the_same_metrics(tmp_path, monkeypatch):
    import hf_simcit.training.recommender as training

    path = _pipeline(tmp_path, "interrupted", baselines=[])
    reference = _pipeline(tmp_path, "reference", baselines=[])
    original = training.train_recommender

    def killed_after_step_5(*args, **kwargs):
        def stop(step, logs):
            if step == 5:
                raise KeyboardInterrupt  # as if the machine went away after the step-4 checkpoint

        return original(*args, **kwargs, step_callback=stop)

    monkeypatch.setattr(training, "train_recommender", killed_after_step_5)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(load_pipeline(path))
    run = tmp_path / "interrupted"
    state = json.loads((run / "pipeline.json").read_text())["stages"]
    assert state["recommender"]["status"] == "running" and state["quantizer"]["status"] == "done"
    assert (run / "recommender_checkpoints" / "checkpoint-4").is_dir()
    assert not (run / "eval").exists()
    interrupted_s = state["recommender"]["seconds_so_far"]
    assert interrupted_s > 0
    monkeypatch.setattr(training, "train_recommender", original)
    run_pipeline(load_pipeline(path))  # the same command again: resumes from checkpoint-4
    # timed over both attempts, not by the resumed part only
    state = json.loads((run / "pipeline.json").read_text())["stages"]["recommender"]
    assert state["resumed_after_s"] == interrupted_s and state["seconds"] > interrupted_s
    run_pipeline(load_pipeline(reference))  # uninterrupted, same seed
    resumed = json.loads((run / "eval" / "metrics.json").read_text())
    uninterrupted = json.loads((tmp_path / "reference" / "eval" / "metrics.json").read_text())
    assert resumed == uninterrupted


def test_cli_run_prints_the_metrics_table(finished, capsys):
    path, result = finished
    code = main(["run", str(path), "--stages", "evaluate,report", "--set", "eval_max_examples=10"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| system | Recall@5 | NDCG@5 | Recall@10 | NDCG@10 | MRR |" in out
    metrics = json.loads((Path(result["run_dir"]) / "eval" / "metrics.json").read_text())
    assert metrics["num_examples"] == 10


@pytest.mark.parametrize(("content", "message"), [
    ({"dataset": "ml-100k", "colour": "red"}, "unknown key 'colour'"),
    ({"run_dir": "x"}, "needs a 'dataset'"),
    ({"dataset": "ml-100k", "stages": ["prepare", "dance"]}, "unknown stage 'dance'"),
    ({"dataset": "ml-100k", "overrides": {"quantiser": {"max_steps": 1}}}, "unknown stage 'quantiser'"),
    ({"dataset": "ml-100k", "quantizer_recipe": "nope.yaml"}, "nope.yaml"),
    ({"dataset": "ml-100k", "overrides": {"quantizer": {"max_stepz": 1}}}, "quantizer recipe: unknown key 'max_stepz'"),
    ({"dataset": "ml-100k", "disambiguation_order": "popularity"}, "disambiguation_order must be index, random"),
    ({"dataset": "ml-100k", "baselines": ["sasrec", "itemknn"]}, "unknown baseline 'itemknn'; available: sasrec"),
    ({"dataset": "ml-100k", "overrides": {"features": {"modalities": ["text", "cf"]}}},
     "includes cf, but the pipeline's lgmd_recipe writes cf_embedding"),
])
def test_bad_pipeline_recipes_name_the_problem(tmp_path, content, message):
    from hf_simcit.pipeline import plan_stages

    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(content))
    for recipe in ("features", "lgmd", "quantizer", "recommender"):
        (tmp_path / f"{recipe}.yaml").write_text((RECIPES / "ml-100k" / f"{recipe}.yaml").read_text())
    with pytest.raises(SimCITInputError, match=message):
        plan_stages(load_pipeline(path))


def test_the_collaborative_modality_has_one_route(tmp_path):
    """With an lgmd_recipe, LGMD writes cf_embedding and the features stage computes text only (its default
    is text + cf); without one, the features stage's own cf is kept."""
    from hf_simcit.pipeline import plan_stages

    features = yaml.safe_load((RECIPES / "ml-100k" / "features.yaml").read_text())
    features.pop("modalities")
    (tmp_path / "features.yaml").write_text(yaml.safe_dump(features))
    (tmp_path / "lgmd.yaml").write_text((RECIPES / "ml-100k" / "lgmd.yaml").read_text())
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"dataset": "ml-100k", "run_dir": str(tmp_path / "run"),
                                    "quantizer_recipe": str(RECIPES / "ml-100k" / "quantizer.yaml"),
                                    "recommender_recipe": str(RECIPES / "ml-100k" / "recommender.yaml")}))
    with_lgmd = plan_stages(load_pipeline(path))
    assert with_lgmd.features.modalities == ["text"] and with_lgmd.quantizer_items == tmp_path / "run" / "lgmd" / "items"
    without = plan_stages(load_pipeline(path, {"lgmd_recipe": None}))
    assert without.lgmd is None and without.features.modalities == ["text", "cf"]


def test_run_pipeline_restores_transformers_progress_bars(finished, tmp_path):
    """Off while the stages run (their own bars stay readable), as they were after, also after a failure."""
    from transformers.utils import logging as transformers_logging

    path, _ = finished
    before = transformers_logging.is_progress_bar_enabled()
    during = []
    run_pipeline(load_pipeline(path, {"stages": ["report"]}),
                 on_stage=lambda stage: during.append(transformers_logging.is_progress_bar_enabled()))
    assert during == [False] and transformers_logging.is_progress_bar_enabled() == before
    with pytest.raises(SimCITInputError, match="metrics.json is missing"):
        run_pipeline(load_pipeline(path, {"stages": ["report"], "run_dir": str(tmp_path / "empty")}))
    assert transformers_logging.is_progress_bar_enabled() == before


def test_cli_bad_set_is_one_line(tmp_path, capsys):
    code = main(["run", str(RECIPES / "ml-100k" / "pipeline.yaml"), "--set", "no-equals-sign"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "expected KEY=VALUE" in err


@pytest.mark.parametrize("name", ["ml-100k", "beauty", "scientific", "yelp", "foursquare-nyc"])
def test_shipped_pipeline_recipes_plan(name, tmp_path):
    """Every shipped pipeline.yaml parses and resolves its stage recipes into the run folder."""
    from hf_simcit.pipeline import plan_stages

    args = load_pipeline(RECIPES / name / "pipeline.yaml", {"run_dir": str(tmp_path / name)})
    plan = plan_stages(args)
    assert plan.quantizer.output_dir == str(tmp_path / name / "quantizer")
    assert plan.recommender[1].sid_dir == str(tmp_path / name / "quantizer")
    assert plan.features.output == str(tmp_path / name / "features")


@pytest.mark.parametrize(("name", "hidden_size"), [("ml-100k", 64), ("beauty", 128), ("foursquare-nyc", 64),
                                                   ("scientific", 64), ("yelp", 64)])
def test_shipped_recipes_train_the_sasrec_their_validation_chose(name, hidden_size, tmp_path):
    """SASRec's size is chosen per data set on validation: the package default 2 x 128 (Beauty's choice), and 2 x 64
    where ML-100K's validation prefers it (benchmarks/results/recommend-*-sasrec-h*-seeds.json); the data sets
    without that validation keep 2 x 64, the size their figures were measured at."""
    from hf_simcit.baselines.sasrec import SASRecConfig
    from hf_simcit.baselines.suite import check_sasrec_options

    args = load_pipeline(RECIPES / name / "pipeline.yaml", {"run_dir": str(tmp_path / name)})
    options, _ = check_sasrec_options(args.overrides.get("sasrec") or {})
    assert SASRecConfig(num_items=10, **options).hidden_size == hidden_size


def test_push_stage_sends_the_run_to_the_hub_and_it_loads_by_repo_id(finished, local_hub, hub_repo_id, capsys):
    """The pipeline's push stage: the LGMD-processed item table, the quantizer + tokenizer, the recommender."""
    from datasets import load_dataset, load_from_disk
    from transformers import AutoModel, AutoTokenizer

    from hf_simcit.tokenization_simcit import SimCITTokenizer

    path, result = finished
    run = Path(result["run_dir"])
    code = main(["run", str(path), "--stages", "push", "--push-to-hub", hub_repo_id])
    assert code == 0
    state = json.loads((run / "pipeline.json").read_text())["stages"]["push"]
    repos = {name: entry["repo_id"] for name, entry in state["pushed"].items()}
    assert set(repos) == {"quantizer", "adapter", "dataset", "space"} and repos["space"] == f"{hub_repo_id}-demo"
    from hf_simcit.app import DemoEngine  # what the pushed Space loads: the same run as the local folder

    remote, here = DemoEngine.load(hub_repo_id), DemoEngine.load(run)
    assert remote.describe() == here.describe().replace(str(run), hub_repo_id)
    assert remote.recommend(here.item_ids[:3], 5) == here.recommend(here.item_ids[:3], 5)
    items = load_dataset(repos["dataset"], "items", split="train")
    local = load_from_disk(str(run / "lgmd" / "items"))
    assert items["cf_embedding"] == local["cf_embedding"] and items["item_id"] == local["item_id"]
    tokenizer = AutoTokenizer.from_pretrained(repos["quantizer"])
    assert isinstance(tokenizer, SimCITTokenizer)
    assert tokenizer.codes.tolist() == SimCITTokenizer.from_pretrained(str(run / "quantizer")).codes.tolist()
    quantizer = AutoModel.from_pretrained(repos["quantizer"])
    assert type(quantizer).__name__ == "SimCITQuantizer"


@pytest.mark.parametrize(("sasrec", "message"), [
    ({"hiden_size": 32}, "overrides.sasrec: unknown key 'hiden_size'"),
    ({"dropout": "lots"}, "overrides.sasrec: dropout must be a float"),
    ({"objective": "pairwise"}, "SASRecConfig.objective must be one of"),
    ({"hidden_size": 30, "num_heads": 4}, "hidden_size (30) must be divisible by num_heads (4)"),
    ({"dropout": 1.0}, "SASRecConfig.dropout must be in [0, 1), got 1.0"),
    ({"max_steps": "many"}, "overrides.sasrec: max_steps must be int or null, got 'many'"),
    ({"num_items": 10}, "overrides.sasrec: num_items is the data set's"),
])
def test_bad_sasrec_overrides_stop_the_run_before_its_first_stage(tmp_path, sasrec, message):
    """SASRec trains in the baselines stage, after the generator: its settings are checked when the run is
    planned, like every other stage's, not hours later."""
    from hf_simcit.pipeline import plan_stages

    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"dataset": "ml-100k", "overrides": {"sasrec": sasrec}}))
    (tmp_path / "features.yaml").write_text((RECIPES / "ml-100k" / "features.yaml").read_text())
    for name in ("lgmd", "quantizer", "recommender"):
        (tmp_path / f"{name}.yaml").write_text((RECIPES / "ml-100k" / f"{name}.yaml").read_text())
    with pytest.raises(SimCITInputError, match=re.escape(message)):
        plan_stages(load_pipeline(path))
