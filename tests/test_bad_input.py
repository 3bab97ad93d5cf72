"""Issue 12: bad input, tried as a new user would. Every case of ``benchmarks/bad_input.py`` goes through the
CLI (``hf_simcit.cli.main``): one line naming the problem, exit status 2, nothing written or changed (or, for the
inputs that are dropped-and-counted or cut, exit 0 with the count or note). Then the library paths a user takes
from Python: ``AutoModel.from_pretrained`` on a pickle, the tokenizer's edge cases, overflowing features,
duplicates in stats.json, the beam default, ``--set prepare.*`` and the pipeline's timing of a resumed stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import benchmark_module

from hf_simcit.cli import main
from hf_simcit.errors import SimCITInputError

ROOT = Path(__file__).resolve().parents[1]
bench = benchmark_module("bad_input")


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield bench.build_fixtures(tmp_path_factory.mktemp("bad-input"))
    torch.set_num_threads(before)


@pytest.fixture()
def cli(capsys, monkeypatch):
    """The runner of ``bench.run_case`` in this process: ``(argv, env) -> (exit code, stdout, stderr)``.

    The datasets/transformers progress bars are off, as the benchmark's subprocess runner has them
    (``TQDM_DISABLE=1``): the one-line promise is about the error, not the "Loading weights" bar (these cases
    passed in a full run only while an earlier ``run_pipeline`` had left transformers' bars off process-wide)."""
    from hf_simcit.utils.progress import progress_bars_off

    def run(argv: list[str], env: dict) -> tuple[int, str, str]:
        for key, value in env.items():
            monkeypatch.delenv(key, raising=False) if value is None else monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            with progress_bars_off("transformers"), progress_bars_off("datasets"):
                code = main(argv)
        except SystemExit as exit_:       # argparse's own errors
            code = exit_.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


@pytest.mark.parametrize("case", bench.CASES, ids=[c.name for c in bench.CASES])
def test_bad_input_through_the_cli(case, fx, cli):
    row = bench.run_case(case, fx, cli)
    assert case.expect in row["message"] or case.exit_code == 0, row
    assert not row["traceback"], row
    assert row["exit_code"] == case.exit_code, row
    if case.exit_code == 2:
        assert row["one_line"] and not row["wrote_output"], row
    assert row["ok"], row


def test_every_issue_item_has_a_cli_case():
    assert {c.item for c in bench.CASES} >= {1, 2, 3, 4, 5, 6, 8, 9, 10}
    assert len({c.name for c in bench.CASES}) == len(bench.CASES)


# ------------------------------------------------------------------------------------------ 1. pickle
REMOTE_LOAD = """
import json, sys
from transformers import AutoModel
try:
    AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
    error = None
except Exception as err:
    error = f"{type(err).__name__}: {err}"
print(json.dumps({"error": error, "hf_simcit_loaded": any(m.split(".")[0] == "hf_simcit" for m in sys.modules)}))
"""


def test_automodel_refuses_a_pickle_with_and_without_remote_code(fx, tmp_path):
    from test_tokenizer_auto import run_python
    from transformers import AutoModel

    folder = bench._pickle_instead(bench._copy(fx.quantizer, tmp_path / "q"), "model.safetensors",
                                   "pytorch_model.bin")
    with pytest.raises(SimCITInputError, match="refusing to load pytorch_model.bin"):
        AutoModel.from_pretrained(folder)
    with pytest.raises(SimCITInputError, match="safetensors only"):
        AutoModel.from_pretrained(fx.quantizer, use_safetensors=False)
    assert AutoModel.from_pretrained(fx.quantizer).config.num_levels == 2        # the good folder still loads
    out = run_python(REMOTE_LOAD, tmp_path, str(folder), hide_hf_simcit=True)
    assert out["error"].startswith("SimCITInputError: ") and "refusing to load pytorch_model.bin" in out["error"]
    assert not out["hf_simcit_loaded"]      # the copied remote code refused it, without hf_simcit installed


def test_nothing_the_package_writes_is_a_pickle(fx):
    from hf_simcit.safe_files import unsafe_reason

    written = [p for folder in (fx.quantizer, fx.recommender, fx.data) for p in folder.rglob("*") if p.is_file()]
    assert written and [p for p in written if unsafe_reason(p)] == []


# ------------------------------------------------------------------------------------------ 4. duplicates
def test_duplicates_are_dropped_and_counted_or_kept_by_option(tmp_path):
    from hf_simcit.data import prepare_dataset

    table = tmp_path / "t.csv"
    table.write_text("\n".join(bench._table_rows(duplicate_every=7)) + "\n")   # one copied row per user
    dropped = prepare_dataset("table", table, min_user_interactions=2, min_item_interactions=2)
    kept = prepare_dataset("table", table, min_user_interactions=2, min_item_interactions=2, keep_duplicates=True)
    assert dropped.stats["read"]["dropped_by_reader"] == {"duplicate_rows": bench.NUM_USERS}
    assert dropped.stats["interactions"] == bench.NUM_USERS * 7
    assert kept.stats["read"]["dropped_by_reader"] == {} and kept.stats["interactions"] == bench.NUM_USERS * 8
    # without timestamps only a user's immediate repeat is a copy; a later repeat is a real repeat consumption
    (tmp_path / "f.csv").write_text("user_id,item_id\nu,a\nv,a\nu,a\nu,b\nu,a\nv,b\nv,c\n")
    rec = prepare_dataset("table", tmp_path / "f.csv", timestamp_column=None, min_user_interactions=1,
                          min_item_interactions=1)
    assert rec.stats["read"]["dropped_by_reader"] == {"duplicate_rows": 1} and rec.stats["interactions"] == 6


# ------------------------------------------------------------------------------------------ 6, 7. recommend
def test_long_histories_are_cut_and_the_beam_does_not_depend_on_k(fx):
    from hf_simcit.recommender.inference import default_num_beams, recommend_items
    from hf_simcit.recommender.modeling import load_recommender

    rec = load_recommender(fx.recommender)
    assert (rec.max_history, rec.eval_num_beams) == (bench.MAX_HISTORY, 10)
    history = [f"i{j % bench.NUM_ITEMS}" for j in range(10_000)]
    assert recommend_items(rec, [history], k=5) == recommend_items(rec, [history[-bench.MAX_HISTORY:]], k=5)
    assert default_num_beams(rec, 3) == default_num_beams(rec, 10) == 20
    top10 = [item for item, _ in recommend_items(rec, [history], k=10)[0]]
    for k in (1, 3, 5):
        assert [item for item, _ in recommend_items(rec, [history], k=k)[0]] == top10[:k]


# ------------------------------------------------------------------------------------------ 10. smaller ones
def test_tokenizer_edge_cases(fx):
    from hf_simcit.tokenization_simcit import SimCITTokenizer

    tok = SimCITTokenizer.from_pretrained(fx.quantizer)
    first = tok.item_ids[0]
    with pytest.raises(SimCITInputError, match=f"token id {tok.vocab_size + 100} is outside"):
        tok.decode_items([tok.vocab_size + 100] * tok.num_levels)
    with pytest.raises(SimCITInputError, match="token id -1 is outside"):
        tok.decode_items([-1] * tok.num_levels)
    padded = tok.item_to_sid(first).replace("_", "_0", 1)                       # <a_03>
    with pytest.raises(SimCITInputError, match="leading zero"):
        tok.sid_to_item(padded)
    with pytest.raises(SimCITInputError):
        tok.encode(padded)
    numeric = SimCITTokenizer.from_codes([[0, 0], [1, 0]], ["50", "51"], [2, 2])
    assert numeric.item_to_sid(50) == numeric.item_to_sid("50") == "<a_0><b_0>"
    assert numeric.item_to_sid(np.int64(51)) == "<a_1><b_0>"            # ids read back from numpy arrays


def test_overflowing_features_are_an_error_naming_the_row(fx):
    from hf_simcit.modeling_simcit import SimCITQuantizer

    model = SimCITQuantizer.from_pretrained(fx.quantizer).eval()
    features = torch.randn(6, 8)
    features[4] = 1e38
    with pytest.raises(SimCITInputError, match="item row 4: its features overflow"):
        model.encode({"text": features})
    with pytest.raises(SimCITInputError, match="item row 4"):
        model.train()({"text": features})
    assert model.eval().encode({"text": features[:4]}).shape == (4, 2)


def test_set_prepare_keys_reach_the_prepare_stage(fx):
    from hf_simcit.pipeline import load_pipeline

    args = load_pipeline(fx.pipeline, {"prepare.min_user_interactions": 3, "prepare.max_history": "7"})
    assert args.prepare["min_user_interactions"] == 3 and args.prepare["max_history"] == 7
    with pytest.raises(SimCITInputError, match="prepare: unknown key 'min_users'"):
        load_pipeline(fx.pipeline, {"prepare.min_users": 3})


def test_recipe_values_are_converted_or_refused():
    from hf_simcit.training.recommender import RecommenderTrainingArguments
    from hf_simcit.utils.recipes import check_recipe_values, parse_overrides

    values = parse_overrides(["--max_steps", "40", "--learning_rate=1e-3", "--cpu", "--eval_ks", "1,5"])
    checked = check_recipe_values((RecommenderTrainingArguments,), values, "r.yaml")
    assert checked == {"max_steps": 40, "learning_rate": 1e-3, "cpu": True, "eval_ks": "1,5"}
    for bad, message in (({"max_steps": 2.5}, "max_steps must be an int, got 2.5"),
                         ({"cpu": "maybe"}, "cpu must be a bool"),
                         ({"eval_num_beams": 0}, "eval_num_beams must be at least 1"),
                         ({"eval_ks": "5,ten"}, "eval_ks must be comma-separated positive integers")):
        with pytest.raises(SimCITInputError, match=message):
            check_recipe_values((RecommenderTrainingArguments,), bad, "r.yaml")


def test_a_local_model_path_that_does_not_exist_stops_the_pipeline_before_any_stage(fx, tmp_path):
    from hf_simcit.pipeline import load_pipeline, plan_stages

    missing = str(tmp_path / "no-such-model")
    with pytest.raises(SimCITInputError, match=f"recommender recipe: model_name_or_path '{missing}' does not exist"):
        plan_stages(load_pipeline(fx.pipeline, {"recommender.model_name_or_path": missing}))
    with pytest.raises(SimCITInputError, match="text_encoder './nowhere' does not exist"):
        plan_stages(load_pipeline(fx.pipeline, {"features.text_encoder": "./nowhere"}))
    assert not (fx.root / "run").exists()


def test_resumed_stage_is_timed_over_every_attempt(tmp_path):
    from hf_simcit.pipeline import RunState

    state = RunState(tmp_path)
    state.update("recommender", fingerprint="f", status="running", seconds_so_far=30.0)   # killed after 30 s
    resumed = RunState(tmp_path)
    assert resumed.earlier_seconds("recommender", "f") == 30.0
    assert resumed.earlier_seconds("recommender", "other settings") == 0.0
    resumed.update("recommender", status="done")
    assert RunState(tmp_path).earlier_seconds("recommender", "f") == 0.0                # finished: nothing to add
    json.loads((tmp_path / "pipeline.json").read_text())


def test_a_pickled_npy_sid_table_is_refused_not_unpickled(tmp_path):
    import numpy as np

    from hf_simcit.training.recommender import load_sid_source

    np.save(tmp_path / "sids.npy", np.array([[0, 1], {"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SimCITInputError, match="not a plain integer code array"):
        load_sid_source(str(tmp_path / "sids.npy"))
    np.save(tmp_path / "plain.npy", np.array([[0, 1], [1, 0]]))
    assert load_sid_source(str(tmp_path / "plain.npy")).codes.tolist() == [[0, 1], [1, 0]]


def test_an_infinite_timestamp_is_an_error_not_a_test_target(tmp_path, cli):
    rows = bench._table_rows()
    table = bench._table(tmp_path, [*rows[:3], "u0,i5,inf", *rows[3:]])
    code, _, err = cli(bench._prepare(table, tmp_path), {})
    assert code == 2 and err.strip().splitlines() == [
        f"hf-simcit prepare: error: {table}:4: column 'timestamp' is not a finite time: 'inf'"]
    assert not (tmp_path / "out").exists()


def test_a_history_given_as_a_string_is_refused_not_read_letter_by_letter(fx, tmp_path, cli):
    histories = tmp_path / "h.jsonl"
    histories.write_text('{"history": ["i1", "i2"]}\n{"history": "i1 i2"}\n')
    code, out, err = cli(bench._recommend(fx.recommender, "--histories", str(histories)), {})
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"hf-simcit recommend: error: {histories}:2: 'history' must be a list of "
                                        "item ids, got 'i1 i2'"]


@pytest.mark.parametrize("loader", ["text_encoder", "image_encoder", "baseline_quantizer", "recommender_base"])
def test_every_other_loader_refuses_a_pickle_before_reading_the_folder(loader, tmp_path):
    """The loaders besides SimCITQuantizer and load_recommender: a folder with a pickle is refused by name
    before anything in it is read (here it holds nothing else: any earlier read would fail differently)."""
    import pickle

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": [1.0]}))
    if loader == "text_encoder":
        from hf_simcit.features.text import load_text_encoder as load
    elif loader == "image_encoder":
        from hf_simcit.features.image import load_image_encoder as load
    elif loader == "baseline_quantizer":
        from hf_simcit.quantizers import RQKMeansQuantizer

        load = RQKMeansQuantizer.from_pretrained
    else:
        from hf_simcit.recommender.modeling import _load_causal_lm as load
    with pytest.raises(SimCITInputError, match="refusing to load pytorch_model.bin: a pickle file"):
        load(str(folder))


@pytest.mark.parametrize(("override", "message"), [
    ({"recommender.objective": "bogus"}, "objective must be 'full_sequence', 'prefix' or 'auto', got 'bogus'"),
    ({"recommender.dtype": "float99"}, "model dtype must be float32, bfloat16 or float16, got 'float99'"),
    ({"recommender.num_train_epochs": "0"}, "num_train_epochs must be positive \\(or max_steps > 0\\)"),
])
def test_recommender_choices_and_budget_stop_the_pipeline_before_any_stage(fx, override, message):
    """Checked when the recipe is read, not when the recommender stage reaches them after the earlier stages
    (a training budget of 0 steps ended in a TypeError at the final validation)."""
    from hf_simcit.pipeline import load_pipeline, plan_stages

    with pytest.raises(SimCITInputError, match=message):
        plan_stages(load_pipeline(fx.pipeline, override))
    assert not (fx.root / "run").exists()


@pytest.mark.parametrize(("override", "message"), [
    ({"quantizer.codebook_init": "bogus"}, "codebook_init must be one of"),
    ({"quantizer.learning_rate": "-1"}, "learning_rate must not be negative"),
])
def test_quantizer_settings_stop_the_pipeline_before_any_stage(fx, override, message):
    from hf_simcit.pipeline import load_pipeline, plan_stages

    with pytest.raises(SimCITInputError, match=message):
        plan_stages(load_pipeline(fx.pipeline, override))
    assert not (fx.root / "run").exists()


def test_resuming_a_checkpoint_of_other_optimizer_settings_is_one_line(tmp_path):
    """A checkpoint written with one parameter group cannot continue an optimizer with two (the quantizer's
    codebooks got their own learning rate): one line naming the checkpoint, not torch's ValueError."""
    import torch

    from hf_simcit.utils.serialization import load_training_state, save_training_state

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    old = torch.optim.AdamW(model.parameters())
    save_training_state(tmp_path / "checkpoint-5", model=dict(model.state_dict()), optimizer=old, extra={"step": 5})
    new = torch.optim.AdamW([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 1e-2}])
    with pytest.raises(SimCITInputError, match=r"checkpoint-5: cannot resume from this checkpoint.*parameter groups"):
        load_training_state(tmp_path / "checkpoint-5", model=model, optimizer=new)
    assert load_training_state(tmp_path / "checkpoint-5", model=model, optimizer=old)["step"] == 5
