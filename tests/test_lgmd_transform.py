"""LGMDTransform: fit from dataset columns, map adds cf_embedding, stable fingerprint, save/load, Hub push."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, load_from_disk

from hf_simcit.errors import SimCITInputError
from hf_simcit.lgmd import LGMD, LGMDTransform
from hf_simcit.lgmd.transform import interaction_matrix

pytest_plugins = ["hub_fixtures"]


# one torch thread: the solver's small ops stall on a shared 2-core machine with more (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train_split(num_users=30, num_items=20, seed=0):
    rng = np.random.default_rng(seed)
    rows = {"user_id": [], "history": [], "target": []}
    for user in range(num_users):
        group = user % 2  # two taste groups -> low-rank structure
        items = rng.choice(np.arange(group * 9, group * 9 + 10), size=5, replace=False).tolist()
        for t in range(1, len(items)):
            rows["user_id"].append(user)
            rows["history"].append(items[:t])
            rows["target"].append(items[t])
    return Dataset.from_dict(rows)


def _items(num_items=20):
    return Dataset.from_dict({"item_index": list(range(num_items)), "item_id": [f"i{i}" for i in range(num_items)]})


def test_interaction_matrix_from_split():
    split = Dataset.from_dict({"user_id": [0, 0, 1], "history": [[1], [1, 2], [3]], "target": [2, 4, 0]})
    X = interaction_matrix(split, num_items=6)
    assert X.shape == (2, 6)
    np.testing.assert_array_equal(X.toarray(), [[0, 1, 1, 0, 1, 0], [1, 0, 0, 1, 0, 0]])
    with pytest.raises(SimCITInputError, match="no 'target' column"):
        interaction_matrix(split.remove_columns("target"))


def test_fit_interactions_and_map_adds_cf_embedding():
    transform = LGMDTransform.fit_interactions(_train_split(), LGMD(4, max_iter=5), num_items=20)
    mapped = _items().map(transform, batched=True, batch_size=7)
    emb = np.asarray(mapped["cf_embedding"], dtype=np.float32)
    assert emb.shape == (20, 4)
    assert str(mapped.features["cf_embedding"].feature) == "float32" or "float" in str(mapped.features["cf_embedding"])
    # item 19 is never interacted with: documented rule -> zero vector; the others are unit norm
    norms = np.linalg.norm(emb, axis=1)
    assert transform.info["items_without_interactions"] == 1
    np.testing.assert_allclose(norms[:19], 1.0, atol=1e-5)
    assert norms[19] == pytest.approx(0.0, abs=1e-6)
    # items from the same taste group are closer than items from different groups
    within = emb[0] @ emb[1]
    across = emb[0] @ emb[12]
    assert within > across
    nulls = LGMDTransform(transform.embeddings, null_if_empty=True)
    assert _items().map(nulls, batched=True)["cf_embedding"][19] is None


def test_an_item_without_interactions_gets_no_embedding_even_where_the_graph_links_it():
    """The learned item graph can link an all-zero column to other items, which gives it a non-zero graph-prior
    factor; the transform drops it (zero, or null): no training interaction, no collaborative embedding."""

    class LinkedLGMD(LGMD):
        def fit(self, X, mask=None):
            super().fit(X, mask)
            self.V_[19] = self.V_[0]   # as if the graph tied the empty item 19 to item 0
            return self

    transform = LGMDTransform.fit_interactions(_train_split(), LinkedLGMD(4, max_iter=2), num_items=20,
                                               null_if_empty=True)
    assert not transform.embeddings[19].any() and np.linalg.norm(transform.embeddings[:19], axis=1).min() > 0
    column = _items().map(transform, batched=True)["cf_embedding"]
    assert column[19] is None and all(v is not None for v in column[:19])


def test_fingerprint_is_stable_and_cache_is_reused(tmp_path):
    _items().save_to_disk(tmp_path / "items")
    items = load_from_disk(str(tmp_path / "items"))
    transform = LGMDTransform.fit_interactions(_train_split(), LGMD(4, max_iter=3), num_items=20)
    first = items.map(transform, batched=True)
    transform.save_pretrained(tmp_path / "lgmd")
    reloaded = LGMDTransform.from_pretrained(tmp_path / "lgmd")
    again = load_from_disk(str(tmp_path / "items")).map(reloaded, batched=True)
    assert first._fingerprint == again._fingerprint
    assert first.cache_files == again.cache_files  # the cache file was reused, not recomputed
    other = LGMDTransform(transform.embeddings * 2)
    assert load_from_disk(str(tmp_path / "items")).map(other, batched=True)._fingerprint != first._fingerprint


def test_save_and_load_round_trip(tmp_path):
    transform = LGMDTransform.fit_interactions(_train_split(), LGMD(3, max_iter=2), num_items=20)
    transform.save_pretrained(tmp_path / "t")
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["lgmd_config.json", "lgmd_transform.safetensors"]
    config = json.loads((tmp_path / "t" / "lgmd_config.json").read_text())
    assert config["rank"] == 3 and config["info"]["n_iter"] == 2
    loaded = LGMDTransform.from_pretrained(tmp_path / "t")
    np.testing.assert_array_equal(loaded.embeddings, transform.embeddings)
    with pytest.raises(SimCITInputError, match="lgmd_config.json is missing"):
        LGMDTransform.from_pretrained(tmp_path)


def test_fit_features_imputes_missing_values():
    rng = np.random.default_rng(0)
    n, k = 40, 2
    full = rng.standard_normal((n, k)) @ rng.standard_normal((k, 6))
    vec = [row[:4].tolist() for row in full]
    scalar = full[:, 4].tolist()
    other = full[:, 5].tolist()
    hidden_vec = rng.random(n) < 0.2
    hidden_scalar = rng.random(n) < 0.3
    hidden_scalar[hidden_vec] = False  # keep every row observed somewhere
    for i in np.flatnonzero(hidden_vec):
        vec[i] = None
    for i in np.flatnonzero(hidden_scalar):
        scalar[i] = None
    ds = Dataset.from_dict({"item_index": list(range(n))[::-1], "vec": vec[::-1], "s": scalar[::-1], "o": other[::-1]})
    transform = LGMDTransform.fit_features(ds, ["vec", "s", "o"], LGMD(2, max_iter=20, center=True))
    out = ds.map(transform, batched=True)
    assert len(out["lgmd_embedding"][0]) == 2
    vec_out = np.asarray(out["vec"])[::-1]
    s_out = np.asarray(out["s"], dtype=np.float64)[::-1]
    assert not np.isnan(s_out).any()
    np.testing.assert_allclose(vec_out[~hidden_vec], full[~hidden_vec, :4])  # observed kept
    err = np.abs(vec_out[hidden_vec] - full[hidden_vec, :4]).mean()
    assert err < 0.25 * np.abs(full[:, :4]).mean()
    assert np.abs(s_out[hidden_scalar] - full[hidden_scalar, 4]).mean() < 0.25 * np.abs(full[:, 4]).mean()


def test_bad_index_column_and_out_of_range():
    transform = LGMDTransform(np.eye(3, dtype=np.float32))
    with pytest.raises(SimCITInputError, match="no 'item_index' column"):
        transform({"x": [1]})
    with pytest.raises(SimCITInputError, match="item_index=5 is outside the fitted table of 3 rows"):
        transform({"item_index": [0, 5]})


def test_push_to_hub_with_card(hub, hub_repo_id):
    from huggingface_hub import HfApi, hf_hub_download

    transform = LGMDTransform.fit_interactions(_train_split(), LGMD(3, max_iter=2), num_items=20)
    mapped = _items().map(transform, batched=True)
    transform.push_to_hub(mapped, hub_repo_id)
    files = HfApi().list_repo_files(hub_repo_id, repo_type="dataset")
    assert "README.md" in files and any(f.endswith(".parquet") for f in files)
    card = Path(hf_hub_download(hub_repo_id, "README.md", repo_type="dataset")).read_text()
    assert "cf_embedding" in card and "lgmd" in card and "dataset_info" in card
    with pytest.raises(SimCITInputError, match="map it with this transform"):
        transform.push_to_hub(_items(), hub_repo_id)
