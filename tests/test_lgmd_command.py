"""``hf-simcit lgmd``: prepared data -> fitted transform + item table with cf_embedding; recipes parse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, DatasetDict, load_from_disk

from hf_simcit.cli import main
from hf_simcit.data import RecDataset, load_prepared, training_matrix
from hf_simcit.errors import SimCITInputError
from hf_simcit.lgmd import LGMDTransform
from hf_simcit.lgmd.stage import LGMDArguments

ROOT = Path(__file__).resolve().parents[1]


# one torch thread: the solver's small ops stall on a shared 2-core machine with more (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _prepared(tmp_path: Path, num_users=24, num_items=15) -> Path:
    rng = np.random.default_rng(0)
    sequences = []
    for user in range(num_users):
        group = user % 2
        seq = rng.choice(np.arange(group * 7, group * 7 + 7), size=5, replace=False).tolist()
        sequences.append(seq)
    sequences[0] = sequences[0][:3] + [14]  # item 14 only ever appears as a validation target
    sequences[0].append(0)
    return _prepared_sequences(tmp_path, sequences, num_items)


def _prepared_sequences(tmp_path: Path, sequences: list[list[int]], num_items: int) -> Path:
    num_users = len(sequences)
    train = {"user_id": [], "history": [], "target": []}
    for user, seq in enumerate(sequences):
        for t in range(1, len(seq) - 2):
            train["user_id"].append(user)
            train["history"].append(seq[:t])
            train["target"].append(seq[t])
    splits = DatasetDict({
        "train": Dataset.from_dict(train),
        "validation": Dataset.from_dict({"user_id": list(range(num_users)), "history": [s[:-2] for s in sequences],
                                         "target": [s[-2] for s in sequences]}),
        "test": Dataset.from_dict({"user_id": list(range(num_users)), "history": [s[:-1] for s in sequences],
                                   "target": [s[-1] for s in sequences]}),
    })
    items = Dataset.from_dict({"item_index": list(range(num_items)), "item_id": [f"i{i}" for i in range(num_items)],
                               "text": [f"item {i}" for i in range(num_items)]})
    seqs = Dataset.from_dict({"user_id": list(range(num_users)), "raw_user_id": [str(u) for u in range(num_users)],
                              "items": sequences})
    return RecDataset(splits=splits, items=items, sequences=seqs, stats={}).save_to_disk(tmp_path / "data")


def test_lgmd_command_writes_transform_and_item_table(tmp_path, capsys):
    data = _prepared(tmp_path)
    out = tmp_path / "lgmd"
    code = main(["lgmd", "--data", str(data), "--output", str(out), "--rank", "3", "--max-block-size", "8",
                 "--max-iter", "4", "--device", "cpu", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "24 users x 15 items" in printed and "time: fit" in printed
    report = json.loads((out / "lgmd.json").read_text())
    assert report["num_items"] == 15 and report["iterations"] == 4
    empty = np.flatnonzero(training_matrix(load_prepared(data)).getnnz(axis=0) == 0)
    assert 14 in empty and report["items_without_interactions"] == len(empty)
    items = load_from_disk(str(out / "items"))
    emb = items["cf_embedding"]
    # never in training: null, the features convention for a missing modality
    assert [i for i, e in enumerate(emb) if e is None] == empty.tolist()
    vectors = np.asarray([e for e in emb if e is not None], dtype=np.float32)
    assert vectors.shape == (15 - len(empty), 3)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    transform = LGMDTransform.from_pretrained(out)
    assert transform.embeddings.shape == (15, 3)


def test_lgmd_command_recipe_and_errors(tmp_path, capsys):
    data = _prepared(tmp_path)
    recipe = tmp_path / "lgmd.yaml"
    text = (ROOT / "recipes" / "ml-100k" / "lgmd.yaml").read_text()
    text = re.sub(r"^items: .*$", "items: null", text, flags=re.M)  # no features stage here: the prepared table
    recipe.write_text(text.replace("runs/ml-100k/data", str(data)).replace("runs/ml-100k/lgmd", str(tmp_path / "o")))
    assert main(["lgmd", str(recipe), "--rank", "2", "--max-iter", "2", "--no-progress"]) == 0
    assert (tmp_path / "o" / "items").is_dir()
    assert main(["lgmd", "--data", str(tmp_path / "nope"), "--output", str(tmp_path / "x")]) == 2
    assert main(["lgmd", "--data", str(data), "--output", str(tmp_path / "x"), "--rank", "99"]) == 2
    err = capsys.readouterr().err
    assert "file not found" in err and "rank=99 is larger than the matrix allows" in err


def test_lgmd_command_attractive_graphs(tmp_path):
    data = _prepared(tmp_path)
    out = tmp_path / "lgmd"
    code = main(["lgmd", "--data", str(data), "--output", str(out), "--rank", "3", "--max-iter", "3",
                 "--attractive", "--prior-weight", "3", "--rho-u", "0.05", "--rho-v", "0.05", "--ridge", "0.3",
                 "--device", "cpu", "--no-progress"])
    assert code == 0
    report = json.loads((out / "lgmd.json").read_text())
    assert report["arguments"]["attractive"] is True and report["arguments"]["prior_weight"] == 3.0
    params = LGMDTransform.from_pretrained(out).info["params"]
    assert params["attractive"] is True and params["prior_weight"] == 3.0
    assert report["item_graph_edges"] > 0


def test_lgmd_command_on_the_sequential_cooccurrence(tmp_path):
    """``--matrix sequential``: LGMD fits the item x item SPPMI of the training sequences (users walk one of two
    rings of 40 items), so an item's embedding is close to the items a few steps away on its ring; the validation
    and test targets never enter (item 80 is only ever one), and the report says what the rows were."""
    from hf_simcit.data import training_cooccurrence
    from hf_simcit.features.collaborative import sppmi_matrix

    rng = np.random.default_rng(0)
    sequences = []
    for user in range(300):
        base, start = (user % 2) * 40, int(rng.integers(0, 40))
        sequences.append([base + (start + step) % 40 for step in range(8)] + [80, (start + 30) % 40 + base])
    data = _prepared_sequences(tmp_path, sequences, 81)
    out = tmp_path / "lgmd"
    assert main(["lgmd", "--data", str(data), "--output", str(out), "--matrix", "sequential", "--rank", "6",
                 "--max-iter", "3", "--max-block-size", "40", "--device", "cpu", "--no-progress"]) == 0
    report = json.loads((out / "lgmd.json").read_text())
    assert report["matrix"] == "sequential" and report["num_rows"] == 81 and report["num_users"] is None
    matrix = sppmi_matrix(training_cooccurrence(load_prepared(data), 3))
    assert report["interactions"] == matrix.nnz and report["items_without_interactions"] == 1
    emb = load_from_disk(str(out / "items"))["cf_embedding"]
    assert emb[80] is None
    x = np.asarray(emb[:80], dtype=np.float32)
    near = np.mean([x[i] @ x[(i // 40) * 40 + (i + k) % 40] for i in range(80) for k in (1, 2, 3)])
    far = np.mean([x[i] @ x[(i // 40) * 40 + (i + 20) % 40] for i in range(80)])
    assert near > far + 0.4
    with pytest.raises(SimCITInputError, match="matrix='users': choose interactions or sequential"):
        LGMDArguments(matrix="users")


@pytest.mark.parametrize("name", ["ml-100k", "beauty", "scientific", "yelp", "foursquare-nyc"])
def test_recipes_match_the_arguments_dataclass(name):
    from transformers import HfArgumentParser

    from hf_simcit.lgmd.stage import LGMDArguments

    (args,) = HfArgumentParser(LGMDArguments).parse_yaml_file(str(ROOT / "recipes" / name / "lgmd.yaml"))
    assert args.data == f"runs/{name}/data" and args.rank == 32 and args.support == "blocks"


def test_stage_options_build_the_estimator_they_name():
    """Every LGMDArguments key that is an LGMD parameter reaches the estimator (``seed`` as ``random_state``):
    the stage and the ablation benchmark build their estimator in this one place."""
    from dataclasses import fields

    from hf_simcit.lgmd.stage import LGMDArguments

    args = LGMDArguments(rank=7, rho_u=0.3, rho_v=0.4, ridge=2.0, base=0.5, attractive=True, prior_weight=3.0,
                         support="knn", max_block_size=40, knn=4, max_iter=3, tol=1e-3, admm_iter=9,
                         admm_tol=1e-3, dtype="float64", device="cpu", seed=11, progress=False)
    params = args.estimator().get_params()
    shared = {f.name for f in fields(LGMDArguments)} & set(params)
    assert len(shared) == 17
    assert {k: params[k] for k in shared} == {k: getattr(args, k) for k in shared}
    assert params["random_state"] == 11
