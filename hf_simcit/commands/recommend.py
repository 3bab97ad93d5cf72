"""``hf-simcit recommend``: top-k items for histories of raw item ids, from a trained recommender."""

from __future__ import annotations

import argparse
import sys


def add_hybrid_weight_option(parser: argparse.ArgumentParser) -> None:
    """``--hybrid-weight W`` of ``recommend`` and ``evaluate``."""
    parser.add_argument("--hybrid-weight", type=float, default=None,
                        help="a model trained with a dense item head (model.dense_head_dim): re-order the beam's "
                             "candidates by log P(SID) + W x the head's logit (LIGER's hybrid; 0: the beam's order). "
                             "Default: the folder's own W, chosen on validation at training (training.hybrid_weights; "
                             "0 when none was)")


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
    parser.add_argument("--num-beams", type=int, default=None,
                        help="beams (default: the model's training-time validation beam, at least 20 and k; "
                        "must be >= k). A narrower beam can lose the items a wider one ranks first")
    parser.add_argument("--new-items", nargs="+", default=None,
                        help="raw ids of items added after training (e.g. cold-start items with SIDs from "
                        "add_cold_start_items): with --new-item-slots they get places of their own")
    parser.add_argument("--new-item-slots", type=int, default=0,
                        help="how many of the k places go to the best --new-items (a model rarely generates a SID "
                        "it never saw as a target; TIGER reserves places the same way)")
    add_hybrid_weight_option(parser)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.set_defaults(func=run_recommend)


def run_recommend(args: argparse.Namespace) -> int:
    import json

    import torch

    from ..errors import SimCITInputError
    from ..recommender.inference import (
        check_new_items_request,
        cut_histories,
        load_histories,
        recommend_items,
    )
    from ..recommender.modeling import load_recommender

    if args.top_k < 1 or (args.num_beams is not None and args.num_beams < 1):
        raise SimCITInputError(f"-k and --num-beams must be positive, got {args.top_k} and {args.num_beams}")
    check_new_items_request(args.new_items, args.new_item_slots)   # before the model loads
    histories = [args.history] if args.history else load_histories(args.histories)   # before the model loads
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rec = load_recommender(args.model, device=device)
    histories, cut = cut_histories(rec, histories)
    if cut:
        print(f"hf-simcit recommend: note: {len(cut)} history(ies) longer than the {rec.max_history} items the "
              f"model was trained on (first: history {cut[0]}) cut to their most recent {rec.max_history}",
              file=sys.stderr)
    results = recommend_items(rec, histories, k=args.top_k, num_beams=args.num_beams, new_items=args.new_items,
                              new_item_slots=args.new_item_slots, hybrid_weight=args.hybrid_weight)
    for history, items in zip(histories, results):
        print(json.dumps({"history": history, "recommendations": [
            {"item_id": item, "score": round(score, 6)} for item, score in items]}))
    return 0
