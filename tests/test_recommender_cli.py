"""`hf-simcit train / evaluate / recommend` end to end on a tiny prepared data set and SID tokenizer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import Dataset
from test_recommender import NUM_ITEMS, tiny_splits

from hf_simcit.cli import main
from hf_simcit.data import RecDataset

# tiny models on a shared 2-core machine: one intra-op thread is ~10x faster than two fighting
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def run_dir(tmp_path):
    from hf_simcit.tokenization_simcit import SimCITTokenizer

    item_ids = [f"m{i}" for i in range(NUM_ITEMS)]
    splits = tiny_splits()
    items = Dataset.from_dict({"item_index": list(range(NUM_ITEMS)), "item_id": item_ids,
                               "text": [f"movie {i}" for i in range(NUM_ITEMS)]})
    sequences = Dataset.from_dict({"user_id": list(range(8)), "raw_user_id": [str(u) for u in range(8)],
                                   "items": [[(u + j) % NUM_ITEMS for j in range(6)] for u in range(8)]})
    RecDataset(splits, items, sequences, {"dataset": "tiny"}).save_to_disk(tmp_path / "data")
    codes = np.array([[i // 4, i % 4] for i in range(NUM_ITEMS)])
    # SIDs listed in a different item order than the data: the recommender must align them by item id
    order = np.random.default_rng(0).permutation(NUM_ITEMS)
    SimCITTokenizer.from_codes(codes[order], [item_ids[i] for i in order], [4, 4]).save_pretrained(
        tmp_path / "quantizer")
    recipe = tmp_path / "recommender.yaml"
    recipe.write_text(f"""
model:
  tiny_hidden_size: 32
  tiny_num_layers: 1
  tiny_num_heads: 2
  tiny_intermediate_size: 64
data:
  data_dir: {tmp_path / 'data'}
  sid_dir: {tmp_path / 'quantizer'}
training:
  output_dir: {tmp_path / 'recommender'}
  max_steps: 60
  learning_rate: 1.0e-2
  per_device_train_batch_size: 8
  eval_steps: 30
  save_steps: 30
  eval_num_beams: 5
  eval_ks: "1,5"
  cpu: true
""")
    return tmp_path


def test_train_evaluate_recommend_commands(run_dir, capsys):
    assert main(["train", str(run_dir / "recommender.yaml"), "--max_steps", "40"]) == 0
    assert (run_dir / "recommender" / "item_ids.json").exists()
    assert (run_dir / "recommender_checkpoints" / "checkpoint-40").is_dir()
    log = json.loads((run_dir / "recommender" / "train_log.json").read_text())
    assert log["final_step"] == 40 and log["best_metrics"]["invalid_items"] == 0

    metrics_file = run_dir / "eval" / "metrics.json"
    assert main(["evaluate", "--model", str(run_dir / "recommender"), "--data", str(run_dir / "data"),
                 "--num-beams", "5", "--ks", "1,5", "--output", str(metrics_file)]) == 0
    metrics = json.loads(metrics_file.read_text())
    assert metrics["split"] == "test" and metrics["num_examples"] == 8 and metrics["invalid_items"] == 0
    assert 0.0 <= metrics["recall@5"] <= 1.0 and metrics["exclude_history"] is False
    assert main(["evaluate", "--model", str(run_dir / "recommender"), "--data", str(run_dir / "data"),
                 "--num-beams", "5", "--ks", "1,5", "--exclude-history", "--output", str(metrics_file)]) == 0
    excluded = json.loads(metrics_file.read_text())
    assert excluded["exclude_history"] is True and excluded["num_examples"] == 8 and excluded["invalid_items"] == 0

    capsys.readouterr()
    assert main(["recommend", "--model", str(run_dir / "recommender"), "--history", "m0", "m1", "m2",
                 "-k", "3", "--device", "cpu"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ids = [r["item_id"] for r in line["recommendations"]]
    assert len(ids) == 3 and len(set(ids)) == 3 and all(i.startswith("m") for i in ids)

    # bad input: one clear line, exit code 2
    assert main(["recommend", "--model", str(run_dir / "recommender"), "--history", "m0", "nope",
                 "--device", "cpu"]) == 2
    assert "'nope' (history 0)" in capsys.readouterr().err
    assert main(["recommend", "--model", str(run_dir / "recommender"), "--history", "m0", "-k", "5",
                 "--num-beams", "2", "--device", "cpu"]) == 2
    assert "num_beams" in capsys.readouterr().err


def test_train_resumes_after_interruption_from_the_command_line(run_dir):
    assert main(["train", str(run_dir / "recommender.yaml"), "--max_steps", "30"]) == 0
    assert (run_dir / "recommender_checkpoints" / "checkpoint-30").is_dir()
    # a longer run with the same recipe resumes from checkpoint-30 instead of starting over
    assert main(["train", str(run_dir / "recommender.yaml"), "--max_steps", "60"]) == 0
    log = json.loads((run_dir / "recommender" / "train_log.json").read_text())
    assert log["final_step"] == 60
    assert [e["step"] for e in log["log"] if "recall@5" in e] == [30, 60]   # step 30 evaluated once
