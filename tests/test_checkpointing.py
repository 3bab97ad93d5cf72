"""The one checkpoint manager both trainers use: rotation, the resume convention, the best model, exact state."""

from __future__ import annotations

import json

import pytest
import torch

from hf_simcit.cli import main
from hf_simcit.errors import SimCITInputError
from hf_simcit.training.checkpointing import CheckpointManager, EpochShuffleSampler, checkpoint_folder
from hf_simcit.training.quantizer import QuantizerTrainingArguments
from hf_simcit.training.recommender import RecommenderTrainingArguments


def trained_state(seed: int = 0):
    """A small model, AdamW and a scheduler after two steps: optimizer moments and a scheduler position to keep."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(2):
        model(torch.randn(5, 4)).square().sum().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return model, optimizer, scheduler


def steps(manager: CheckpointManager) -> list[int]:
    return [int(p.name.split("-")[1]) for p in manager.checkpoints()]


def test_rotation_keeps_the_newest_and_never_the_best(tmp_path):
    # the best model inside the checkpoint folder, the hardest place for it to survive rotation
    manager = CheckpointManager(tmp_path / "ckpt", tmp_path / "ckpt" / "best", save_total_limit=2)
    model, optimizer, scheduler = trained_state()
    for step in (1, 2, 3, 9, 10):       # 10 after 9: steps compare as numbers, not as names
        manager.save(step, model=model, optimizer=optimizer, scheduler=scheduler, state={"step": step})
        if step == 1:
            manager.save_best(lambda folder: (folder / "marker.json").write_text('{"step": 1}'))
    assert steps(manager) == [9, 10]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["best", "checkpoint-10", "checkpoint-9"]
    assert json.loads((manager.best_dir / "marker.json").read_text()) == {"step": 1}
    assert manager.load_best(lambda folder: json.loads((folder / "marker.json").read_text())) == {"step": 1}


def test_rotation_limit_zero_keeps_every_checkpoint_and_one_keeps_the_latest(tmp_path):
    model, _, _ = trained_state()
    keep_all = CheckpointManager(tmp_path / "all", tmp_path / "out", save_total_limit=0)
    keep_one = CheckpointManager(tmp_path / "one", tmp_path / "out", save_total_limit=1)
    for step in range(4):
        keep_all.save(step, model=model)
        keep_one.save(step, model=model)
    assert steps(keep_all) == [0, 1, 2, 3]
    assert steps(keep_one) == [3]
    assert keep_one.load_best(lambda folder: folder) is None     # no best saved yet


def test_auto_resumes_from_the_newest_checkpoint(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt", tmp_path / "out", save_total_limit=0)
    assert manager.resolve("auto") is None                       # nothing yet: a fresh start
    model, _, _ = trained_state()
    for step in (2, 10, 9):
        manager.save(step, model=model, state={"step": step})
    (tmp_path / "ckpt" / "checkpoint-old").mkdir()               # not checkpoint-<step>: never picked
    for word in ("auto", "true", "AUTO", True):
        assert manager.resolve(word) == tmp_path / "ckpt" / "checkpoint-10", word


def test_an_explicit_checkpoint_is_used(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt", tmp_path / "out", save_total_limit=0)
    model, optimizer, scheduler = trained_state()
    for step in (3, 6):
        manager.save(step, model=model, optimizer=optimizer, scheduler=scheduler, state={"step": step})
    chosen = manager.resolve(str(tmp_path / "ckpt" / "checkpoint-3"))
    assert chosen == tmp_path / "ckpt" / "checkpoint-3"
    fresh, fresh_optimizer, fresh_scheduler = trained_state(seed=1)
    state = manager.restore(chosen, model=fresh, optimizer=fresh_optimizer, scheduler=fresh_scheduler)
    assert state == {"step": 3}


@pytest.mark.parametrize("value", ["none", "None", "no", "false", None, False])
def test_none_starts_fresh_even_with_checkpoints(tmp_path, value):
    manager = CheckpointManager(tmp_path / "ckpt", tmp_path / "out")
    model, _, _ = trained_state()
    manager.save(4, model=model, state={"step": 4})
    assert manager.resolve(value) is None
    assert manager.restore(None, model=model) is None


def test_a_path_that_is_not_a_checkpoint_is_one_line(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt", tmp_path / "out")
    (tmp_path / "some_folder").mkdir()
    for value in (str(tmp_path / "some_folder"), str(tmp_path / "absent"), "maybe"):
        with pytest.raises(SimCITInputError, match="is not a checkpoint folder") as err:
            manager.resolve(value)
        assert "\n" not in str(err.value) and value in str(err.value)


def test_saved_then_restored_state_equals_the_original(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt", tmp_path / "out")
    model, optimizer, scheduler = trained_state()
    extra = {"step": 7, "best_metric": 0.25, "history": [{"step": 7, "loss": 1.5}]}
    path = manager.save(7, model=model, optimizer=optimizer, scheduler=scheduler, state=extra)
    after_save = torch.rand(3)                                   # the RNG stream right after the checkpoint

    fresh, fresh_optimizer, fresh_scheduler = trained_state(seed=1)
    assert not torch.equal(fresh.weight, model.weight)
    state = manager.restore(manager.resolve("auto"), model=fresh, optimizer=fresh_optimizer,
                            scheduler=fresh_scheduler)
    assert manager.resolve("auto") == path and state == extra
    for name, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name
    saved, restored = optimizer.state_dict(), fresh_optimizer.state_dict()
    assert saved["param_groups"] == restored["param_groups"]
    for index, moments in saved["state"].items():
        for key, value in moments.items():
            assert torch.equal(restored["state"][index][key], value), (index, key)
    assert fresh_scheduler.state_dict() == scheduler.state_dict()
    assert torch.equal(torch.rand(3), after_save)                # the RNG continues where it was saved


def test_default_checkpoint_folder_and_the_data_order_of_an_epoch():
    assert checkpoint_folder("runs/quantizer") == checkpoint_folder("runs/quantizer/") == \
        checkpoint_folder("x", "runs/quantizer_checkpoints")
    sampler = EpochShuffleSampler(10, seed=3)
    sampler.use_epoch(2)
    first = list(sampler)
    sampler.use_epoch(0)
    assert sorted(first) == list(range(10)) and list(sampler) != first
    sampler.use_epoch(2)
    assert list(sampler) == first                                  # an epoch's order depends on seed + epoch only


# ---------------------------------------------------------------- both trainers' arguments: one convention
def test_a_bad_resume_value_exits_2_with_one_line_from_the_cli(tmp_path, capsys):
    recipe = tmp_path / "quantizer.yaml"
    recipe.write_text(f"features_path: {tmp_path / 'features'}\nmax_steps: 2\n")
    assert main(["train-quantizer", str(recipe), "--resume_from_checkpoint", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resume_from_checkpoint" in err[0] and "is not a checkpoint folder" in err[0]


def test_the_old_resume_key_still_reads_as_resume_from_checkpoint(tmp_path):
    from hf_simcit.training.quantizer import parse_quantizer_recipe

    recipe = tmp_path / "quantizer.yaml"
    recipe.write_text("resume_from_checkpoint: auto\n")
    with pytest.warns(FutureWarning, match="'resume' is now 'resume_from_checkpoint'"):
        args = parse_quantizer_recipe(str(recipe), ["--resume", "false"])     # the command line wins
    assert args.resume_from_checkpoint == "false"
    assert CheckpointManager(tmp_path / "ckpt", tmp_path / "out").resolve(args.resume_from_checkpoint) is None
    recipe.write_text("resume: true\n")
    with pytest.warns(FutureWarning):
        assert parse_quantizer_recipe(str(recipe)).resume_from_checkpoint == "true"


def test_both_trainers_default_to_auto_and_refuse_a_non_checkpoint_before_anything_runs(tmp_path):
    assert QuantizerTrainingArguments(output_dir="runs/q").resume_from_checkpoint == "auto"
    assert RecommenderTrainingArguments(output_dir="runs/r").resume_from_checkpoint == "auto"
    assert RecommenderTrainingArguments(output_dir="runs/r").checkpoints() == checkpoint_folder("runs/r")
    (tmp_path / "some_folder").mkdir()
    with pytest.raises(SimCITInputError, match="is not a checkpoint folder"):
        QuantizerTrainingArguments(resume_from_checkpoint=str(tmp_path / "some_folder"))
    with pytest.raises(SimCITInputError, match="is not a checkpoint folder"):
        RecommenderTrainingArguments(resume_from_checkpoint="maybe")
