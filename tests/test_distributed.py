"""The recommender and the quantizer under 2 real processes: `accelerate launch` with
recipes/accelerate_configs/multi_cpu.yaml (DDP over gloo on CPU), against 1-process references.

What the 2-process runs must show:
- the batch split: 2 processes x 8 examples take the same optimizer steps, losses and weights as 1 process x 16;
- resume: a run interrupted at a checkpoint and resumed by 2 fresh processes ends where the reference ends;
- evaluation: validation sharded over 2 processes (11 rows: uneven shards) gives exactly the metrics of a
  1-process evaluation of the saved model, also when it runs on the training loader's last batch (where
  accelerate's gather_for_metrics used to cut the rows to the training remainder);
- the saved model loads and recommends valid items;
- the quantizer: 2 x 8 items per step (negatives gathered) train like 1 x 16 and save the same codes;
- the quantizer's processes draw their own Gumbel noise, checkpoints keep every process's RNG state, and a
  2-process resume ends bitwise where the uninterrupted 2-process run ends.

FSDP and DeepSpeed are not covered: accelerate has no CPU FSDP (FSDP1 refuses to start without a GPU, an
FSDP2 config runs as DDP) and DeepSpeed needs CUDA. The recommender trainer refuses an FSDP config it cannot
honour and refuses to resume under FSDP/DeepSpeed; the quantizer trainer refuses FSDP and DeepSpeed (it trains
a full copy per process). Those refusals, and matching DeepSpeed's own gradient clipping to max_grad_norm,
are tested with stand-in accelerators.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from test_recommender import NUM_ITEMS, tiny_splits

from hf_simcit.cli import main
from hf_simcit.data import RecDataset
from hf_simcit.errors import SimCITInputError
from hf_simcit.recommender.evaluation import _shard_rows, evaluate_saved_recommender
from hf_simcit.training.distributed import check_distributed_setup
from hf_simcit.training.recommender import parse_recommender_recipe, train_recommender

ROOT = Path(__file__).resolve().parents[1]
MULTI_CPU = ROOT / "recipes" / "accelerate_configs" / "multi_cpu.yaml"
NUM_USERS = 11          # validation: 11 rows, shards of 6 and 5; train: 33 rows
KS = (1, 5)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from hf_simcit.tokenization_simcit import SimCITTokenizer

    root = tmp_path_factory.mktemp("distributed")
    item_ids = [f"m{i}" for i in range(NUM_ITEMS)]
    items = Dataset.from_dict({"item_index": list(range(NUM_ITEMS)), "item_id": item_ids,
                               "text": [f"movie {i}" for i in range(NUM_ITEMS)]})
    sequences = Dataset.from_dict({
        "user_id": list(range(NUM_USERS)), "raw_user_id": [str(u) for u in range(NUM_USERS)],
        "items": [[(u + j) % NUM_ITEMS for j in range(6)] for u in range(NUM_USERS)]})
    RecDataset(tiny_splits(NUM_USERS), items, sequences, {"dataset": "tiny"}).save_to_disk(root / "data")
    codes = np.array([[i // 4, i % 4] for i in range(NUM_ITEMS)])
    SimCITTokenizer.from_codes(codes, item_ids, [4, 4]).save_pretrained(root / "quantizer")
    (root / "recommender.yaml").write_text(f"""
model:
  tiny_hidden_size: 32
  tiny_num_layers: 1
  tiny_num_heads: 2
  tiny_intermediate_size: 64
data:
  data_dir: {root / 'data'}
  sid_dir: {root / 'quantizer'}
training:
  learning_rate: 1.0e-2
  lr_scheduler_type: constant
  warmup_ratio: 0.0
  per_device_train_batch_size: 8
  logging_steps: 1
  eval_num_beams: 5
  eval_ks: "1,5"
  seed: 0
""")
    return root


def launch(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file multi_cpu.yaml -m hf_simcit.cli train` (2 processes), on a free port."""
    return accelerate_launch(run_dir, "train", str(run_dir / "recommender.yaml"), *overrides)


def accelerate_launch(cwd: Path, *cli_args: str) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file multi_cpu.yaml -m hf_simcit.cli CLI_ARGS` (2 processes), on a free port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(MULTI_CPU),
               "--main_process_port", str(port), "-m", "hf_simcit.cli", *cli_args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def train_log(output_dir: Path) -> dict:
    return json.loads((output_dir / "train_log.json").read_text())


def one_process_validation(run_dir: Path, model_dir: Path) -> dict:
    return evaluate_saved_recommender(str(model_dir), str(run_dir / "data"), split="validation", ks=KS,
                                      num_beams=5, device="cpu")


def metrics_only(metrics: dict) -> dict:
    """The metrics of a saved evaluation, without what it records about the protocol."""
    return {k: v for k, v in metrics.items() if k not in ("split", "exclude_history", "hybrid_weight")}


def test_two_processes_train_resume_and_evaluate_like_one(run_dir, capsys):
    """2 x 8 examples per step, interrupted at step 2 and resumed, equals 1 x 16 examples for 4 steps."""
    # prefix objective: 32 rows split evenly into global batches of 16 (the 11 users' full-sequence windows
    # would leave a short last batch, which accelerate's even_batches pads with repeated rows); epoch-shuffled
    # batches: the trajectory whose step 4 is the best validation step, which the assertions below rely on
    common = ["--max_train_examples", "32", "--objective", "prefix", "--group_by_length", "false",
              "--checkpoint_dir", str(run_dir / "ddp_checkpoints")]
    first = launch(run_dir, *common, "--max_steps", "2", "--save_steps", "2",
                   "--output_dir", str(run_dir / "ddp_first"))
    assert (run_dir / "ddp_checkpoints" / "checkpoint-2").is_dir()
    assert train_log(run_dir / "ddp_first")["final_step"] == 2
    assert first.stdout.count('"final_step"') == 1          # the summary comes from the main process only

    resumed = launch(run_dir, *common, "--max_steps", "4", "--save_steps", "2",
                     "--output_dir", str(run_dir / "ddp"))
    assert resumed.stdout.count("resumed from") == 1 and "checkpoint-2 at step 2" in resumed.stdout
    assert (run_dir / "ddp_checkpoints" / "checkpoint-4").is_dir()
    ddp = train_log(run_dir / "ddp")

    # the reference: one process, the same global batch, uninterrupted
    model_args, data_args, training_args = parse_recommender_recipe(
        str(run_dir / "recommender.yaml"),
        ["--max_train_examples", "32", "--objective", "prefix", "--group_by_length", "false", "--max_steps", "4",
         "--per_device_train_batch_size", "16", "--cpu", "true",
         "--output_dir", str(run_dir / "single"), "--resume_from_checkpoint", "no"])
    train_recommender(model_args, data_args, training_args)
    single = train_log(run_dir / "single")

    # same steps over the same examples: 32 rows = 2 steps per epoch; step losses (averaged over both
    # processes) and the final weights agree to float rounding
    assert ddp["final_step"] == single["final_step"] == 4
    losses = {name: [e["loss"] for e in log["log"] if "loss" in e] for name, log in (("ddp", ddp), ("1", single))}
    assert len(losses["ddp"]) == len(losses["1"]) == 4
    np.testing.assert_allclose(losses["ddp"], losses["1"], rtol=1e-5)
    ddp_weights = load_file(str(run_dir / "ddp" / "model.safetensors"))
    single_weights = load_file(str(run_dir / "single" / "model.safetensors"))
    assert ddp_weights.keys() == single_weights.keys()
    max_diff = max((ddp_weights[k] - single_weights[k]).abs().max().item() for k in ddp_weights)
    assert max_diff < 1e-4, max_diff
    start = load_file(str(run_dir / "ddp_first" / "model.safetensors"))
    assert max((start[k] - ddp_weights[k]).abs().max().item() for k in start) > 1e-3   # steps 3-4 did train

    # validation sharded over 2 processes (6 + 5 rows) == 1-process evaluation of the saved model
    assert ddp["best_step"] == 4 and ddp["best_metrics"]["num_examples"] == NUM_USERS
    assert ddp["best_metrics"] == metrics_only(one_process_validation(run_dir, run_dir / "ddp"))

    # the saved model loads and recommends distinct, real items
    capsys.readouterr()
    assert main(["recommend", "--model", str(run_dir / "ddp"), "--history", "m0", "m1", "m2", "-k", "3",
                 "--device", "cpu"]) == 0
    ids = [r["item_id"] for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["recommendations"]]
    assert len(set(ids)) == 3 and set(ids) <= {f"m{i}" for i in range(NUM_ITEMS)}


def test_two_process_validation_on_the_last_training_batch_sees_every_row(run_dir):
    """33 training rows, global batch 16: the epoch's last batch holds 1 row. Validation at that step used to
    return 1 of the 11 rows (gather_for_metrics cut to the training remainder)."""
    launch(run_dir, "--max_steps", "3", "--output_dir", str(run_dir / "remainder"),
           "--checkpoint_dir", str(run_dir / "remainder_checkpoints"))
    log = train_log(run_dir / "remainder")
    assert log["final_step"] == 3 and log["best_metrics"]["num_examples"] == NUM_USERS
    assert log["best_metrics"] == metrics_only(one_process_validation(run_dir, run_dir / "remainder"))


def test_two_processes_train_the_quantizer_like_one(tmp_path):
    """The quantizer under 2 processes x 8 items per step (negatives gathered) equals 1 process x 16: one
    group, the same steps, training and validation losses, weights, best step and codes.

    Why a Gumbel temperature of 1e6: the training forward adds Gumbel noise that every process draws for its
    own rows, so at the recipe's temperature a 2-process run is another sample of the same procedure, not the
    same numbers; at 1e6 the soft assignment is uniform to ~1e-5 and the noise no longer matters. Only the text
    modality: with partly absent modalities each process averages InfoNCE over its own valid anchors, which
    is not the 1-process mean when the processes hold different numbers of them.
    """
    from test_quantizer import _item_table, tiny_features
    from transformers import AutoModel

    from hf_simcit.training.quantizer import TRAINING_LOG_NAME, parse_quantizer_recipe, train_quantizer

    feats = tiny_features(64)
    _item_table(feats).save_to_disk(str(tmp_path / "features"))
    recipe = tmp_path / "quantizer.yaml"
    recipe.write_text(
        f"features_path: {tmp_path / 'features'}\nmodalities: [text]\nlatent_dim: 16\nencoder_hidden_sizes: [32]\n"
        "num_levels: 2\ncodebook_size: 8\nmax_steps: 6\nper_device_batch_size: 8\neval_steps: 3\n"
        "warmup_steps: 1\nlearning_rate: 1.0e-2\nvalidation_share: 0.2\ngather_negatives: true\n"
        "gumbel_temperature: 1.0e6\ncodebook_refit: periodic\ncodebook_refresh_steps: 4\nshow_progress: false\nseed: 1\n")
    run = accelerate_launch(tmp_path, "train-quantizer", str(recipe), "--output_dir", str(tmp_path / "ddp"))
    assert run.stdout.count("step 6 ") == 1                  # evaluations are printed by the main process only
    single = train_quantizer(parse_quantizer_recipe(
        str(recipe), ["--per_device_batch_size", "16", "--output_dir", str(tmp_path / "single")]))

    ddp = json.loads((tmp_path / "ddp" / TRAINING_LOG_NAME).read_text())
    one = json.loads((tmp_path / "single" / TRAINING_LOG_NAME).read_text())
    # 51 training items, global batch 16: 3 steps an epoch, 6 steps, evaluated at 0, 3 and 6, on both
    assert (ddp["num_processes"], ddp["global_batch_size"]) == (2, 16)
    assert (one["num_processes"], one["global_batch_size"]) == (1, 16)
    assert [h["step"] for h in ddp["history"]] == [h["step"] for h in one["history"]] == [0, 3, 6]
    for key in ("train_loss", "validation_loss", "collision_rate"):      # train loss: mean over both processes
        np.testing.assert_allclose([h.get(key, 0.0) for h in ddp["history"]],
                                   [h.get(key, 0.0) for h in one["history"]], rtol=1e-4, err_msg=key)
    assert ddp["best_step"] == one["best_step"]
    ddp_weights = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    one_weights = load_file(str(tmp_path / "single" / "model.safetensors"))
    assert max((ddp_weights[k] - one_weights[k]).abs().max().item() for k in one_weights) < 1e-4

    # the saved quantizer loads with the Auto class and gives the 1-process run's codes
    model = AutoModel.from_pretrained(tmp_path / "ddp")
    text = {"text": feats.features["text"]}
    assert torch.equal(model.encode(text), single.model.encode(text))


def test_two_quantizer_processes_draw_their_own_noise_and_resume_it(tmp_path):
    """Each process of a 2-process quantizer run draws its own Gumbel noise (its own RNG streams, stored per
    process in every checkpoint), and 2 fresh processes resumed from checkpoint-3 end bitwise where the
    uninterrupted 2-process run ends. At this Gumbel temperature the noise matters: a resume that gave
    process 1 process 0's stream (what checkpoints held before) ends elsewhere."""
    from test_quantizer import _item_table, tiny_features

    from hf_simcit.training.quantizer import TRAINING_LOG_NAME

    _item_table(tiny_features(64)).save_to_disk(str(tmp_path / "features"))
    recipe = tmp_path / "quantizer.yaml"
    recipe.write_text(
        f"features_path: {tmp_path / 'features'}\nmodalities: [text]\nlatent_dim: 16\nencoder_hidden_sizes: [32]\n"
        "num_levels: 2\ncodebook_size: 8\nmax_steps: 6\nper_device_batch_size: 8\neval_steps: 3\n"
        "warmup_steps: 1\nlearning_rate: 1.0e-2\nvalidation_share: 0.2\ngumbel_temperature: 0.5\n"
        "codebook_refresh_steps: 0\nshow_progress: false\nseed: 1\n")
    straight = tmp_path / "straight_checkpoints"
    accelerate_launch(tmp_path, "train-quantizer", str(recipe), "--output_dir", str(tmp_path / "straight"),
                      "--checkpoint_dir", str(straight))
    rng = {name: load_file(str(straight / "checkpoint-3" / f"{name}.safetensors")) for name in ("rng", "rng_1")}
    assert not (straight / "checkpoint-3" / "rng_2.json").exists()
    for key in rng["rng"]:                  # torch and numpy states (tensors), python random's (JSON) differ
        assert not torch.equal(rng["rng"][key], rng["rng_1"][key]), key
    assert (straight / "checkpoint-3" / "rng.json").read_text() != (straight / "checkpoint-3" / "rng_1.json").read_text()

    # interrupted after checkpoint-3: 2 fresh processes continue from it
    resumed = tmp_path / "resumed_checkpoints"
    resumed.mkdir()
    shutil.copytree(straight / "checkpoint-3", resumed / "checkpoint-3")
    run = accelerate_launch(tmp_path, "train-quantizer", str(recipe), "--output_dir", str(tmp_path / "resumed"),
                            "--checkpoint_dir", str(resumed))
    assert run.stdout.count("resumed from") == 1
    for name in ("model", "optimizer", "rng", "rng_1"):
        a = load_file(str(straight / "checkpoint-6" / f"{name}.safetensors"))
        b = load_file(str(resumed / "checkpoint-6" / f"{name}.safetensors"))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    logs = [json.loads((tmp_path / d / TRAINING_LOG_NAME).read_text())["history"] for d in ("straight", "resumed")]
    drop = ("train_time_s",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in logs[0]] == \
        [{k: v for k, v in h.items() if k not in drop} for h in logs[1]]


# ------------------------------------------------------------------------------------ without processes
@pytest.mark.parametrize("n", [0, 1, 2, 5, 11, 12])
@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_equal_sized_and_cover_every_row_once(n, world):
    shards = [_shard_rows(n, SimpleNamespace(num_processes=world, process_index=r)) for r in range(world)]
    assert len({len(rows) for rows, _ in shards}) == 1                       # same number of rows everywhere
    tags = sorted(t for _, row_tags in shards for t in row_tags if t >= 0)
    assert tags == list(range(n))
    for rows, row_tags in shards:
        assert all(0 <= r < n for r in rows) and all(t in (r, -1) for r, t in zip(rows, row_tags))


def test_set_ups_that_would_silently_differ_are_refused(monkeypatch):
    alone = SimpleNamespace(num_processes=1, distributed_type="DistributedType.NO")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SimCITInputError, match="2 processes were launched but accelerate joined 1"):
        check_distributed_setup(alone)
    ddp = SimpleNamespace(num_processes=2, distributed_type="DistributedType.MULTI_CPU")
    check_distributed_setup(ddp)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(SimCITInputError, match="asks for FSDP"):
        check_distributed_setup(ddp)
    check_distributed_setup(SimpleNamespace(num_processes=2, distributed_type="DistributedType.FSDP"))


def test_the_quantizer_refuses_sharded_training(monkeypatch, tmp_path):
    from test_quantizer import tiny_args, tiny_features

    import hf_simcit.training.distributed as distributed
    from hf_simcit.training.quantizer import train_quantizer

    fsdp = SimpleNamespace(num_processes=2, process_index=0, distributed_type="DistributedType.FSDP")
    monkeypatch.setattr(distributed, "build_accelerator", lambda **kwargs: fsdp)
    with pytest.raises(SimCITInputError, match="full copy on every process"):
        train_quantizer(tiny_args(tmp_path), tiny_features(64))


@pytest.mark.parametrize("kind", ["DistributedType.FSDP", "DistributedType.DEEPSPEED"])
def test_the_recommender_refuses_to_resume_sharded_training_before_it_starts(monkeypatch, tmp_path, kind):
    """A checkpoint holds the main process's optimizer shard only: resuming under FSDP/DeepSpeed is refused at
    start-up (before any data is read: without the check this run would fail on the missing data_dir)."""
    import hf_simcit.training.distributed as distributed
    from hf_simcit.training.recommender import (
        RecommenderDataArguments,
        RecommenderModelArguments,
        RecommenderTrainingArguments,
    )

    sharded = SimpleNamespace(num_processes=2, process_index=0, distributed_type=kind)
    monkeypatch.setattr(distributed, "build_accelerator", lambda **kwargs: sharded)
    (tmp_path / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    args = RecommenderTrainingArguments(output_dir=str(tmp_path / "out"), checkpoint_dir=str(tmp_path / "checkpoints"))
    with pytest.raises(SimCITInputError, match=f"cannot resume from .*checkpoint-2 under {kind}: .*resume_from_"):
        train_recommender(RecommenderModelArguments(), RecommenderDataArguments(), args)


def test_which_resumes_are_refused():
    from hf_simcit.training.distributed import check_resume_supported

    fsdp = SimpleNamespace(distributed_type="DistributedType.FSDP")
    ddp = SimpleNamespace(distributed_type="DistributedType.MULTI_GPU")
    check_resume_supported(fsdp, None)              # a fresh start (e.g. 'auto' and no checkpoint yet) runs
    with pytest.raises(SimCITInputError, match="under DistributedType.FSDP"):
        check_resume_supported(fsdp, "ckpt/checkpoint-2")
    check_resume_supported(ddp, "absent/checkpoint-2")           # DDP resumes (no trainer_state: older format)


def test_a_checkpoint_written_under_fsdp_is_refused_under_ddp(tmp_path):
    from hf_simcit.training.distributed import check_resume_supported

    ddp = SimpleNamespace(distributed_type="DistributedType.MULTI_GPU")
    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 2, "distributed_type": "DistributedType.NO"}))
    check_resume_supported(ddp, checkpoint)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 2, "distributed_type": "DistributedType.FSDP"}))
    with pytest.raises(SimCITInputError, match="written under DistributedType.FSDP"):
        check_resume_supported(ddp, checkpoint)


def test_checkpoints_keep_every_process_rng_state_and_restore_each_its_own(tmp_path):
    """rng = process 0's state (the one-process format, unchanged), rng_<i> = process i's; a process the
    checkpoint has no state for keeps its own; process 0's state is required."""
    from hf_simcit.utils.serialization import (
        has_rng_state,
        load_training_state,
        rng_state,
        save_training_state,
    )

    model = torch.nn.Linear(2, 2)
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        np.random.seed(seed)
        states.append(rng_state())
    save_training_state(tmp_path / "two", model=model, rng_states=states)
    save_training_state(tmp_path / "one", model=model)
    assert sorted(p.name for p in (tmp_path / "one").iterdir() if p.name.startswith("rng")) == [
        "rng.json", "rng.safetensors"]
    assert [has_rng_state(tmp_path / "two", i) for i in range(3)] == [True, True, False]

    def draws():
        return torch.rand(3), np.random.rand(3)

    expected = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        np.random.seed(seed)
        expected.append(draws())
    for index in (0, 1):
        torch.manual_seed(99)
        load_training_state(tmp_path / "two", model=model, process_index=index)
        got = draws()
        assert torch.equal(got[0], expected[index][0]) and np.array_equal(got[1], expected[index][1])
    torch.manual_seed(99)
    here = torch.get_rng_state()
    load_training_state(tmp_path / "one", model=model, process_index=1)       # written by 1 process
    assert torch.equal(torch.get_rng_state(), here)
    (tmp_path / "one" / "rng.json").unlink()
    with pytest.raises(FileNotFoundError):
        load_training_state(tmp_path / "one", model=model)


def test_process_streams_differ_per_process_and_leave_one_process_alone():
    from hf_simcit.training.distributed import process_seed, seed_process_streams

    torch.manual_seed(5)
    before = torch.get_rng_state()
    seed_process_streams(SimpleNamespace(num_processes=1, process_index=0), 5)
    assert torch.equal(torch.get_rng_state(), before)
    draws = []
    for rank in (0, 1):
        seed_process_streams(SimpleNamespace(num_processes=2, process_index=rank), 5)
        draws.append(torch.empty(4).exponential_())
    assert not torch.equal(draws[0], draws[1])
    assert len({process_seed(s, r) for s in (5, 6) for r in (0, 1)}) == 4
    assert process_seed(5, 0) != 5 and process_seed(5, 1) != process_seed(6, 0)


def _deepspeed(clipping) -> SimpleNamespace:
    config = {} if clipping is None else {"gradient_clipping": clipping}
    return SimpleNamespace(num_processes=2, process_index=0, distributed_type="DistributedType.DEEPSPEED",
                           deepspeed_plugin=SimpleNamespace(deepspeed_config=config))


def test_the_deepspeed_config_clips_at_an_explicit_norm(monkeypatch):
    """deepspeed_zero2.yaml through `accelerate launch` (its environment) into accelerate's DeepSpeedPlugin:
    gradient_clipping is the number the config states, not "auto" (which accelerate fills with 1.0 whatever
    the recipe's max_grad_norm). Neither deepspeed nor a GPU is needed for this part."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    from hf_simcit.training.distributed import match_deepspeed_gradient_clipping

    config_file = ROOT / "recipes" / "accelerate_configs" / "deepspeed_zero2.yaml"
    launch_args, defaults, _ = _validate_launch_command(
        launch_command_parser().parse_args(["--config_file", str(config_file), "train.py"]))
    launch_args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    _, env = prepare_deepspeed_cmd_env(launch_args)
    monkeypatch.setenv("ACCELERATE_GRADIENT_CLIPPING", env["ACCELERATE_GRADIENT_CLIPPING"])
    plugin = DeepSpeedPlugin()
    assert plugin.deepspeed_config["gradient_clipping"] == 1.0
    accelerator = SimpleNamespace(distributed_type="DistributedType.DEEPSPEED", deepspeed_plugin=plugin)
    match_deepspeed_gradient_clipping(accelerator, 1.0)             # the recommender's default max_grad_norm
    with pytest.raises(SimCITInputError, match="gradient_clipping 1 .* max_grad_norm 0.05"):
        match_deepspeed_gradient_clipping(accelerator, 0.05)


def test_deepspeed_clipping_follows_the_recipe_or_is_refused():
    from hf_simcit.training.distributed import match_deepspeed_gradient_clipping

    auto = _deepspeed("auto")                       # "auto" takes the recipe's value (before prepare fills 1.0)
    match_deepspeed_gradient_clipping(auto, 0.05)
    assert auto.deepspeed_plugin.deepspeed_config["gradient_clipping"] == 0.05
    auto = _deepspeed("auto")
    match_deepspeed_gradient_clipping(auto, 0)                       # no clipping: DeepSpeed's 0
    assert auto.deepspeed_plugin.deepspeed_config["gradient_clipping"] == 0.0
    match_deepspeed_gradient_clipping(_deepspeed(None), 0)           # absent from a DeepSpeed JSON: no clipping
    with pytest.raises(SimCITInputError, match="gradient_clipping 0 .* max_grad_norm 1"):
        match_deepspeed_gradient_clipping(_deepspeed(None), 1.0)
    match_deepspeed_gradient_clipping(SimpleNamespace(distributed_type="DistributedType.MULTI_GPU"), 0.05)


def test_the_recommender_refuses_a_deepspeed_clipping_mismatch_before_it_starts(monkeypatch, tmp_path):
    import hf_simcit.training.distributed as distributed
    from hf_simcit.training.recommender import (
        RecommenderDataArguments,
        RecommenderModelArguments,
        RecommenderTrainingArguments,
    )

    monkeypatch.setattr(distributed, "build_accelerator", lambda **kwargs: _deepspeed(1.0))
    args = RecommenderTrainingArguments(output_dir=str(tmp_path / "out"), max_grad_norm=0.05)
    with pytest.raises(SimCITInputError, match="not at the recipe's max_grad_norm 0.05"):
        train_recommender(RecommenderModelArguments(), RecommenderDataArguments(), args)


@pytest.mark.parametrize(
    ("kind", "zero_stage", "collective"),
    [("DistributedType.NO", None, False), ("DistributedType.MULTI_GPU", None, False),
     ("DistributedType.FSDP", None, True), ("DistributedType.DEEPSPEED", 2, False),
     ("DistributedType.DEEPSPEED", 3, True)],
)
def test_full_state_dict_is_gathered_by_every_process_only_where_it_is_a_collective(kind, zero_stage, collective):
    from hf_simcit.training.distributed import full_state_dict

    for rank in (0, 1):
        calls = []
        stand_in = SimpleNamespace(
            distributed_type=kind, is_main_process=rank == 0,
            state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=zero_stage) if zero_stage else None),
            get_state_dict=lambda model, calls=calls: calls.append(model) or {"w": 1})
        weights = full_state_dict(stand_in, "model")
        assert weights == ({"w": 1} if rank == 0 else None)
        # the main process always gathers; another one only where get_state_dict is a collective (else under
        # ZeRO-2 it would clone the whole model on every device)
        assert len(calls) == int(rank == 0 or collective)
