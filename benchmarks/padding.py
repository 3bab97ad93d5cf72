"""Benchmark: what length-grouped batches save, as the padding share of full-sequence training batches.

The full-sequence objective trains one window of at most ``max_history + 1`` items per user (and stride windows
for longer users). A batch is padded to its longest window, so the share of padded token positions is the
compute a shuffled order wastes; ``group_by_length`` (:class:`hf_simcit.recommender.data.LengthGroupedSampler`,
the recommender trainer's default) draws batches of similar lengths instead. Exact counts from the prepared
splits, the real windows (:func:`hf_simcit.data.training_windows`) and both samplers of the trainer; no model is
run, so the figure does not depend on the machine's load. Token length of a window: BOS + one token per SID level
per item (the plain prompt).

    .venv/bin/python benchmarks/padding.py            # ML-100K and Beauty, batches of 16 and 32

Writes ``benchmarks/results/padding.json`` (``{"date", "command", "rows": [{"dataset", "batch_size", "windows",
"mean_tokens", "max_tokens", "padding_shuffled", "padding_grouped"}]}``) and appends the table to RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recommend as rb  # noqa: E402  (benchmarks/recommend.py: the prepared data sets)
import reporting  # noqa: E402


def padding_share(lengths: torch.Tensor, order: list[int], batch_size: int) -> float:
    """Padded positions / all positions when ``order`` is cut into batches padded to their longest example."""
    order_t = torch.as_tensor(order, dtype=torch.long)
    real = padded = 0
    for start in range(0, len(order_t), batch_size):
        part = lengths[order_t[start:start + batch_size]]
        real += int(part.sum())
        padded += int(part.max()) * len(part)
    return 1.0 - real / padded if padded else 0.0


def window_lengths(dataset: str, levels: int, max_history: int = 20) -> torch.Tensor:
    """Token length of every full-sequence training window of ``dataset`` (BOS + ``levels`` tokens per item)."""
    from hf_simcit.data.splits import training_sequences_from_splits, training_windows

    rec = rb.load_data(dataset)
    columns = [rec.splits[name][:] for name in ("train", "validation", "test")]
    windows = training_windows(training_sequences_from_splits(*columns), max_history=max_history)
    return torch.tensor([1 + levels * len(w.items) for w in windows])


def main(argv: list[str] | None = None) -> int:
    from hf_simcit.recommender.data import LengthGroupedSampler
    from hf_simcit.training.checkpointing import EpochShuffleSampler

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="ml-100k,beauty")
    parser.add_argument("--batch-sizes", default="16,32")
    parser.add_argument("--levels", type=int, default=4, help="SID tokens per item (3 levels + disambiguation)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args(argv)
    command = reporting.command_line("python benchmarks/padding.py", argv)
    rows = []
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        lengths = window_lengths(dataset, args.levels)
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            shuffled = padding_share(lengths, list(EpochShuffleSampler(len(lengths), args.seed)), batch_size)
            grouped = padding_share(lengths, list(LengthGroupedSampler(lengths.tolist(), batch_size, args.seed)),
                                    batch_size)
            rows.append({"dataset": dataset, "batch_size": batch_size, "windows": len(lengths),
                         "mean_tokens": round(float(lengths.float().mean()), 2), "max_tokens": int(lengths.max()),
                         "padding_shuffled": round(shuffled, 4), "padding_grouped": round(grouped, 4)})
    lines = ["| data | batch | windows | tokens per window (mean / max) | padding, shuffled | padding, length-grouped "
             "| positions computed, shuffled / grouped |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = (1 - r["padding_grouped"]) / (1 - r["padding_shuffled"])
        lines.append(f"| {r['dataset']} | {r['batch_size']} | {r['windows']} | {r['mean_tokens']:.1f} / "
                     f"{r['max_tokens']} | {r['padding_shuffled']:.1%} | {r['padding_grouped']:.1%} | {ratio:.2f}x |")
    table = "\n".join(lines)
    print(table)
    if args.no_results:
        return 0
    out = {"date": reporting.utc_iso(), "command": command, "rows": rows}
    reporting.write_json("padding", out)
    reporting.append_results(
        f"\n## Length-grouped batches: padding of full-sequence training ({out['date'][:10]})\n\n"
        f"Command: `{command}` (exact counts from the prepared splits and the trainer's two samplers; no "
        f"model runs)\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
