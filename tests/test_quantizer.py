"""SimCITQuantizer: losses, options, save/load and Auto classes, training (resume, early stopping), CLI, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hf_simcit  # noqa: F401  (registers the Auto classes)
from hf_simcit.configuration_simcit import SimCITConfig
from hf_simcit.errors import SimCITInputError
from hf_simcit.modeling_simcit import SimCITQuantizer, info_nce
from hf_simcit.quantizers import ItemFeatures, codebook_statistics, initialize_simcit_codebooks
from hf_simcit.training.quantizer import QuantizerTrainingArguments, train_quantizer

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_config(**kwargs) -> SimCITConfig:
    base = dict(modality_names=["text", "cf"], modality_dims=[16, 8], encoder_hidden_sizes=[32], latent_dim=16,
                num_levels=2, codebook_size=8)
    base.update(kwargs)
    return SimCITConfig(**base)


def tiny_features(n: int = 64, seed: int = 0) -> ItemFeatures:
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(8, 16, generator=generator) * 3
    text = centers[torch.arange(n) % 8] + torch.randn(n, 16, generator=generator)
    cf = torch.randn(n, 8, generator=generator)
    cf_mask = torch.arange(n) % 5 != 0  # every fifth item has no collaborative signal
    cf = cf * cf_mask[:, None]
    return ItemFeatures({"text": F.normalize(text, dim=-1), "cf": cf},
                        {"text": torch.ones(n, dtype=torch.bool), "cf": cf_mask}, [f"item{i}" for i in range(n)])


def test_item_features_select_keeps_the_asked_modalities_in_their_order_and_names_a_missing_one():
    feats = tiny_features(10)
    cf_only = feats.select(["cf"])
    assert cf_only.modalities == ["cf"] and cf_only.item_ids == feats.item_ids
    assert torch.equal(cf_only.features["cf"], feats.features["cf"]) and torch.equal(cf_only.masks["cf"],
                                                                                     feats.masks["cf"])
    assert feats.select(["cf", "text"]).modalities == ["cf", "text"]
    with pytest.raises(SimCITInputError, match=r"features lack modality 'image' \(column image_embedding\)"):
        feats.select(["text", "image"])


def test_forward_returns_every_loss_part_and_gradients_reach_everything():
    torch.manual_seed(0)
    model = SimCITQuantizer(tiny_config()).train()
    feats = tiny_features(32)
    out = model(feats.features, feats.masks)
    assert out.modality_losses.shape == (2,)
    assert torch.isfinite(out.loss)
    expected = out.contrastive_loss + out.codeword_diversity_loss
    assert torch.allclose(out.loss, expected)
    assert torch.allclose(out.contrastive_loss, out.modality_losses.sum())
    assert out.commitment_loss > 0 and torch.equal(out.commitment_loss, out.codebook_loss)   # one distance
    assert out.codes.shape == (32, 2) and out.codes.dtype == torch.long
    # absent modality has zero attention weight
    assert torch.all(out.modality_weights[~feats.masks["cf"], 1] == 0)
    assert torch.allclose(out.modality_weights.sum(-1), torch.ones(32))
    out.loss.backward()
    assert model.quantizer.codebooks.grad.abs().sum() > 0
    assert model.encoders["text"].layers[0].weight.grad.abs().sum() > 0
    assert model.encoders["cf"].layers[0].weight.grad.abs().sum() > 0


def test_modality_absent_from_whole_batch_contributes_zero():
    model = SimCITQuantizer(tiny_config()).train()
    feats = tiny_features(10)
    out = model(feats.features, {"text": feats.masks["text"], "cf": torch.zeros(10, dtype=torch.bool)})
    assert out.modality_losses[1].item() == 0.0
    assert out.modality_losses[0].item() > 0.0


def test_info_nce_matches_the_reference_formula():
    torch.manual_seed(0)
    q, h = F.normalize(torch.randn(5, 4), dim=-1), F.normalize(torch.randn(5, 4), dim=-1)
    valid = torch.ones(5, dtype=torch.bool)
    tau = 0.5
    got = info_nce(q, h, q, h, valid, valid, valid, 0, tau)
    manual = []
    for i in range(5):
        denominator = sum(torch.exp(q[i] @ h[j] / tau) for j in range(5))
        denominator += sum(torch.exp(q[i] @ q[j] / tau) for j in range(5) if j != i)
        manual.append(-torch.log(torch.exp(q[i] @ h[i] / tau) / denominator))
    assert torch.allclose(got, torch.stack(manual).mean(), atol=1e-5)


def test_symmetric_loss_is_the_mean_of_both_directions():
    feats = tiny_features(16)
    torch.manual_seed(0)
    plain = SimCITQuantizer(tiny_config()).eval()
    symmetric = SimCITQuantizer(tiny_config(symmetric_loss=True)).eval()
    symmetric.load_state_dict(plain.state_dict())
    a, b = plain(feats.features, feats.masks), symmetric(feats.features, feats.masks)
    assert not torch.allclose(a.modality_losses, b.modality_losses)
    # recompute the reverse direction of the text modality by hand
    anchors = F.normalize(plain.projection(a.quantized), dim=-1)
    tensors, present = plain._stack_inputs(feats.features, feats.masks)
    embeddings, _, _ = plain._embed(tensors, present)
    views = F.normalize(plain.projection(embeddings[:, 0]), dim=-1)
    everyone = torch.ones(16, dtype=torch.bool)
    reverse = info_nce(views, anchors, views, anchors, everyone, everyone, everyone, 0, 0.07)
    assert torch.allclose(b.modality_losses[0], 0.5 * (a.modality_losses[0] + reverse), atol=1e-5)


def _gather_worker(rank: int, world: int, port: int, state: dict, path: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = SimCITQuantizer(tiny_config(gather_negatives=True)).eval()
    model.load_state_dict(state)
    feats = tiny_features(16)
    rows = torch.arange(rank * 8, (rank + 1) * 8)
    sub = feats.subset(rows)
    out = model(sub.features, sub.masks)
    out.contrastive_loss.backward()
    losses = torch.stack([out.contrastive_loss.detach()])
    dist.all_reduce(losses)
    grad = model.projection.weight.grad.clone()
    dist.all_reduce(grad)
    if rank == 0:
        from safetensors.torch import save_file

        save_file({"loss": losses / world, "grad": grad / world}, path)
    dist.destroy_process_group()


def test_gathered_negatives_across_two_processes_equal_one_big_batch(tmp_path):
    import socket

    import torch.multiprocessing as mp

    model = SimCITQuantizer(tiny_config()).eval()
    feats = tiny_features(16)
    # every text present, some cf absent: both kinds of masks cross the process boundary
    out = model(feats.features, feats.masks)
    out.contrastive_loss.backward()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = str(tmp_path / "result.safetensors")
    mp.start_processes(_gather_worker, args=(2, port, model.state_dict(), path), nprocs=2, join=True,
                       start_method="fork")
    from safetensors.torch import load_file

    result = load_file(path)
    # per-process mean of per-anchor losses == single-process mean when every process has the same anchors count
    # per modality; cf anchors differ per process, so compare the text term only through the total when equal
    single = out.contrastive_loss.detach()
    assert torch.allclose(result["loss"][0], single, atol=1e-4)
    assert torch.allclose(result["grad"], model.projection.weight.grad, atol=1e-4)


def test_gumbel_temperature_annealing():
    fixed = tiny_config()
    assert fixed.gumbel_temperature_at(0) == fixed.gumbel_temperature_at(10_000) == 0.2
    annealed = tiny_config(gumbel_temperature=1.0, gumbel_temperature_end=0.1, gumbel_anneal_steps=100)
    assert annealed.gumbel_temperature_at(0) == pytest.approx(1.0)
    assert annealed.gumbel_temperature_at(50) == pytest.approx(0.1**0.5)
    assert annealed.gumbel_temperature_at(100) == pytest.approx(0.1)
    assert annealed.gumbel_temperature_at(1000) == pytest.approx(0.1)


def test_kmeans_initialisation_uses_more_codes_than_the_reference_uniform_init():
    feats = tiny_features(256)
    torch.manual_seed(0)
    model = SimCITQuantizer(tiny_config(codebook_size=16))
    uniform = codebook_statistics(model.encode(feats.features, feats.masks).numpy(), [16, 16])
    initialize_simcit_codebooks(model, feats.features, feats.masks, latent_rms=1.0)
    fused = model.fused_embeddings(feats.features, feats.masks)
    assert fused.pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=0.1)  # attention shifts a little
    kmeans = codebook_statistics(model.encode(feats.features, feats.masks).numpy(), [16, 16])
    assert min(kmeans["usage"]) > 0.9
    assert kmeans["usage"][0] > uniform["usage"][0]
    assert kmeans["collision_rate"] < uniform["collision_rate"]


def test_encode_is_deterministic_and_matches_eval_forward():
    model = SimCITQuantizer(tiny_config())
    feats = tiny_features(40)
    model.train()
    first = model.encode(feats.features, feats.masks, batch_size=7)
    assert model.training  # encode works in training mode too, without Gumbel noise
    second = model.encode(feats.features, feats.masks)
    assert torch.equal(first, second)
    model.eval()
    assert torch.equal(model(feats.features, feats.masks, return_loss=False).codes, first)


def test_save_load_and_automodel_give_identical_codes(tmp_path):
    from transformers import AutoConfig, AutoModel

    model = SimCITQuantizer(tiny_config())
    feats = tiny_features(40)
    initialize_simcit_codebooks(model, feats.features, feats.masks)
    codes = model.encode(feats.features, feats.masks)
    model.save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    assert isinstance(AutoConfig.from_pretrained(tmp_path), SimCITConfig)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, SimCITQuantizer)
    assert torch.equal(loaded.encode(feats.features, feats.masks), codes)
    assert torch.equal(SimCITQuantizer.from_pretrained(tmp_path).encode(feats.features, feats.masks), codes)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f, m: f["text"].__setitem__((3, 0), float("nan")), "row 3"),
        (lambda f, m: f["cf"].__setitem__((6, 2), float("inf")), "row 6"),
        (lambda f, m: f.__setitem__("cf", torch.zeros(40, 9)), "cf_embedding"),
        (lambda f, m: f.pop("cf"), "'cf'"),
        (lambda f, m: (m.__setitem__("text", torch.zeros(40, dtype=torch.bool)),
                       m.__setitem__("cf", torch.arange(40) != 7)), "row 7"),
    ],
)
def test_bad_features_raise_a_clear_error(mutate, message):
    model = SimCITQuantizer(tiny_config())
    feats = tiny_features(40)
    features = {k: v.clone() for k, v in feats.features.items()}
    masks = {k: v.clone() for k, v in feats.masks.items()}
    mutate(features, masks)
    with pytest.raises(SimCITInputError, match=message):
        model.encode(features, masks)


def test_nan_in_an_absent_row_is_ignored():
    model = SimCITQuantizer(tiny_config())
    feats = tiny_features(10)
    features = {k: v.clone() for k, v in feats.features.items()}
    features["cf"][0] = float("nan")  # row 0 has no cf (mask False)
    assert not feats.masks["cf"][0]
    codes = model.encode(features, feats.masks)
    assert torch.equal(codes, model.encode(feats.features, feats.masks))


# ---------------------------------------------------------------------------------------------- training


def tiny_args(tmp_path, **kwargs) -> QuantizerTrainingArguments:
    base = dict(output_dir=str(tmp_path / "quantizer"), latent_dim=16, encoder_hidden_sizes=[32], num_levels=2,
                codebook_size=8, max_steps=6, per_device_batch_size=16, eval_steps=3, warmup_steps=1,
                learning_rate=1e-2, validation_share=0.2, show_progress=False, seed=1)
    base.update(kwargs)
    return QuantizerTrainingArguments(**base)


def test_training_logs_catalogue_statistics_and_saves_the_best_model(tmp_path):
    feats = tiny_features(64)
    result = train_quantizer(tiny_args(tmp_path), feats)
    assert [h["step"] for h in result.history] == [0, 3, 6]
    last = result.history[-1]
    for key in ("train_loss", "train_text_loss", "train_cf_loss", "train_codeword_diversity_loss",
                "validation_loss", "validation_text_loss", "usage", "perplexity", "unique_share",
                "collision_rate", "train_quantization_loss"):
        assert key in last, key
    # the commitment and codebook terms have one value (the gradient goes to opposite sides): one curve, not two
    assert "train_commitment_loss" not in last and "train_codebook_loss" not in last
    assert last["train_quantization_loss"] > 0
    assert len(last["usage"]) == 2 and all(0 < u <= 1 for u in last["usage"])
    assert last["unique_share"] == pytest.approx(1 - last["collision_rate"])
    out = tmp_path / "quantizer"
    assert (out / "model.safetensors").exists() and (out / "training_log.json").exists()
    log = json.loads((out / "training_log.json").read_text())
    assert log["best_step"] == result.best_step
    best = min(result.history, key=lambda h: h["validation_loss"])
    assert result.best_step == best["step"]
    reloaded = SimCITQuantizer.from_pretrained(out)
    assert torch.equal(reloaded.encode(feats.features, feats.masks), result.model.encode(feats.features, feats.masks))
    assert (tmp_path / "quantizer_checkpoints" / "checkpoint-6" / "model.safetensors").exists()


def test_resumed_training_reaches_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    feats = tiny_features(64)
    train_quantizer(tiny_args(tmp_path / "a"), feats)
    straight = load_file(str(tmp_path / "a" / "quantizer_checkpoints" / "checkpoint-6" / "model.safetensors"))
    # an interrupted run: stop after the first evaluation, then resume with the same recipe
    train_quantizer(tiny_args(tmp_path / "b", max_train_time_s=0.0), feats)
    ckpts = sorted(p.name for p in (tmp_path / "b" / "quantizer_checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-0", "checkpoint-1"]
    import shutil

    shutil.rmtree(tmp_path / "b" / "quantizer_checkpoints" / "checkpoint-1")
    result = train_quantizer(tiny_args(tmp_path / "b"), feats)
    assert result.history[-1]["step"] == 6
    resumed = load_file(str(tmp_path / "b" / "quantizer_checkpoints" / "checkpoint-6" / "model.safetensors"))
    for key, value in straight.items():
        assert torch.allclose(value, resumed[key], atol=1e-6), key


def test_early_stopping_stops_when_the_metric_does_not_improve(tmp_path):
    feats = tiny_features(64)
    result = train_quantizer(
        tiny_args(tmp_path, learning_rate=0.0, max_steps=40, eval_steps=2, early_stopping_patience=2,
                  metric_for_best_model="unique_share"), feats)
    assert result.history[-1]["step"] == 4
    assert result.best_step == 0


def test_reference_settings_stay_available(tmp_path):
    feats = tiny_features(64)
    result = train_quantizer(tiny_args(tmp_path, codebook_init="uniform", learning_rate=2e-4, max_steps=3), feats)
    assert result.model.config.codebook_init == "uniform"


def test_bad_recipe_values_raise(tmp_path):
    with pytest.raises(SimCITInputError, match="metric_for_best_model"):
        tiny_args(tmp_path, metric_for_best_model="accuracy")
    with pytest.raises(SimCITInputError, match="codebook_init"):
        train_quantizer(tiny_args(tmp_path, codebook_init="zeros"), tiny_features(64))
    with pytest.raises(SimCITInputError, match="fewer than one batch"):
        train_quantizer(tiny_args(tmp_path, per_device_batch_size=256), tiny_features(64))


# ---------------------------------------------------------------------------------------------- CLI


def _item_table(feats: ItemFeatures):
    from datasets import Dataset

    from hf_simcit.features import add_embedding_column

    items = Dataset.from_dict({"item_index": list(range(len(feats))), "item_id": feats.item_ids,
                               "text": ["t"] * len(feats)})
    for name in feats.modalities:
        items = add_embedding_column(items, name, feats.features[name].numpy(), feats.masks[name].numpy())
    return items


def test_cli_train_assign_then_auto_classes_reproduce_the_sids(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from hf_simcit.cli import main
    from hf_simcit.quantizers import add_cold_start_items

    feats = tiny_features(64)
    _item_table(feats).save_to_disk(str(tmp_path / "features"))
    recipe = tmp_path / "quantizer.yaml"
    recipe.write_text(
        f"features_path: {tmp_path / 'features'}\noutput_dir: {tmp_path / 'quantizer'}\nlatent_dim: 16\n"
        "encoder_hidden_sizes: [32]\nnum_levels: 2\ncodebook_size: 8\nmax_steps: 50\n"
        "per_device_batch_size: 16\neval_steps: 2\nshow_progress: false\n"
    )
    assert main(["train-quantizer", str(recipe), "--max_steps", "2"]) == 0
    log = json.loads((tmp_path / "quantizer" / "training_log.json").read_text())
    assert log["history"][-1]["step"] == 2  # the override won
    assert main(["assign", "--quantizer", str(tmp_path / "quantizer"), "--features", str(tmp_path / "features")]) == 0
    folder = tmp_path / "quantizer"
    assert (folder / "sid_table.json").exists() and (folder / "model.safetensors").exists()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder)
    assert type(tokenizer).__name__ == "SimCITTokenizer"
    table = tokenizer.codes.numpy()
    assert len({tuple(r) for r in table.tolist()}) == 64  # every item distinct
    raw = model.encode(feats.features, feats.masks).numpy()
    assert np.array_equal(table[:, :2], raw)  # the quantizer's codes, plus the disambiguation level
    info = json.loads((folder / "sid_assignment.json").read_text())
    assert info["unique_share"] == 1.0 and 0 <= info["raw_collision_rate"] <= 1
    assert info["disambiguation_order"] == "index"
    # another numbering inside collision groups, recorded with its seed; the raw codes are the same
    shuffled = tmp_path / "shuffled"
    assert main(["assign", "--quantizer", str(folder), "--features", str(tmp_path / "features"), "--output",
                 str(shuffled), "--disambiguation-order", "random", "--disambiguation-seed", "5"]) == 0
    shuffled_info = json.loads((shuffled / "sid_assignment.json").read_text())
    assert (shuffled_info["disambiguation_order"], shuffled_info["disambiguation_seed"]) == ("random", 5)
    shuffled_table = AutoTokenizer.from_pretrained(shuffled).codes.numpy()
    assert np.array_equal(shuffled_table[:, :2], table[:, :2])
    assert len({tuple(r) for r in shuffled_table.tolist()}) == 64

    # cold start: copies of existing items (forced collisions) get new, distinct SIDs; old ones are unchanged
    new_feats = feats.subset(torch.arange(5))
    tokenizer2, assignment = add_cold_start_items(folder, new_feats.features, new_feats.masks,
                                                  [f"new{i}" for i in range(5)])
    assert tokenizer2.num_items == 69
    all_codes = tokenizer2.codes.numpy()
    assert len({tuple(r) for r in all_codes.tolist()}) == 69
    assert np.array_equal(all_codes[:64], table)
    assert np.array_equal(assignment.codes[:, :2], table[:5, :2])  # same quantizer codes, new suffix
    reloaded = AutoTokenizer.from_pretrained(folder)
    assert reloaded.item_to_sid("new3") == tokenizer2.item_to_sid("new3")


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    from hf_simcit.cli import main

    feats = tiny_features(20)
    items = _item_table(feats)
    ids = list(items["item_id"])
    ids[7] = ids[2]
    items = items.remove_columns("item_id").add_column("item_id", ids)
    items.save_to_disk(str(tmp_path / "features"))
    recipe = tmp_path / "q.yaml"
    recipe.write_text(f"features_path: {tmp_path / 'features'}\noutput_dir: {tmp_path / 'q'}\n")
    assert main(["train-quantizer", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "duplicate item id 'item2'" in err and "rows 2 and 7" in err
    recipe.write_text("no_such_key: 1\n")
    assert main(["train-quantizer", str(recipe)]) == 2
    assert "no_such_key" in capsys.readouterr().err


def test_all_null_modality_column_is_named(tmp_path):
    from datasets import Dataset

    from hf_simcit.quantizers import load_item_features

    feats = tiny_features(10)
    items = _item_table(feats).add_column("geo_embedding", [None] * 10)
    with pytest.raises(SimCITInputError, match="geo_embedding"):
        load_item_features(items, ["text", "geo"])
    items = Dataset.from_dict({"item_id": ["a", "b"], "text_embedding": [[1.0, 2.0], [float("nan"), 1.0]]})
    with pytest.raises(SimCITInputError, match="'b'"):
        load_item_features(items)


@pytest.mark.skipif(not (DATA / "amazon2014_beauty").exists(), reason="shared Beauty data not present")
def test_loss_falls_in_a_short_run_on_real_beauty_features(tmp_path):
    from hf_simcit.data import prepare_dataset
    from hf_simcit.features import collaborative_embeddings  # noqa: F401  (the features stage exists)

    rec = prepare_dataset("beauty", DATA / "amazon2014_beauty")
    from hf_simcit.data import training_matrix

    matrix = training_matrix(rec).T.tocsr()
    rows = np.flatnonzero(matrix.getnnz(axis=1) > 0)[:2000]  # items with training interactions
    dense = torch.from_numpy(matrix[rows].toarray())
    u, s, _ = torch.svd_lowrank(dense, q=32, niter=2)
    cf = F.normalize(u * s, dim=-1)
    present = torch.from_numpy(np.asarray(matrix[rows].getnnz(axis=1) > 0))
    items = [rec.items[int(i)]["item_id"] for i in rows]
    feats = ItemFeatures({"cf": torch.where(present[:, None], cf, 0.0)}, {"cf": present}, items)
    result = train_quantizer(tiny_args(tmp_path, latent_dim=32, encoder_hidden_sizes=[64], codebook_size=32,
                                       num_levels=2, max_steps=40, eval_steps=20, per_device_batch_size=128,
                                       learning_rate=1e-3, init_latent_rms=1.0, validation_share=0.1), feats)
    losses = [h["validation_loss"] for h in result.history]
    assert losses[-1] < losses[0]


def test_codebook_refresh_refits_to_the_current_embeddings(tmp_path):
    from hf_simcit.quantizers import residual_kmeans

    feats = tiny_features(64)
    result = train_quantizer(tiny_args(tmp_path, codebook_refit="periodic", codebook_refresh_steps=3,
                                       validation_share=0.0, metric_for_best_model="collision_rate"), feats)
    model = result.model
    # every evaluation step (3, 6) re-fitted the codebooks first: the saved (best) model's codebooks are residual
    # k-means of its own fused embeddings
    expected, _ = residual_kmeans(model.fused_embeddings(feats.features, feats.masks), 2, 8, seed=1 + result.best_step)
    assert torch.allclose(model.quantizer.codebooks.detach(), expected, atol=1e-4)
    assert min(result.history[-1]["usage"]) > 0.5


def test_saved_folder_loads_with_trust_remote_code_without_hf_simcit(tmp_path):
    import subprocess
    import sys

    from safetensors.torch import save_file

    from hf_simcit.tokenization_simcit import SimCITTokenizer

    model = SimCITQuantizer(tiny_config(modality_names=["text"], modality_dims=[16]))
    feats = tiny_features(6)
    model.save_pretrained(tmp_path)
    SimCITTokenizer.from_codes([[0, 1], [1, 0]], ["x", "y"], [8, 8]).save_pretrained(tmp_path)
    assert {"configuration_simcit.py", "modeling_simcit.py", "errors.py"} <= {p.name for p in tmp_path.iterdir()}
    save_file({"text": feats.features["text"].contiguous()}, str(tmp_path / "inputs.safetensors"))
    expected = model.encode({"text": feats.features["text"]}).tolist()
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "hf_simcit" or name.startswith("hf_simcit."):
            raise ImportError("hf_simcit is not installed here")
sys.meta_path.insert(0, Block())
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer
model = AutoModel.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
print(model.encode(load_file({str(tmp_path / "inputs.safetensors")!r})).tolist(), tokenizer.item_to_sid("y"))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"{expected} <a_1><b_0>"


def test_num_threads_holds_while_the_quantizer_trains_and_is_restored(tmp_path, monkeypatch):
    """``num_threads``: torch's pool for the whole training (one thread makes a CPU run reproducible), the
    previous setting after it, also after an error; 0 is one clear line."""
    import hf_simcit.training.quantizer as quantizer

    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    seen = []

    def spy(args, features):
        seen.append(torch.get_num_threads())
        raise SimCITInputError("stop here")

    monkeypatch.setattr(quantizer, "_train_quantizer", spy)
    with pytest.raises(SimCITInputError, match="stop here"):
        train_quantizer(tiny_args(tmp_path, num_threads=wanted), tiny_features())
    assert seen == [wanted] and torch.get_num_threads() == before
    with pytest.raises(SimCITInputError, match="num_threads must be positive"):
        tiny_args(tmp_path, num_threads=0)
    from hf_simcit.pipeline import load_pipeline, plan_stages

    demo = plan_stages(load_pipeline(Path(__file__).resolve().parents[1] / "recipes" / "ml-100k" / "pipeline.yaml"))
    assert demo.quantizer.num_threads == 1     # the demo's SIDs are the same every run
