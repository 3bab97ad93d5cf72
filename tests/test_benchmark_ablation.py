"""benchmarks/simcit_ablation.py: the LGMD rows' embeddings and rows run alone update the results file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import benchmark_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ablation():
    return benchmark_module("simcit_ablation")


@pytest.fixture(scope="module")
def rb(ablation):
    """``benchmarks/recommend.py`` as the ablation imports it: the LGMD cf lives with the other features there."""
    return ablation.rb


def test_lgmd_embeddings_follow_the_recipe_on_the_training_matrix(rb, tmp_path):
    """LGMD cf for the three LGMD rows (user x item plain and attractive, sequential): the recipe's rank, unit norm
    where an item has training interactions (validation and test targets never count), zero and masked elsewhere."""
    rng = np.random.default_rng(0)
    sequences = [list(rng.choice(50, size=rng.integers(4, 12), replace=False)) for _ in range(80)]
    sequences[0] = [0, 1, 48, 49]                       # 48 and 49: this user's validation and test targets only
    sequences = [[i for i in s if i not in (48, 49)] if u else s for u, s in enumerate(sequences)]
    rec = SimpleNamespace(sequences={"user_id": list(range(80)), "items": sequences}, num_users=80, num_items=50)
    plain, attractive, sequential = rb.make_lgmd_embeddings("beauty", rec, tmp_path, list(rb.LGMD_SOURCES))
    assert [plain.name, attractive.name, sequential.name] == ["beauty-lgmd.npz", "beauty-lgmd-attractive.npz",
                                                              "beauty-lgmd-sequential.npz"]
    c = np.load(sequential)                              # items that follow each other: 48 and 49 never do
    assert c["x"].shape == (50, 32) and not c["p"][48] and not c["p"][49] and c["p"].any()
    np.testing.assert_allclose(np.linalg.norm(c["x"][c["p"]], axis=1), 1.0, atol=1e-5)
    a, b = np.load(plain), np.load(attractive)
    assert a["x"].shape == (50, 32) and a["p"].dtype == bool
    assert not a["p"][48] and not a["p"][49] and a["p"][:48].all()
    np.testing.assert_allclose(np.linalg.norm(a["x"][a["p"]], axis=1), 1.0, atol=1e-5)
    assert not a["x"][~a["p"]].any()
    np.testing.assert_array_equal(a["p"], b["p"])


def test_with_cf_swaps_in_the_cached_lgmd_cf_or_says_it_is_not_there(rb, tmp_path):
    """``--cf lgmd*`` and the ablation's LGMD rows: the cached ``<dataset>-<source>.npz`` replaces the cf (its mask
    too), the other modalities stay; nothing cached gives None (the ablation reports the row as missing)."""
    import torch

    from hf_simcit.quantizers import ItemFeatures

    feats = ItemFeatures({"text": torch.ones(3, 4), "cf": torch.zeros(3, 2)},
                         {"text": torch.ones(3, dtype=torch.bool), "cf": torch.ones(3, dtype=torch.bool)}, ["a", "b", "c"])
    assert rb.with_cf(feats, "toy", None, tmp_path) is feats
    assert rb.with_cf(feats, "toy", "lgmd-sequential", tmp_path) is None
    np.savez(tmp_path / "toy-lgmd-sequential.npz", x=np.eye(3, 5, dtype=np.float32), p=np.array([True, False, True]))
    out = rb.with_cf(feats, "toy", "lgmd-sequential", tmp_path)
    assert out.modalities == ["text", "cf"] and out.item_ids == feats.item_ids and out.features["text"] is feats.features["text"]
    assert torch.equal(out.features["cf"], torch.eye(3, 5)) and out.masks["cf"].tolist() == [True, False, True]
    assert rb.build_parser().parse_args(["--cf", "lgmd-sequential"]).cf == "lgmd-sequential"   # recommend.py --cf
    # and a run's settings line names it (it once called every cf but the SVD "SPPMI-SVD")
    assert rb.cf_description("lgmd-sequential").startswith("LGMD item factors of the training SPPMI")
    assert "attractive graphs" in rb.cf_description("lgmd-attractive")


def test_lgmd_rows_use_the_lgmd_stage_recipe(rb, tmp_path, monkeypatch):
    """The three LGMD rows fit the estimator the pipeline's lgmd stage builds from ``recipes/beauty/lgmd.yaml``
    (``LGMDArguments.estimator``): on the user x item matrix, plain and with attractive graphs, and on the
    sequential SPPMI (the recipe's own matrix)."""
    from hf_simcit.lgmd.stage import LGMDArguments
    from hf_simcit.lgmd.transform import LGMDTransform

    fitted, shapes = [], []

    def spy(self, matrix, lgmd=None):
        fitted.append(self.estimator())
        shapes.append((self.matrix, matrix.shape))
        embeddings = np.eye(matrix.shape[1], self.rank)
        embeddings[np.asarray(matrix.getnnz(axis=0)) == 0] = 0.0   # the transform's rule (test_lgmd_transform)
        return LGMDTransform(embeddings, output_column=self.embedding_column,
                             normalize=self.normalize, null_if_empty=self.null_if_empty)

    monkeypatch.setattr(LGMDArguments, "fit_transform", spy)
    rec = SimpleNamespace(sequences={"user_id": [0, 1], "items": [[0, 1, 2, 3], [1, 2, 3, 0]]}, num_users=2,
                          num_items=4)
    rb.make_lgmd_embeddings("beauty", rec, tmp_path, list(rb.LGMD_SOURCES))
    assert [(m.rank, m.random_state, m.attractive, m.device) for m in fitted] == [(32, 0, False, "cpu"),
                                                                                   (32, 0, True, "cpu"),
                                                                                   (32, 0, False, "cpu")]
    # users x items twice, then items x items
    assert shapes == [("interactions", (2, 4)), ("interactions", (2, 4)), ("sequential", (4, 4))]
    assert (tmp_path / "beauty-lgmd-sequential.npz").exists()
    assert {k: getattr(fitted[0], k) for k in ("support", "max_block_size", "max_iter", "admm_iter", "base")} == {
        "support": "blocks", "max_block_size": 100, "max_iter": 5, "admm_iter": 20, "base": 1.0}
    z = np.load(tmp_path / "beauty-lgmd.npz")
    # the transform's rows in item order; item 3 is only a validation / test target: no cf, as with SVD
    np.testing.assert_array_equal(z["p"], [True, True, True, False])
    np.testing.assert_array_equal(z["x"], np.eye(4, 32) * z["p"][:, None])
    # a second call fits only what is asked for and not cached yet
    (tmp_path / "beauty-lgmd-attractive.npz").unlink()
    fitted.clear()
    assert rb.make_lgmd_embeddings("beauty", rec, tmp_path, ["lgmd", "lgmd-attractive"]) == [
        tmp_path / "beauty-lgmd-attractive.npz"]
    assert [m.attractive for m in fitted] == [True]


def test_rows_run_alone_replace_their_namesakes_and_keep_the_rest(ablation):
    earlier = {"command": "all rows", "date": "d0", "rows": [{"name": "default", "raw_collision": 0.03},
                                                            {"name": "lgmd", "raw_collision": None}]}
    new = {"command": "--rows lgmd,extra", "date": "d1", "rows": [{"name": "lgmd", "raw_collision": 0.02},
                                                                  {"name": "extra", "raw_collision": 0.5}]}
    out = ablation.merge_rows(earlier, new)
    assert [r["name"] for r in out["rows"]] == ["default", "lgmd", "extra"]
    assert out["rows"][0] == {"name": "default", "raw_collision": 0.03}
    assert out["rows"][1] == {"name": "lgmd", "raw_collision": 0.02, "command": "--rows lgmd,extra"}
    assert (out["command"], out["date"], out["updated"]) == ("all rows", "d0", "d1")


def test_a_row_run_with_another_seed_joins_its_namesake_as_a_seed(ablation):
    """Seeds side by side: the row's figures are means over its seeds, each seed's run kept; the same seed
    replaces its run, and a changed configuration under the same name replaces the row."""
    def row(seed, collision, ndcg, usage, temperature=0.2):
        return {"name": "t", "settings": {"codes": "learned", "contrastive_temperature": temperature, "seed": seed},
                "raw_collision": collision, "usage": usage, "perplexity": [100.0, 200.0], "train_s": 10.0,
                "test": {"ndcg@10": ndcg, "recall@10": None if ndcg is None else 2 * ndcg}}

    first = {"command": "c42", "date": "d0", "rows": [row(42, 0.02, 0.024, [1.0, 0.9])]}
    second = ablation.merge_rows(first, {"command": "c1", "date": "d1", "rows": [row(1, 0.04, 0.020, [1.0, 0.7])]})
    (both,) = second["rows"]
    assert both["settings"] == {"codes": "learned", "contrastive_temperature": 0.2, "seeds": [1, 42]}
    assert both["raw_collision"] == pytest.approx(0.03) and both["usage"] == pytest.approx([1.0, 0.8])
    assert both["test"] == {"ndcg@10": pytest.approx(0.022), "recall@10": pytest.approx(0.044)}
    assert both["sd"]["test ndcg@10"] == pytest.approx(np.std([0.024, 0.020], ddof=1))
    assert [(r["seed"], r["command"]) for r in both["per_seed"]] == [(1, "c1"), (42, "c42")]
    # a third seed without a generator: in the quantizer means, not in the test means
    third = ablation.merge_rows(second, {"command": "c2", "date": "d2", "rows": [row(2, 0.06, None, [1.0, 1.0])]})
    (three,) = third["rows"]
    assert three["raw_collision"] == pytest.approx(0.04) and three["test"]["ndcg@10"] == pytest.approx(0.022)
    assert three["test_seeds"] == [1, 42] and three["settings"]["seeds"] == [1, 2, 42]
    assert "mean of seeds 1, 2, 42" in ablation.format_table(third["rows"])
    # seed 1 again replaces its own run
    again = ablation.merge_rows(third, {"command": "c1b", "date": "d3", "rows": [row(1, 0.04, 0.030, [1.0, 0.7])]})
    assert again["rows"][0]["test"]["ndcg@10"] == pytest.approx(0.027)
    # another temperature under the same name: a new configuration, the old seeds go
    other = ablation.merge_rows(third, {"command": "c", "date": "d4", "rows": [row(7, 0.01, 0.025, [1.0, 1.0], 0.1)]})
    assert other["rows"][0]["settings"]["seed"] == 7 and "per_seed" not in other["rows"][0]


def test_every_row_and_seed_has_its_own_folder(ablation):
    """Two rows (or two seeds of one row) sharing a folder would overwrite each other's saved quantizer."""
    from hf_simcit.training.quantizer import parse_quantizer_recipe

    recipe = parse_quantizer_recipe(str(ROOT / "recipes" / "beauty" / "quantizer.yaml"), [])
    names = [name for name, _, _ in ablation.ablation_rows(recipe)]
    folders = {ablation.row_folder(name, seed) for name in names for seed in (42, 1)}
    assert len(folders) == 2 * len(names)
    assert ablation.row_folder("modalities text + cf (LGMD, sequential), contrastive temperature 0.5", 1) == \
        "modalities-text-cf-lgmd-sequential-contrastive-temperature-0-5-seed1"
    rows = {name: overrides for name, overrides, _ in ablation.ablation_rows(recipe)}
    # the recipe's contrastive temperature (0.3) is a departure like the others: off alone, on alone
    assert rows["default without contrastive temperature 0.3"] == {"contrastive_temperature": 0.07}
    assert rows["reference + contrastive temperature 0.3"]["contrastive_temperature"] == 0.3


def test_downstream_generators_train_under_recommend_py_protocol(ablation):
    """The downstream rows' generator options come from recommend.py's own parser: the ablation's protocol
    (cap 40, patience 10, window 3 by default) and recommend.py's defaults for the rest, so a new generator
    option reaches both."""
    rb = benchmark_module("recommend")
    args = ablation.argparse.Namespace(dataset="beauty", seed=1, epochs=40.0, patience=10, patience_window=3,
                                       eval_examples=5000, batch_size=32, eval_batch_size=128, lr=1e-3, dropout=0.2)
    options = ablation.generator_options(args)
    defaults = vars(rb.build_parser().parse_args([]))
    set_here = {"dataset", "seed", "epochs", "patience", "patience_window", "eval_examples", "batch_size",
                "eval_batch_size", "lr", "dropout"}
    assert {k: getattr(options, k) for k in set_here} == vars(args)
    assert {k: v for k, v in vars(options).items() if k not in set_here} == {
        k: v for k, v in defaults.items() if k not in set_here}


def test_every_row_starts_from_the_recipe_and_default_is_the_recipe_itself(ablation, rb, tmp_path):
    """Rows that do not vary the modalities see Beauty's recipe cf, so ``default`` (no overrides) is the recipe
    the tokenizer comparison and the pipeline train, and its generators are the recipe's three seeds."""
    from types import SimpleNamespace

    recipe = rb.quantizer_recipe("beauty", SimpleNamespace(seed=42, levels=None, codebook_size=None,
                                                           simcit_steps=None), tmp_path)
    rows = {name: (overrides, cf) for name, overrides, cf in ablation.ablation_rows(recipe)}
    assert rows["default"] == ({}, ablation.RECIPE_CF) == ({}, "lgmd-sequential")
    modality = {name: cf for name, (_, cf) in rows.items() if name.startswith("modalities")}
    assert modality == {"modalities text": None, "modalities text + cf (SVD)": "svd",
                        "modalities text + cf (LGMD)": "lgmd", "modalities text + cf (LGMD, attractive graphs)":
                        "lgmd-attractive", "modalities text + cf (sequential)": "sequential"}
    assert {cf for name, (_, cf) in rows.items() if name not in modality} == {ablation.RECIPE_CF}
    assert rows["reference"][0]["contrastive_temperature"] == 0.07 and recipe.contrastive_temperature == 0.3
