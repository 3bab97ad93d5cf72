"""Benchmark: a training step with torch's CPU dropout against ``hf_simcit.utils.dropout`` (a quarter of the draws).

Why: profiled on 2 cores, torch's ``bernoulli_`` was 19% of a generator step and 37% of a SASRec step. Each row
builds the model twice from one seed, once with ``torch.nn.functional.dropout`` / ``torch.nn.Dropout`` and once
with the package's dropout, and times the trainers' own AdamW steps (SASRec's ``training_step``; the generator's
``LabelledTokenLoss`` on ``tiny_llama``) on the same random batch of the data set's shapes,
alternating the two variants round by round (the machine is shared: the ratio is the figure, the median of the
rounds). Shapes: SASRec batches of 128 user windows of 20 items; the generator (a config-built Llama 2 x 128, FFN
256, the recipes' model; vocabularies of 140 / 780 tokens) batches of 64 (ML-100K) / 32 (Beauty) windows of 21
items x 4 SID tokens. Synthetic batches of those shapes: the figure is the step's cost, not a model's quality.

    .venv/bin/python benchmarks/dropout_speed.py            # ~2 minutes on 2 cores

Writes ``benchmarks/results/dropout-speed.json`` (``{"date", "command", "machine", "rows": [{"model", "shape",
"dropout", "torch_ms", "ours_ms", "speedup"}]}``) and appends the table to RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from hf_simcit.recommender.data import IGNORE_INDEX

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reporting  # noqa: E402


@contextlib.contextmanager
def torch_dropout(active: bool) -> Iterator[None]:
    """Inside the block, models built by the package use torch's dropout (``active``) instead of its own."""
    from hf_simcit.baselines import sasrec
    from hf_simcit.utils import dropout as package_dropout

    saved = sasrec.Dropout, package_dropout.dropout
    if active:
        sasrec.Dropout = nn.Dropout
        package_dropout.dropout = lambda x, p, training=True: nn.functional.dropout(x, p, training)
    try:
        yield
    finally:
        sasrec.Dropout, package_dropout.dropout = saved


def sasrec_step(num_items: int, hidden: int, batch: int, length: int, p: float, seed: int) -> Callable[[], None]:
    """``train_sasrec``'s own step (``training_step``: all-position CE) on one random batch."""
    from hf_simcit.baselines.sasrec import SASRec, SASRecConfig, training_step

    torch.manual_seed(seed)
    model = SASRec(SASRecConfig(num_items=num_items, hidden_size=hidden, dropout=p)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(1, num_items + 1, (batch, length))
    y = torch.randint(0, num_items, (batch, length))
    return lambda: training_step(model, optimizer, x, y)


def generator_step(vocab: int, batch: int, tokens: int, p: float, seed: int) -> Callable[[], None]:
    """The recipes' config-built generator (``tiny_llama``) and the trainer's loss (``LabelledTokenLoss``) on
    a full-sequence batch: BOS + items of 4 SID tokens, every item's tokens labelled but the first's."""
    from hf_simcit.recommender.modeling import RecommenderModelArguments, minimal_tokenizer, tiny_llama
    from hf_simcit.recommender.objective import LabelledTokenLoss

    torch.manual_seed(seed)
    tokenizer = minimal_tokenizer()
    model = tiny_llama(RecommenderModelArguments(tiny_dropout=p), vocab, tokenizer).train()
    first_sid = len(tokenizer)
    loss_fn = LabelledTokenLoss(model, list(range(first_sid, vocab)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    input_ids = torch.randint(first_sid, vocab, (batch, tokens))
    input_ids[:, 0] = tokenizer.bos_token_id
    labels = input_ids.clone()
    labels[:, :5] = IGNORE_INDEX                     # BOS and the first item's 4 tokens: no target
    data = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}

    def step() -> None:
        loss = loss_fn(model, data)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def seconds_per_step(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def compare(build: Callable[[], Callable[[], None]], rounds: int, steps: int) -> tuple[float, float]:
    """Median ms per step with torch's dropout and with the package's, rounds alternating."""
    steps_by_variant = {}
    for use_torch in (True, False):
        with torch_dropout(use_torch):
            steps_by_variant[use_torch] = build()   # modules and hooks bind their dropout when built
        for _ in range(2):
            steps_by_variant[use_torch]()           # warm-up
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for use_torch in (True, False):
            times[use_torch].append(seconds_per_step(steps_by_variant[use_torch], steps))
    return 1000 * statistics.median(times[True]), 1000 * statistics.median(times[False])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per round and variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args(argv)
    command = reporting.command_line("python benchmarks/dropout_speed.py", argv)
    load_start = os.getloadavg()[0]
    cases = [
        ("SASRec 2 x 64", "ML-100K: 1,349 items, 128 x 20", 0.5,
         lambda: sasrec_step(1349, 64, 128, 20, 0.5, args.seed)),
        ("SASRec 2 x 128", "Beauty: 12,101 items, 128 x 20", 0.5,
         lambda: sasrec_step(12101, 128, 128, 20, 0.5, args.seed)),
        ("generator (Llama 2 x 128)", "ML-100K: 64 x 85 tokens", 0.1,
         lambda: generator_step(140, 64, 85, 0.1, args.seed)),
        ("generator (Llama 2 x 128)", "Beauty: 32 x 85 tokens", 0.2,
         lambda: generator_step(780, 32, 85, 0.2, args.seed)),
    ]
    rows = []
    for model, shape, p, build in cases:
        torch_ms, ours_ms = compare(build, args.rounds, args.steps)
        rows.append({"model": model, "shape": shape, "dropout": p, "torch_ms": round(torch_ms, 2),
                     "ours_ms": round(ours_ms, 2), "speedup": round(torch_ms / ours_ms, 3)})
        print(rows[-1], flush=True)
    machine = (f"{os.cpu_count()} CPU cores ({platform.machine()}), torch threads {torch.get_num_threads()}, "
               f"load {load_start:.1f} -> {os.getloadavg()[0]:.1f}")
    lines = ["| model | batch (shape) | dropout | torch's dropout, ms / step | ours, ms / step | speed-up |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['shape']} | {r['dropout']} | {r['torch_ms']:.1f} | {r['ours_ms']:.1f} | "
              f"{r['speedup']:.2f}x |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.no_results:
        return 0
    path = reporting.write_json("dropout-speed", {"date": reporting.utc_iso(), "command": command,
                                                  "machine": machine, "rows": rows})
    reporting.append_results(
        f"\n## Training-step time: torch's CPU dropout against the package's ({reporting.utc_minute()})\n\n"
        f"Machine: {machine} (load average at start -> end). Command: `{command}`\n\nMedian of {args.rounds} "
        f"alternating rounds of {args.steps} AdamW steps per variant, same seed, same random batch of the data "
        f"set's shape.\n\n{table}\n\nJSON: `{path.relative_to(reporting.ROOT)}`.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
