"""Baselines with SimCIT's interface: RQ-KMeans, RQ-VAE (TIGER), random IDs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_simcit.errors import SimCITInputError
from hf_simcit.quantizers import (
    BASELINES,
    RandomIDQuantizer,
    RQKMeansQuantizer,
    RQVAEQuantizer,
    assign_semantic_ids,
    codebook_statistics,
    kmeans,
    load_quantizer,
    residual_kmeans,
)

torch.set_num_threads(1)


def clustered(n: int = 400, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(16, 12, generator=generator) * 4
    text = centers[torch.arange(n) % 16] + torch.randn(n, 12, generator=generator)
    geo = torch.randn(n, 3, generator=generator)
    mask = torch.arange(n) % 7 != 0
    return {"text": text, "geo": geo * mask[:, None]}, {"text": torch.ones(n, dtype=torch.bool), "geo": mask}


def test_kmeans_finds_separated_clusters_and_uses_every_centroid():
    points = torch.cat([torch.randn(50, 2) * 0.1 + torch.tensor(c) for c in ([0, 0], [10, 0], [0, 10])])
    centroids = kmeans(points, 3, seed=1)
    found = sorted(tuple(round(v) for v in row.tolist()) for row in centroids)
    assert found == [(0, 0), (0, 10), (10, 0)]
    _, codes = residual_kmeans(torch.randn(300, 4), 2, 16)
    stats = codebook_statistics(codes.numpy(), [16, 16])
    assert stats["usage"] == [1.0, 1.0]


@pytest.mark.parametrize("name", ["rqkmeans", "rqvae", "random"])
def test_same_interface_save_load_identical_codes(name, tmp_path):
    features, masks = clustered()
    kwargs = {"steps": 30, "batch_size": 128, "hidden_sizes": [32], "latent_dim": 8} if name == "rqvae" else {}
    quantizer = BASELINES[name](num_levels=3, codebook_size=16, **kwargs).fit(features, masks)
    codes = quantizer.encode(features, masks)
    assert codes.shape == (400, 3) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < 16
    quantizer.save_pretrained(tmp_path / name)
    assert (tmp_path / name / "quantizer.safetensors").exists()
    reloaded = load_quantizer(tmp_path / name)
    assert type(reloaded) is type(quantizer)
    assert torch.equal(reloaded.encode(features, masks), codes)
    assignment = assign_semantic_ids(quantizer, features, masks, resolve="level")
    assert assignment.statistics["unique_share"] == 1.0
    assert len({tuple(r) for r in assignment.codes.tolist()}) == 400


@pytest.mark.parametrize("name", ["rqkmeans", "rqvae", "random"])
def test_balanced_reassignment_works_with_every_baseline(name):
    features, masks = clustered(200)
    kwargs = {"steps": 10, "batch_size": 64, "hidden_sizes": [16], "latent_dim": 8} if name == "rqvae" else {}
    quantizer = BASELINES[name](num_levels=2, codebook_size=64, **kwargs).fit(features, masks)
    assignment = assign_semantic_ids(quantizer, features, masks, resolve="sinkhorn")
    assert assignment.codes.shape == (200, 2)
    assert assignment.statistics["unique_share"] == 1.0
    assert np.array_equal(assignment.codes[:, 0], assignment.raw_codes[:, 0])


def test_rqkmeans_beats_random_on_cluster_structure():
    features, masks = clustered()
    rq = RQKMeansQuantizer(num_levels=2, codebook_size=16).fit(features, masks)
    codes = rq.encode(features, masks).numpy()
    # items of one cluster share their first code far more often than random IDs would make them
    cluster = np.arange(400) % 16
    purity = np.mean([np.bincount(codes[cluster == c, 0]).max() / (cluster == c).sum() for c in range(16)])
    assert purity > 0.8
    random_codes = RandomIDQuantizer(num_levels=2, codebook_size=16).fit(features, masks).encode(features, masks)
    random_purity = np.mean(
        [np.bincount(random_codes.numpy()[cluster == c, 0]).max() / (cluster == c).sum() for c in range(16)]
    )
    assert random_purity < 0.5


def test_rqvae_loss_falls():
    features, masks = clustered()
    quantizer = RQVAEQuantizer(num_levels=2, codebook_size=16, steps=300, batch_size=128, hidden_sizes=[32],
                               latent_dim=8, learning_rate=3e-3).fit(features, masks)
    history = quantizer.loss_history
    assert np.mean(history[-10:]) < np.mean(history[:10])


def test_random_ids_are_a_fixed_function_of_the_features():
    features, masks = clustered(50)
    a = RandomIDQuantizer(codebook_size=256, seed=3).fit(features, masks)
    b = RandomIDQuantizer(codebook_size=256, seed=3).fit(features, masks)
    assert torch.equal(a.encode(features, masks), b.encode(features, masks))
    c = RandomIDQuantizer(codebook_size=256, seed=4).fit(features, masks)
    assert not torch.equal(a.encode(features, masks), c.encode(features, masks))
    # a new item gets an ID without refitting, and old items keep theirs
    sub = {k: v[:10] for k, v in features.items()}
    assert torch.equal(a.encode(sub, {k: v[:10] for k, v in masks.items()}), a.encode(features, masks)[:10])


def test_baselines_reject_bad_input():
    features, masks = clustered(20)
    quantizer = RQKMeansQuantizer(num_levels=1, codebook_size=4)
    with pytest.raises(SimCITInputError, match="not fitted"):
        quantizer.encode(features, masks)
    quantizer.fit(features, masks)
    bad = {k: v.clone() for k, v in features.items()}
    bad["text"][4, 0] = float("nan")
    with pytest.raises(SimCITInputError, match="row 4"):
        quantizer.encode(bad, masks)
    with pytest.raises(SimCITInputError, match="geo"):
        quantizer.encode({"text": features["text"]}, masks)
    with pytest.raises(SimCITInputError, match="missing for every item"):
        RQKMeansQuantizer().fit(features, {"text": masks["text"], "geo": torch.zeros(20, dtype=torch.bool)})
