"""``hf-simcit push RUN_DIR --repo-id ORG/NAME``: share a run's quantizer+tokenizer, adapter and data set."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="push a run's quantizer+tokenizer, recommender adapter, data set and demo Space to the Hugging Face Hub",
        description="Push RUN_DIR/quantizer (model repo ORG/NAME-quantizer), RUN_DIR/recommender (model repo "
        "ORG/NAME-recommender), the prepared data set with its item features (data set repo ORG/NAME-data) and a "
        "Gradio Space running the demo app on them (Space ORG/NAME-demo), "
        "each as a single commit with a rendered card. A push that fails leaves that repo at its previous commit. "
        "Only safetensors weights are uploaded; pickle files are refused. Set HF_TOKEN (and HF_ENDPOINT for a "
        "private Hub) in the environment.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by `hf-simcit run`")
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME",
                        help="base name; repos are ORG/NAME-quantizer, ORG/NAME-recommender, ORG/NAME-data, "
                        "ORG/NAME-demo (Space)")
    parser.add_argument("--what", default="quantizer,adapter,dataset,space",
                        help="comma-separated subset of quantizer,adapter,dataset,space (default: all four)")
    parser.add_argument("--private", action="store_true", help="create the repos as private")
    parser.add_argument("--base-model", default=None, metavar="ORG/NAME",
                        help="Hub id of the adapter's base model, written into adapter_config.json (default: the "
                        "one recorded at training; a local checkpoint, or the bundled de-quantised SmolLM2, is "
                        "pushed first to ORG/NAME-base and named instead)")
    parser.add_argument("--quantizer-repo-id", default=None, help="override the quantizer repo name")
    parser.add_argument("--adapter-repo-id", default=None, help="override the recommender repo name")
    parser.add_argument("--dataset-repo-id", default=None, help="override the data set repo name")
    parser.add_argument("--space-repo-id", default=None, help="override the Space repo name")
    parser.add_argument("--license", default=None, help="license tag for the cards (e.g. apache-2.0)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the run folder and render the cards, list what would be pushed, send nothing")
    parser.set_defaults(func=run_push)


def run_push(args: argparse.Namespace) -> int:
    from ..hub import HubPushError, push_run

    what = [w.strip() for w in str(args.what).split(",") if w.strip()]
    overrides = {k: v for k, v in (("quantizer", args.quantizer_repo_id), ("adapter", args.adapter_repo_id),
                                   ("dataset", args.dataset_repo_id), ("space", args.space_repo_id)) if v}
    try:
        results = push_run(args.run_dir, args.repo_id, what=what, private=True if args.private else None,
                           repo_ids=overrides, base_model=args.base_model, license=args.license,
                           dry_run=args.dry_run)
    except HubPushError as err:
        print(f"hf-simcit push: error: {err}", file=sys.stderr)
        return 1
    for result in results.values():
        if args.dry_run:
            print(f"{result.what:<10} {result.repo_type} repo {result.repo_id}: would upload "
                  f"{', '.join(result.uploaded)}")
            continue
        print(f"{result.what:<10} {result.repo_type} repo {result.repo_id}  commit {result.commit_oid[:12]}  "
              f"({len(result.uploaded)} files, {len(result.deleted)} deleted)  {result.commit_url}")
    return 0
