"""``hf-simcit recommend``: top-k items for histories of raw item ids, from a trained recommender."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="recommend the next items for histories of raw item ids",
        description="Every returned item is a real catalogue item (trie-constrained beam search). Histories "
        "come from --history (one history, ids oldest first) or --histories FILE (JSON lines with a 'history' "
        "list, or one whitespace/comma-separated history per line). Prints JSON lines.",
    )
    parser.add_argument("--model", required=True, help="recommender folder written by `train`")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--history", nargs="+", help="raw item ids, oldest first")
    group.add_argument("--histories", help="file with one history per line")
    parser.add_argument("-k", "--top-k", type=int, default=10, help="items per history (capped at the catalogue)")
    parser.add_argument("--num-beams", type=int, default=None, help="beams (default k; must be >= k)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.set_defaults(func=run_recommend)


def run_recommend(args: argparse.Namespace) -> int:
    import json

    import torch

    from ..recommender.inference import load_histories, recommend_items
    from ..recommender.modeling import load_recommender

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rec = load_recommender(args.model, device=device)
    histories = [args.history] if args.history else load_histories(args.histories)
    results = recommend_items(rec, histories, k=args.top_k, num_beams=args.num_beams)
    for history, items in zip(histories, results):
        print(json.dumps({"history": history, "recommendations": [
            {"item_id": item, "score": round(score, 6)} for item, score in items]}))
    return 0
