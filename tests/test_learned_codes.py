"""Learned codes: SimCIT's SIDs are the argmin over its trained codebooks unless a k-means re-fit is asked."""

from __future__ import annotations

import json

import pytest
import torch

from hf_simcit.configuration_simcit import SimCITConfig
from hf_simcit.errors import SimCITInputError
from hf_simcit.modeling_simcit import SimCITQuantizer
from hf_simcit.quantizers import assign_semantic_ids, residual_kmeans
from hf_simcit.training.quantizer import parse_quantizer_recipe, restart_dead_codes, train_quantizer
from tests.test_quantizer import tiny_args, tiny_features

torch.set_num_threads(1)


def argmin_codes(model: SimCITQuantizer, feats) -> torch.LongTensor:
    """The residual argmin walk over the model's own codebooks, written out independently of ``encode``."""
    residual = model.fused_embeddings(feats.features, feats.masks)
    codes = []
    for codebook in model.quantizer.codebooks.detach():
        level = torch.cdist(residual, codebook).argmin(-1)
        codes.append(level)
        residual = residual - codebook[level]
    return torch.stack(codes, dim=1)


def test_default_sids_are_the_learned_codebooks_argmin(tmp_path):
    feats = tiny_features(96)
    args = tiny_args(tmp_path, max_steps=9, validation_share=0.0, metric_for_best_model="collision_rate")
    assert args.codebook_refit == "none"
    result = train_quantizer(args, feats)
    model = result.model.eval()
    assert model.config.codebook_refit == "none"
    assignment = assign_semantic_ids(model, feats.features, feats.masks, resolve="level")
    assert torch.equal(torch.as_tensor(assignment.raw_codes), argmin_codes(model, feats))
    # the codebooks are the trained ones: not the residual k-means of the final fused embeddings
    fused = model.fused_embeddings(feats.features, feats.masks)
    refit, _ = residual_kmeans(fused, 2, 8, seed=args.seed + result.best_step)
    assert not torch.allclose(model.quantizer.codebooks.detach(), refit, atol=1e-3)
    log = json.loads((tmp_path / "quantizer" / "training_log.json").read_text())
    assert log["args"]["codebook_refit"] == "none"


@pytest.mark.parametrize("refit", ["final", "periodic"])
def test_a_refit_is_an_option_and_changes_the_sids(tmp_path, refit):
    feats = tiny_features(96)
    kwargs = dict(max_steps=9, validation_share=0.0, metric_for_best_model="collision_rate", codebook_refresh_steps=3)
    learned = train_quantizer(tiny_args(tmp_path / "learned", **kwargs), feats).model.eval()
    refitted = train_quantizer(tiny_args(tmp_path / refit, codebook_refit=refit, **kwargs), feats).model.eval()
    assert refitted.config.codebook_refit == refit
    assert SimCITQuantizer.from_pretrained(tmp_path / refit / "quantizer").config.codebook_refit == refit
    codes_learned = learned.encode(feats.features, feats.masks)
    codes_refit = refitted.encode(feats.features, feats.masks)
    assert not torch.equal(codes_learned, codes_refit)
    assert torch.equal(codes_refit, argmin_codes(refitted, feats))   # still the argmin, over k-means codebooks
    if refit == "final":   # same training, only the saved codebooks re-fitted: the encoders are identical
        for name, value in learned.state_dict().items():
            if name != "quantizer.codebooks":
                assert torch.equal(value, refitted.state_dict()[name]), name


def test_codebook_refit_round_trips_and_bad_values_are_refused(tmp_path):
    config = SimCITConfig(codebook_refit="final", commitment_weight=0.5, codebook_loss_weight=1.0)
    config.save_pretrained(tmp_path)
    again = SimCITConfig.from_pretrained(tmp_path)
    assert (again.codebook_refit, again.commitment_weight, again.codebook_loss_weight) == ("final", 0.5, 1.0)
    with pytest.raises(ValueError, match="codebook_refit"):
        SimCITConfig(codebook_refit="kmeans")
    with pytest.raises(SimCITInputError, match="codebook_refit"):
        tiny_args(tmp_path, codebook_refit="always")
    recipe = tmp_path / "q.yaml"
    recipe.write_text("features_path: x\ncodebook_refit: periodic\n")
    assert parse_quantizer_recipe(str(recipe)).codebook_refit == "periodic"
    assert parse_quantizer_recipe(str(recipe), ["--codebook_refit", "none"]).codebook_refit == "none"


def test_recipes_ship_learned_codes():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*/quantizer.yaml")):
        assert parse_quantizer_recipe(str(path)).codebook_refit == "none", path


def test_dead_code_restart_moves_only_unused_codewords(tmp_path):
    feats = tiny_features(64)
    torch.manual_seed(0)
    model = SimCITQuantizer(SimCITConfig(modality_names=["text", "cf"], modality_dims=[16, 8],
                                         encoder_hidden_sizes=[32], latent_dim=16, num_levels=2, codebook_size=8))
    with torch.no_grad():
        fused = model.fused_embeddings(feats.features, feats.masks)
        books = torch.stack([fused[:8].clone(), torch.zeros(8, 16)])
        books[0, 6:] = 1e3   # two first-level codewords no item can choose
        model.set_codebooks(books)
    optimizer = torch.optim.AdamW(model.parameters())
    before = model.quantizer.codebooks.detach().clone()
    used = argmin_codes(model, feats)[:, 0].unique()
    moved = restart_dead_codes(model, optimizer, feats, seed=0)
    after = model.quantizer.codebooks.detach()
    assert moved >= 2
    assert torch.equal(after[0, used], before[0, used])          # learned codewords untouched
    assert (after[0, 6:] != 1e3).all()                            # dead ones now sit on data
    assert argmin_codes(model, feats)[:, 0].unique().numel() > used.numel()
