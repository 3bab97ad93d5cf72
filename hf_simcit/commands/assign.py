"""``hf-simcit assign``: trained quantizer + item features -> unique SIDs -> SimCITTokenizer in the quantizer folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "assign",
        help="give every item a unique semantic ID and save the SimCITTokenizer next to the quantizer",
        description="Encode every item with a trained quantizer, report the raw collision rate, make SIDs unique "
        "(an extra disambiguation level, or a balanced Sinkhorn re-assignment of the last level) and save the "
        "SimCITTokenizer INTO the quantizer folder, so the folder is one Hub model repo.",
    )
    parser.add_argument("--quantizer", required=True, help="trained quantizer folder (e.g. RUN/quantizer)")
    parser.add_argument("--features", required=True, help="item table with embedding columns (e.g. RUN/features)")
    parser.add_argument("--resolve", choices=("level", "sinkhorn", "none"), default="level",
                        help="collision resolution (default: level)")
    parser.add_argument("--disambiguation-order", choices=("index", "random", "distance"), default="index",
                        help="with --resolve level, how items sharing a SID are numbered: item index (default), a "
                        "seeded random order, or nearest to the last-level codeword first")
    parser.add_argument("--disambiguation-seed", type=int, default=0, help="seed of the random order")
    parser.add_argument("--output", default=None, help="write the model + tokenizer here instead (a copy)")
    parser.set_defaults(func=run_assign)


def run_assign(args: argparse.Namespace) -> int:
    from ..quantizers.assignment import save_semantic_ids

    tokenizer, assignment = save_semantic_ids(
        args.quantizer, args.features, args.resolve, args.output,
        disambiguation_order=args.disambiguation_order, disambiguation_seed=args.disambiguation_seed)
    summary = assignment.summary()
    print(f"items               {summary['num_items']:,}")
    print(f"raw collision rate  {summary['raw_collision_rate']:.4f} ({summary['raw_distinct_sids']:,} distinct SIDs, "
          f"at most {summary['raw_max_items_per_sid']} items on one)")
    print("codebook usage      " + " / ".join(f"{u:.1%}" for u in summary["usage"]))
    print("perplexity          " + " / ".join(f"{p:.1f}" for p in summary["perplexity"]))
    print(f"after '{summary['resolve']}'      {summary['unique_share']:.2%} of items have a unique SID "
          f"({summary['num_levels']} levels, sizes {summary['codebook_sizes']})")
    print(f"saved SimCITTokenizer to {args.output or args.quantizer}")
    return 0
