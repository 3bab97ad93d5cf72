"""SASRec on Amazon Beauty with given settings: validation/test metrics, seconds per epoch, best epoch.

Usage (one thread, so a shared 2-core machine keeps a core free)::

    nice -n 5 .venv/bin/python benchmarks/sasrec_tune.py --dropout 0.5 --inner-size 256 --lr 1e-3

Choose settings by the validation NDCG@10 it prints (``validation``, all users); read ``test`` only for the
chosen one. Appends one JSON line per run to ``--log``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--objective", default="all_positions", choices=["all_positions", "last_position"])
    parser.add_argument("--layer-norm", default="pre", choices=["pre", "post"])
    parser.add_argument("--inner-size", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--negatives", type=int, default=0, help="sampled softmax negatives (0: full softmax)")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--patience-window", type=int, default=1,
                        help="validations in the trailing mean that also counts as improvement")
    parser.add_argument("--eval-every", type=int, default=1)
    parser.add_argument("--eval-examples", type=int, default=None, help="validation users per check (None: all)")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--exclude-history", action="store_true",
                        help="also score validation/test with the users' history items excluded (RecBole's protocol)")
    parser.add_argument("--show-test", action="store_true", help="print test metrics (only for the chosen run)")
    parser.add_argument("--log", default="/tmp/sasrec_work/runs.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from benchmarks.recommend import load_data
    from hf_simcit.baselines.sasrec import SASRecConfig, train_sasrec

    rec = load_data(args.dataset)
    config = SASRecConfig(num_items=rec.num_items, max_len=20, hidden_size=args.hidden_size, num_layers=args.layers,
                          num_heads=args.heads, inner_size=args.inner_size, dropout=args.dropout,
                          learning_rate=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
                          negatives=args.negatives,
                          num_epochs=args.epochs, patience=args.patience,
                          patience_window=args.patience_window, eval_every=args.eval_every,
                          eval_max_examples=args.eval_examples, objective=args.objective, layer_norm=args.layer_norm,
                          seed=args.seed)
    start = time.perf_counter()
    model, result = train_sasrec(rec.splits, config, device="cpu", ks=(5, 10), max_steps=args.max_steps, verbose=True)
    epochs = result["epochs"]
    if args.exclude_history:   # the same best model, scored without the history items (RecBole's full ranking)
        from hf_simcit.baselines.sasrec import evaluate_sasrec

        for split in ("validation", "test"):
            result[f"{split}_exclude_history"] = evaluate_sasrec(model, rec.splits[split], (5, 10),
                                                                 exclude_history=True)
    row = {"settings": {k: v for k, v in vars(args).items() if k not in ("log", "show_test")},
           "epochs": epochs, "best_epoch": result["best_epoch"], "steps": result["steps"],
           "s_per_epoch": round(result["train_s"] / max(epochs, 1), 1), "train_s": result["train_s"],
           "wall_s": round(time.perf_counter() - start, 1),
           "validation": {k: round(v, 4) for k, v in result["validation"].items() if isinstance(v, float)},
           **{name: {k: round(v, 4) for k, v in result[name].items() if isinstance(v, float)}
              for name in ("test", "validation_exclude_history", "test_exclude_history") if name in result},
           "history": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()
                        if k in ("epoch", "seconds", "loss", "ndcg@10", "recall@10")} for h in result["history"]]}
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    with open(args.log, "a") as f:
        f.write(json.dumps(row) + "\n")
    shown = {k: v for k, v in row.items() if k != "history" and (not k.startswith("test") or args.show_test)}
    print(json.dumps(shown, indent=1))


if __name__ == "__main__":
    main()
