"""``hf-simcit train-quantizer RECIPE.yaml [--key value ...]``: train the SimCIT quantizer."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-quantizer",
        help="train the SimCIT contrastive quantizer on item features",
        description="Train SimCITQuantizer (accelerate; AdamW, warm-up + cosine, validation loss, early "
        "stopping, the best model in output_dir). Recipe keys are QuantizerTrainingArguments fields; any of them "
        "can be overridden after the recipe, e.g. --max_steps 100 --output_dir runs/q. Resuming, as in "
        "`hf-simcit train`: --resume_from_checkpoint auto (the latest checkpoint-<step>, the default), a "
        "checkpoint folder, or none.",
    )
    parser.add_argument("recipe", help="quantizer recipe YAML (e.g. recipes/beauty/quantizer.yaml)")
    parser.add_argument("overrides", nargs=argparse.REMAINDER,
                        help="--field value pairs overriding the recipe (QuantizerTrainingArguments fields)")
    parser.set_defaults(func=run_train_quantizer)


def run_train_quantizer(args: argparse.Namespace) -> int:
    from ..training.quantizer import parse_quantizer_recipe, train_quantizer

    recipe = parse_quantizer_recipe(args.recipe, getattr(args, "overrides", None))
    result = train_quantizer(recipe)
    last = result.history[-1] if result.history else {}
    print(f"best step {result.best_step} ({recipe.metric_for_best_model} {result.best_metric:.4f}); "
          f"saved to {result.output_dir}; last eval: collision rate {last.get('collision_rate', float('nan')):.4f}")
    return 0
