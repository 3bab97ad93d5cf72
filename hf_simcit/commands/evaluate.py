"""``hf-simcit evaluate``: full-ranking Recall/NDCG@K of a trained recommender on validation or test."""

from __future__ import annotations

import argparse

from .recommend import add_hybrid_weight_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="full-ranking Recall/NDCG@K of a trained recommender (trie-constrained beam search)",
        description="Rank the whole catalogue for every history of a split with trie-constrained beam search "
        "and report Recall@K, NDCG@K, MRR and the number of invalid items (always 0).",
    )
    parser.add_argument("--model", required=True, help="recommender folder written by `train` (RUN/recommender)")
    parser.add_argument("--data", required=True, help="prepared data folder (RUN/data)")
    parser.add_argument("--split", default="test", choices=("validation", "test"))
    parser.add_argument("--ks", default="5,10", help="comma-separated cut-offs")
    parser.add_argument("--num-beams", type=int, default=20, help="beams (>= the largest K)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-examples", type=int, default=None, help="evaluate only the first N histories")
    parser.add_argument("--exclude-history", action="store_true",
                        help="never rank a user's own history items (RecBole's protocol; only for data where users "
                             "do not come back to items)")
    parser.add_argument("--output", default=None, help="write the metrics as JSON here (e.g. RUN/eval/metrics.json)")
    add_hybrid_weight_option(parser)
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from ..recommender.evaluation import evaluate_saved_recommender
    from ..utils.recipes import parse_positive_ints

    ks = parse_positive_ints(args.ks, "--ks")
    metrics = evaluate_saved_recommender(args.model, args.data, split=args.split, ks=ks, num_beams=args.num_beams,
                                         batch_size=args.batch_size, max_examples=args.max_examples,
                                         output=args.output, exclude_history=args.exclude_history,
                                         hybrid_weight=args.hybrid_weight)
    print(json.dumps(metrics, indent=2))
    return 0
