"""``hf-simcit run recipes/<data>/pipeline.yaml``: the whole job, resumable, into one run folder."""

from __future__ import annotations

import argparse


def _value(text: str):
    """``--set`` values are YAML scalars/lists: 50 -> int, 1e-3 -> float, [a, b] -> list, null -> None."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:        # YAML 1.1 reads 1e-3 (no dot) as a string
            return float(value)
        except ValueError:
            return value
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the whole pipeline (prepare -> ... -> report) from a pipeline.yaml",
        description="prepare -> features -> LGMD collaborative embeddings -> SimCIT quantizer -> SIDs + tokenizer "
        "-> LLM -> evaluation (+ SASRec on the same split) -> report.md and plots, into one run folder. Running "
        "it again resumes: finished stages with unchanged settings are skipped, an interrupted training stage "
        "continues from its last checkpoint.",
    )
    parser.add_argument("recipe", help="pipeline YAML (e.g. recipes/ml-100k/pipeline.yaml)")
    parser.add_argument("--run-dir", default=None, help="run folder (default: the recipe's run_dir)")
    parser.add_argument("--data-dir", default=None, help="raw data folder (default: the recipe's data_dir)")
    parser.add_argument("--stages", default=None, help="comma-separated subset of stages to run")
    parser.add_argument("--force", action="store_true", help="re-run stages that finished earlier")
    parser.add_argument("--push-to-hub", default=None, metavar="ORG/NAME", help="push the artifacts at the end")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="override a pipeline key or one stage key, e.g. --set quantizer.max_steps=50 "
                        "--set recommender.learning_rate=1e-3 --set eval_max_examples=500 (repeatable)")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from ..errors import SimCITInputError
    from ..pipeline import load_pipeline, run_pipeline

    overrides = {}
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SimCITInputError(f"--set {item!r}: expected KEY=VALUE, e.g. quantizer.max_steps=50")
        overrides[key.strip()] = _value(value)
    for key in ("run_dir", "data_dir", "push_to_hub"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.stages:
        overrides["stages"] = [s.strip() for s in args.stages.split(",") if s.strip()]
    if args.force:
        overrides["force"] = True
    pipeline = load_pipeline(args.recipe, overrides)
    result = run_pipeline(pipeline)
    print(f"run folder: {result['run_dir']}")
    return 0
