"""``hf-simcit train RECIPE.yaml``: fine-tune the generative recommender (works under ``accelerate launch``)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune the LLM recommender on SID sequences (accelerate; LoRA or full)",
        description="Train the generative recommender from a recipe (sections model/data/training, read into "
        "RecommenderModelArguments / RecommenderDataArguments / RecommenderTrainingArguments). Extra "
        "`--key value` pairs override recipe fields, e.g. `--max_steps 100 --output_dir runs/x`. Resuming, as "
        "in `hf-simcit train-quantizer`: --resume_from_checkpoint auto (the latest checkpoint-<step>, the "
        "default), a checkpoint folder, or none. "
        "Run distributed with `accelerate launch --config_file recipes/accelerate_configs/X.yaml -m "
        "hf_simcit.cli train RECIPE.yaml`.",
    )
    parser.add_argument("recipe", help="recipe YAML, e.g. recipes/ml-100k/recommender.yaml")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="--key value pairs overriding the recipe")
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    import json
    import os

    from ..training.recommender import parse_recommender_recipe, train_recommender

    model_args, data_args, training_args = parse_recommender_recipe(args.recipe, args.overrides)
    result = train_recommender(model_args, data_args, training_args)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"output_dir": result["output_dir"], "best_step": result["best_step"],
                          "final_step": result["final_step"], "validation": result["best_metrics"]}, indent=2))
    return 0
