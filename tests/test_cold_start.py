"""The cold-start protocol of benchmarks/cold_start.py: no cold interaction reaches training, cold items get SIDs
of their own from the trained quantizer (no retraining) and decode back to themselves."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import benchmark_module

from tests.test_quantizer import tiny_args, tiny_features

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cold_start():
    return benchmark_module("cold_start")


def small_sequences(num_users: int = 60, num_items: int = 40, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.choice(num_items, size=int(rng.integers(4, 12)), replace=False).tolist() for _ in range(num_users)]


def test_no_cold_interaction_reaches_training(cold_start):
    sequences = small_sequences()
    cold = cold_start.pick_cold_items(40, 0.1, seed=3)
    assert len(cold) == 4 and np.array_equal(cold, cold_start.pick_cold_items(40, 0.1, seed=3))
    data = cold_start.cold_start_split(sequences, 40, cold)
    assert data.num_warm == 36 and sorted(data.old_index[36:].tolist()) == cold.tolist()
    for name in ("train", "validation"):
        part = data.splits[name]
        assert not data.is_cold(list(part["target"])).any()
        assert not data.is_cold([i for h in part["history"] for i in h]).any()
    test = data.splits["test"]
    assert not data.is_cold([i for h in test["history"] for i in h]).any()
    # every user whose last interaction is cold is a cold test user, with that very item as the target
    cold_last = [seq for seq in sequences if seq[-1] in set(cold.tolist())]
    assert cold_last and int(data.is_cold(list(test["target"])).sum()) == len(cold_last)
    assert data.old_index[[t for t in test["target"] if t >= 36]].tolist() == [s[-1] for s in cold_last]
    # no training interaction (the matrix the cf features come from) touches a cold column
    matrix = cold_start.warm_training_matrix(data)
    assert matrix.shape == (len(data.sequences), 40) and matrix[:, 36:].nnz == 0 and matrix.nnz > 0
    # a split with a leaked cold item is refused
    leaky = data.splits["train"].to_dict()
    leaky["history"][0] = leaky["history"][0] + [36]
    from datasets import Dataset, DatasetDict

    data.splits = DatasetDict({"train": Dataset.from_dict(leaky), "validation": data.splits["validation"],
                               "test": data.splits["test"]})
    with pytest.raises(AssertionError, match="leaks"):
        cold_start.check_no_leak(data)


def test_cold_items_get_new_sids_that_decode_to_themselves(cold_start, tmp_path):
    from hf_simcit.quantizers import ItemFeatures, assign_semantic_ids
    from hf_simcit.training.quantizer import train_quantizer

    feats = tiny_features(96)
    sequences = small_sequences(num_users=120, num_items=96, seed=1)
    cold = cold_start.pick_cold_items(96, 0.1, seed=0)
    data = cold_start.cold_start_split(sequences, 96, cold)
    order = torch.as_tensor(data.old_index)
    ordered = ItemFeatures({m: x[order] for m, x in feats.features.items()},
                           {m: x[order] for m, x in feats.masks.items()}, [feats.item_ids[i] for i in order])
    warm = ItemFeatures({m: x[: data.num_warm] for m, x in ordered.features.items()},
                        {m: x[: data.num_warm] for m, x in ordered.masks.items()}, ordered.item_ids[: data.num_warm])
    quantizer = train_quantizer(tiny_args(tmp_path), warm).model.eval()
    before = {k: v.clone() for k, v in quantizer.state_dict().items()}
    warm_assignment = assign_semantic_ids(quantizer, warm.features, warm.masks, resolve="level")
    codes, tokenizer, stats = cold_start.cold_sids(quantizer, warm_assignment, ordered, data)
    assert all(torch.equal(v, quantizer.state_dict()[k]) for k, v in before.items())   # no retraining
    warm_sids = {tuple(r) for r in codes[: data.num_warm].tolist()}
    cold_sids = [tuple(r) for r in codes[data.num_warm:].tolist()]
    assert not warm_sids & set(cold_sids) and len(set(cold_sids)) == len(cold_sids)
    assert np.array_equal(codes[: data.num_warm], warm_assignment.codes)      # warm SIDs unchanged
    for item in ordered.item_ids[data.num_warm:]:
        assert tokenizer.sid_to_item(tokenizer.item_to_sid(item)) == item
    assert stats["new_sid"] + stats["shares_warm_sid"] == len(cold)
    # the raw codes are the quantizer's own: the cold items' prefix counts are what encode gives
    raw = quantizer.encode({m: x[data.num_warm:] for m, x in ordered.features.items()},
                           {m: x[data.num_warm:] for m, x in ordered.masks.items()})
    warm_raw = {tuple(r) for r in warm_assignment.raw_codes.tolist()}
    assert stats["shares_warm_sid"] == sum(tuple(r) in warm_raw for r in raw.tolist())


def test_features_follow_the_new_item_order_and_the_cf_comes_from_warm_training_interactions(cold_start):
    """``cold_start_features``: every content row is the item's own (warm items first, in ``old_index`` order), and
    the cf is the SVD of the cold-start training matrix alone: cold items have none, warm ones no cold signal."""
    from hf_simcit.features.collaborative import collaborative_embeddings

    feats = tiny_features(96)
    data = cold_start.cold_start_split(small_sequences(num_users=120, num_items=96, seed=1), 96,
                                       cold_start.pick_cold_items(96, 0.1, seed=0))
    ordered = cold_start.cold_start_features(feats, data, cf_dim=8)
    assert ordered.item_ids == [feats.item_ids[i] for i in data.old_index]
    for new, old in enumerate(data.old_index):
        assert torch.equal(ordered.features["text"][new], feats.features["text"][old])
        assert bool(ordered.masks["text"][new]) == bool(feats.masks["text"][old])
    assert not ordered.masks["cf"][data.num_warm:].any() and not ordered.features["cf"][data.num_warm:].any()
    matrix = cold_start.warm_training_matrix(data)
    assert matrix[:, data.num_warm:].sum() == 0                       # no cold item in the training matrix
    cf, present = collaborative_embeddings(matrix, dim=8, method="svd")
    assert torch.equal(ordered.features["cf"], torch.as_tensor(cf))
    assert torch.equal(ordered.masks["cf"], torch.as_tensor(present))


def test_concatenation_baselines_give_cold_items_sids_without_their_cf(cold_start):
    """RQ-KMeans reads an absent modality as zeros; the cold items (no cf at all) still get new SIDs."""
    from hf_simcit.quantizers import ItemFeatures, RQKMeansQuantizer, assign_semantic_ids

    feats = tiny_features(96)
    data = cold_start.cold_start_split(small_sequences(num_users=120, num_items=96, seed=1), 96,
                                       cold_start.pick_cold_items(96, 0.1, seed=0))
    order = torch.as_tensor(data.old_index)
    cf_mask = feats.masks["cf"][order].clone()
    cf_mask[data.num_warm:] = False
    cf = feats.features["cf"][order] * cf_mask[:, None]
    ordered = ItemFeatures({"text": feats.features["text"][order], "cf": cf},
                           {"text": feats.masks["text"][order], "cf": cf_mask}, [feats.item_ids[i] for i in order])
    warm = ItemFeatures({m: x[: data.num_warm] for m, x in ordered.features.items()},
                        {m: x[: data.num_warm] for m, x in ordered.masks.items()}, ordered.item_ids[: data.num_warm])
    quantizer = RQKMeansQuantizer(num_levels=2, codebook_size=8, seed=0).fit(warm.features, warm.masks)
    warm_assignment = assign_semantic_ids(quantizer, warm.features, warm.masks, resolve="level")
    codes, tokenizer, stats = cold_start.cold_sids(quantizer, warm_assignment, ordered, data)
    assert len({tuple(r) for r in codes.tolist()}) == len(codes)
    for item in ordered.item_ids[data.num_warm:]:
        assert tokenizer.sid_to_item(tokenizer.item_to_sid(item)) == item


def test_from_partial_refuses_rows_trained_with_other_settings(cold_start, tmp_path, capsys):
    """--from-partial merges rows of runs that split the methods; a run with another protocol (here another
    epoch cap) is named in one line, exit status 2, instead of being merged into one table."""
    import json

    args = cold_start.parse_args(["--dataset", "ml-100k", "--epochs", "8", "--methods", "simcit"])
    same = cold_start.row_settings(args)
    other = cold_start.row_settings(cold_start.parse_args(["--dataset", "ml-100k", "--epochs", "2"]))
    assert same == cold_start.row_settings(cold_start.parse_args(["--dataset", "ml-100k", "--methods", "rqvae",
                                                                  "--threads", "1", "--epochs", "8"]))
    assert cold_start.settings_mismatch({"a": {"settings": same}}, same) is None
    line = cold_start.settings_mismatch({"a": {"settings": same}, "b/partial.json": {"settings": other}}, same)
    assert line.startswith("b/partial.json: its rows were trained with --epochs 2.0, this command has 8.0")
    assert "no settings" in cold_start.settings_mismatch({"old": {"rows": {}}}, same)
    # a partial written before an option existed ran with that option's default
    older = {k: v for k, v in same.items() if k != "dense_negatives"}
    assert cold_start.settings_mismatch({"a": {"settings": older}}, same) is None
    catalogue = cold_start.row_settings(cold_start.parse_args(["--dataset", "ml-100k", "--epochs", "8",
                                                               "--dense-negatives", "catalogue"]))
    assert cold_start.settings_mismatch({"a": {"settings": older}}, catalogue).startswith(
        "a: its rows were trained with --dense-negatives batch, this command has catalogue")

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "partial.json").write_text(json.dumps({"command": "x", "settings": other, "rows": {},
                                                               "sids": {}}))
    code = cold_start.main(["--dataset", "ml-100k", "--epochs", "8", "--methods", "popularity",
                            "--workdir", str(tmp_path / "w"), "--no-results", "--from-partial", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--epochs 2.0, this command has 8.0" in err[0]
    code = cold_start.main(["--dataset", "ml-100k", "--methods", "popularity", "--workdir", str(tmp_path / "w"),
                            "--no-results", "--from-partial", str(tmp_path / "nowhere")])
    assert code == 2 and "no such file" in capsys.readouterr().err


def test_from_partial_refuses_runs_whose_shared_tokenizer_gave_other_sids(cold_start):
    """``simcit`` and ``simcit+dense`` run in separate processes share the SimCIT SIDs only if both fits gave the
    same codes: each run records the codes' fingerprint, and a merge of runs whose fingerprints differ is refused."""
    codes = np.arange(12).reshape(4, 3)
    same, other = cold_start.codes_fingerprint(codes), cold_start.codes_fingerprint(codes[[1, 0, 2, 3]])
    assert same == cold_start.codes_fingerprint(codes.astype(np.int32).copy(order="F")) and same != other
    runs = {"a/partial.json": {"sids": {"simcit": {"codes_sha256": same}}},
            "b/partial.json": {"sids": {"simcit": {"codes_sha256": same}, "rqvae": {"codes_sha256": other}}}}
    assert cold_start.sid_mismatch(runs) is None
    runs["c/partial.json"] = {"sids": {"simcit": {"codes_sha256": other}}}
    assert cold_start.sid_mismatch(runs) == ("c/partial.json: its simcit SIDs differ from those of a/partial.json "
                                             "(another tokenizer fit): merging would compare generators trained on "
                                             "different SIDs")
    assert cold_start.sid_mismatch({"old": {"sids": {"simcit": {}}}, **runs}) is not None   # unrecorded: skipped
    assert cold_start.sid_mismatch({"old": {"sids": {"simcit": {}}}, "a": runs["a/partial.json"]}) is None


def test_reserved_places_and_a_reevaluation_that_reproduces_the_run(tmp_path_factory):
    """A small ML-100K run with places reserved for cold items, then ``--reevaluate`` of the generators it saved:
    the SIDs are rebuilt from the quantizers the run saved (an RQ-VAE re-fit, here with another step count, would
    give other codes), checked against each generator's own, the plain figures come back exactly, and the
    reserved places cost the warm users only the places they take (the ordinary list is the same search's)."""
    import json
    import os
    import shutil
    import subprocess

    root = tmp_path_factory.mktemp("cold")
    env = {**os.environ, "HF_SIMCIT_REC_BENCH_CACHE": str(root / "cache"), "TQDM_DISABLE": "1"}
    base = [sys.executable, str(ROOT / "benchmarks" / "cold_start.py"), "--dataset", "ml-100k",
            "--simcit-steps", "30", "--rqvae-steps", "30", "--epochs", "1", "--max-steps", "30", "--eval-examples",
            "20", "--warm-test-examples", "60", "--threads", "1", "--workdir", str(root / "w"), "--no-results"]

    def rows(argv):
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return {method: json.loads(line[len(method) + 3:]) for line in done.stdout.splitlines()
                for method in ("simcit", "rqvae", "simcit+dense") if line.startswith(f"[{method}] {{")}

    trained = rows(base + ["--methods", "simcit,rqvae,simcit+dense"])
    assert {p.name for p in (root / "w").glob("quantizer_*") if p.is_dir()} >= {"quantizer_simcit", "quantizer_rqvae"}
    assert (root / "w" / "simcit_dense" / "dense_item_head.safetensors").exists()
    again = rows(base + ["--methods", "simcit,rqvae,simcit+dense", "--rqvae-steps", "1", "--reevaluate",
                         str(root / "w"), "--exclude-history"])
    assert set(again) == set(trained) == {"simcit", "rqvae", "simcit+dense"}
    # the dense item head ranks the cold items for the reserved places, and among the cold items
    dense = trained["simcit+dense"]
    assert set(dense["among_cold"]) == {"sid_log_prob", "first_level", "dense"}
    assert set(dense["new_item_slots"]) == {"1", "2"} and dense["new_item_slots"]["2"]["cold"]["users"] > 0
    assert "among_cold" in trained["simcit"] and "dense" not in trained["simcit"]["among_cold"]
    for method in trained:
        for part in ("cold", "warm"):
            assert again[method][part] == trained[method][part]
            assert again[method]["history_excluded"][part]["users"] == trained[method][part]["users"]
        assert again[method]["new_item_slots"] == trained[method]["new_item_slots"]
        assert again[method]["among_cold"] == trained[method]["among_cold"]
    trained, again = trained["simcit"], again["simcit"]
    assert set(again["history_excluded"]["new_item_slots"]) == {"1", "2"} and "history_excluded" not in trained
    assert set(trained["new_item_slots"]) == {"1", "2"} and set(trained["among_cold"]) == {"sid_log_prob",
                                                                                          "first_level"}
    for hits in trained["among_cold"].values():
        assert 0.0 <= hits["hit@1"] <= hits["hit@2"] <= hits["hit@10"] <= 1.0
    warm = [trained["warm"]["recall@10"]] + [trained["new_item_slots"][m]["warm"]["recall@10"] for m in ("1", "2")]
    assert warm[0] >= warm[1] >= warm[2]
    assert trained["new_item_slots"]["1"]["cold"]["users"] == trained["cold"]["users"] > 0
    # the generator saved under another seed's split: its SIDs are not rebuilt, one line says so
    other = subprocess.run(base + ["--methods", "simcit", "--reevaluate", str(root / "w"), "--seed", "7"], env=env,
                           cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert other.returncode == 2 and "not the ones this generator was trained on" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1
    # a run folder without the quantizer (an older run's): one line that names the folder, no re-fit
    shutil.rmtree(root / "w" / "quantizer_rqvae")
    older = subprocess.run(base + ["--methods", "rqvae", "--reevaluate", str(root / "w")], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
    assert older.returncode == 2 and len(older.stderr.strip().splitlines()) == 1
    assert "quantizer_rqvae: no saved rqvae quantizer" in older.stderr


def test_sasrec_over_sids_ranks_the_cold_items_from_their_sids(tmp_path_factory):
    """``sasrec+simcit``: trained on the warm items only, then given the cold items' SIDs (no retraining); its
    exact scores rank the whole catalogue, cold items included, and the reserved places go to the best cold
    items as for the generators and the text kNN."""
    import json
    import os
    import subprocess

    root = tmp_path_factory.mktemp("cold-sasrec")
    env = {**os.environ, "HF_SIMCIT_REC_BENCH_CACHE": str(root / "cache"), "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cold_start.py"), "--dataset", "ml-100k",
                           "--methods", "sasrec+simcit", "--simcit-steps", "30", "--epochs", "3", "--eval-examples",
                           "100", "--warm-test-examples", "200", "--threads", "1", "--workdir", str(root / "w"),
                           "--no-results", "--exclude-history"], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("[sasrec+simcit] {"))
    row = json.loads(line[len("[sasrec+simcit] "):])
    assert row["cold"]["users"] > 0 and row["warm"]["users"] == 200 and row["epochs"] >= 1
    places = [row["cold"]["recall@10"]] + [row["new_item_slots"][m]["cold"]["recall@10"] for m in ("1", "2")]
    assert places[0] <= places[1] <= places[2] and places[2] > 0      # cold items reached, from their SIDs
    warm = [row["warm"]["recall@10"]] + [row["new_item_slots"][m]["warm"]["recall@10"] for m in ("1", "2")]
    assert warm[0] >= warm[1] >= warm[2]
    assert row["history_excluded"]["warm"]["recall@10"] >= row["warm"]["recall@10"]   # ML-100K: no repeats
    assert set(row["warm_without_cold"]) == {"recall@10", "ndcg@10", "users", "invalid_items"}


def test_text_knn_reserved_places_are_assembled_like_the_generators(cold_start):
    """The text kNN with ``new_item_slots=m``: its first 10 - m items, then the m new items most similar to the
    history that are not listed yet (a new item already in the first places keeps its place)."""
    from datasets import Dataset

    angles = torch.arange(13) * 0.1                 # similarity to item 0 falls with the index
    text = torch.stack([angles.cos(), angles.sin()], dim=1)

    def recall(target: int, new_items=None, slots: int = 0) -> float:
        split = Dataset.from_dict({"history": [[0]], "target": [target]})
        return cold_start.text_knn(text, split, new_items=new_items, new_item_slots=slots)["recall@10"]

    assert [recall(t) for t in (10, 11, 12)] == [1.0, 0.0, 0.0]          # plain: items 1..10
    assert [recall(t, [11, 12], 1) for t in (10, 11, 12)] == [0.0, 1.0, 0.0]
    assert [recall(t, [11, 12], 2) for t in (9, 10, 11, 12)] == [0.0, 0.0, 1.0, 1.0]
    assert [recall(t, [3, 12], 1) for t in (3, 10, 12)] == [1.0, 0.0, 1.0]
    ndcg = cold_start.text_knn(text, Dataset.from_dict({"history": [[0]], "target": [12]}), new_items=[11, 12],
                               new_item_slots=2)["ndcg@10"]
    assert ndcg == pytest.approx(1 / math.log2(11))


def test_score_matrix_rows_compute_each_parts_matrix_once(cold_start):
    """A score-matrix row (text kNN, SASRec over SIDs) through ``scored_parts``: every part's matrix is computed
    once, however many numbers of reserved places are scored, and the figures equal scoring each afresh."""
    from functools import partial

    from datasets import Dataset

    angles = torch.arange(13) * 0.1
    text = torch.stack([angles.cos(), angles.sin()], dim=1)
    parts = {"cold": Dataset.from_dict({"history": [[0], [5]], "target": [12, 11]}),
             "warm": Dataset.from_dict({"history": [[1, 2]], "target": [4]})}
    calls = []

    def scores_of(split):
        calls.append(len(split))
        return cold_start.text_knn_scores(text, split)

    row = cold_start.scored_parts(cold_start.matrix_scorer(scores_of), parts, [11, 12], [1, 2])
    assert calls == [2, 1]                                        # once per part, not once per slot setting
    assert row == cold_start.scored_parts(partial(cold_start.text_knn, text), parts, [11, 12], [1, 2])


def test_a_dense_head_fills_the_reserved_places_with_the_cold_items_it_scores_best(cold_start, monkeypatch):
    """``simcit+dense``: the generator's own first 10 - m items, then the m cold items its dense item head scores
    best (not the SID trie's best); the plain figures are the generator's own, and among the cold items the
    head's scores are ranked too."""
    from types import SimpleNamespace

    from datasets import Dataset

    monkeypatch.setattr(cold_start, "generator_among_cold", lambda saved, split, cold_items: {})
    cold_items = [10, 11, 12]
    split = Dataset.from_dict({"history": [[0], [1]], "target": [12, 10]})
    searched = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] for _ in range(2)])   # 12 beams, best first
    head = torch.zeros(2, 13)
    head[:, 12], head[:, 11], head[:, 10] = 0.9, 0.5, 0.1       # the head prefers item 12, then 11

    class Saved:
        dense_head = True
        item_token_ids = torch.zeros(13, 2)

        def evaluate(self, split, args, exclude_history=False, return_rankings=False):
            return {"recall@10": 0.5, "ndcg@10": 0.2, "num_examples": 2, "invalid_items": 0, "rankings": searched}

        def dense_scores(self, split, item_embeddings, batch_size):
            return head

    args = SimpleNamespace(new_item_slots=[1, 2], exclude_history=False, eval_batch_size=8)
    row = cold_start.generator_row(Saved(), {"cold": split, "warm": split}, cold_items, args, torch.zeros(13, 4))
    assert row["cold"]["recall@10"] == 0.5                  # no reserved place: the generator's own figures
    # one place: items 0-8, then 12 (user 0's target, at rank 10); user 1's target 10, the head's last, is missed
    assert row["new_item_slots"]["1"]["cold"]["recall@10"] == 0.5
    assert row["new_item_slots"]["1"]["cold"]["ndcg@10"] == pytest.approx(1 / np.log2(11) / 2)
    # two places: items 0-7, then 12 and 11
    assert row["new_item_slots"]["2"]["cold"]["ndcg@10"] == pytest.approx(1 / np.log2(10) / 2)
    assert row["among_cold"]["dense"] == {"hit@1": 0.5, "hit@2": 0.5, "hit@10": 1.0}


def test_generator_rows_score_with_and_without_the_history_only_when_asked(cold_start, monkeypatch):
    """``--exclude-history`` adds a second set of figures, every one of them scored with the history excluded;
    the plain figures never are."""
    from types import SimpleNamespace

    monkeypatch.setattr(cold_start, "generator_among_cold", lambda saved, split, cold_items: {})

    calls = []

    class Saved:
        dense_head = False

        def evaluate(self, split, args, new_items=None, new_item_slots=0, exclude_history=False):
            calls.append((split, new_item_slots, exclude_history))
            return {"recall@10": 0.5 if exclude_history else 0.25, "ndcg@10": 0.1, "num_examples": 3,
                    "invalid_items": 0}

    parts = {"cold": "C", "warm": "W"}
    plain = cold_start.generator_row(Saved(), parts, [7], SimpleNamespace(new_item_slots=[1, 2], exclude_history=False))
    assert "history_excluded" not in plain and not any(c[2] for c in calls)
    calls.clear()
    both = cold_start.generator_row(Saved(), parts, [7], SimpleNamespace(new_item_slots=[1], exclude_history=True))
    assert sorted(c for c in calls if c[2]) == [("C", 0, True), ("C", 1, True), ("W", 0, True), ("W", 1, True)]
    assert both["cold"]["recall@10"] == 0.25 and both["history_excluded"]["cold"]["recall@10"] == 0.5
    assert both["history_excluded"]["new_item_slots"]["1"]["warm"]["recall@10"] == 0.5


def test_merging_partials_keeps_the_figures_a_reevaluation_added_to_the_same_rows(cold_start, tmp_path):
    """``--from-partial`` rewrites the results file from the runs' partial rows; the history-excluded and
    reserved-place figures that ``--reevaluate`` added stay with a row whose plain figures are the very same (the
    same model), and not with a row trained again."""
    import json

    plain = {"cold": {"recall@10": 0.0, "ndcg@10": 0.0, "users": 5}, "warm": {"recall@10": 0.2, "ndcg@10": 0.1, "users": 9}}
    extra = {"history_excluded": {"cold": {"recall@10": 0.1}}, "new_item_slots": {"1": {"cold": {"recall@10": 0.3}}}}
    path = tmp_path / "cold-start-beauty.json"
    path.write_text(json.dumps({"rows": {"simcit": plain | extra, "rqvae": plain | extra},
                                "new_item_slots_commands": {"simcit": "reevaluate simcit", "rqvae": "reevaluate rqvae"}}))
    retrained = {"cold": plain["cold"], "warm": {"recall@10": 0.25, "ndcg@10": 0.1, "users": 9}}
    rows = {"simcit": json.loads(json.dumps(plain)), "rqvae": retrained, "sasrec+simcit": plain | {"epochs": 3}}
    commands = cold_start.keep_rescored_figures(rows, path)
    assert rows["simcit"] == plain | extra and commands == {"simcit": "reevaluate simcit"}
    assert "history_excluded" not in rows["rqvae"] and "new_item_slots" not in rows["rqvae"]
    assert rows["sasrec+simcit"] == plain | {"epochs": 3}          # not in the file: nothing to keep
    assert cold_start.keep_rescored_figures({"simcit": dict(plain)}, tmp_path / "missing.json") == {}


def test_among_cold_ranks_each_target_among_the_cold_items_with_ties_shared(cold_start):
    """Hit@k among the cold items alone: items outside the cold list never count, and a score shared by e items
    counts as the expected share of the places left (ties broken at random)."""
    cold = [10, 11, 12, 13]
    scores = torch.tensor([[3.0, 1.0, 1.0, 0.0],      # target 11: one better, tied with 12
                           [0.0, 1.0, 2.0, 5.0],      # target 13: the best
                           [1.0, 1.0, 1.0, 1.0]])     # target 12: all four tied
    hits = cold_start.among_cold(scores, [11, 13, 12], cold)
    assert hits["hit@1"] == pytest.approx((0 + 1 + 0.25) / 3)
    assert hits["hit@2"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert hits["hit@10"] == pytest.approx(1.0)
    with pytest.raises(KeyError):
        cold_start.among_cold(scores, [5, 13, 12], cold)     # a target that is not a cold item
