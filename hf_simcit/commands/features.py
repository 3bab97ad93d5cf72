"""``hf-simcit features [RECIPE.yaml] [--data DIR --output DIR --modalities text,cf,geo ...]``.

A recipe (``recipes/<data>/features.yaml``, keys of :class:`hf_simcit.features.FeaturesArguments`) gives the
defaults; command-line options override single keys.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "features",
        help="compute item modality embeddings (text, cf, geo, image) as item-table columns",
        description="Add <modality>_embedding columns to a prepared data set's item table: text (any HF encoder, "
        "default the bundled MiniLM), cf (truncated SVD or LGMD of the training interactions), geo "
        "(latitude/longitude -> sphere + Fourier features), image (any HF vision encoder). Results are cached by "
        "content, so a second run only reads files.",
    )
    parser.add_argument("recipe", nargs="?", default=None, help="recipe YAML (FeaturesArguments keys)")
    parser.add_argument("--data", default=None, help="prepared data folder (from hf-simcit prepare)")
    parser.add_argument(
        "--output", default=None, help="folder to write the item table with embedding columns"
    )
    parser.add_argument("--modalities", default=None, help="comma-separated: text,cf,geo,image")
    parser.add_argument("--text-encoder", default=None, help="HF text encoder name or folder")
    parser.add_argument("--text-batch-size", type=int, default=None)
    parser.add_argument("--text-max-length", type=int, default=None)
    parser.add_argument(
        "--text-precision",
        choices=("fp32", "bf16"),
        default=None,
        help="fp32 (default) or bf16 autocast (worth it on GPUs)",
    )
    parser.add_argument("--cf-method", default=None, help="svd, lgmd or sequential (checked by FeaturesArguments)")
    parser.add_argument("--cf-dim", type=int, default=None)
    parser.add_argument("--cf-window", type=int, default=None, help="cf-method sequential: co-occurrence window")
    parser.add_argument("--cf-lgmd-options", default=None, help="JSON dict of hf_simcit.lgmd.LGMD arguments")
    parser.add_argument("--image-encoder", default=None, help="HF vision encoder name or folder")
    parser.add_argument("--image-column", default=None)
    parser.add_argument("--cache-dir", default=None, help="feature cache folder")
    parser.add_argument("--no-cache", action="store_true", help="recompute every modality")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument(
        "--num-threads",
        type=int,
        default=None,
        help="torch CPU threads (1 is fastest on an oversubscribed machine)",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.set_defaults(func=run_features_command)


OVERRIDES = (
    "data",
    "output",
    "modalities",
    "text_encoder",
    "text_batch_size",
    "text_max_length",
    "text_precision",
    "cf_method",
    "cf_dim",
    "cf_window",
    "cf_lgmd_options",
    "image_encoder",
    "image_column",
    "cache_dir",
    "device",
    "num_threads",
    "seed",
)


def parse_features_arguments(args: argparse.Namespace):
    """Recipe YAML (if any) + command-line overrides -> ``FeaturesArguments``."""
    from dataclasses import asdict

    from ..features import FeaturesArguments

    if args.recipe is not None:
        from ..utils.recipes import mapping_fields, read_recipe, recipe_dataclasses

        values = read_recipe(args.recipe, mappings=mapping_fields(FeaturesArguments))
        (base,) = recipe_dataclasses((FeaturesArguments,), values, str(args.recipe))
        values = asdict(base)
    else:
        values = asdict(FeaturesArguments())
    for name in OVERRIDES:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if getattr(args, "no_cache", False):
        values["use_cache"] = False
    return FeaturesArguments(**values)


def run_features_command(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from ..features import format_report, run_features

    arguments = parse_features_arguments(args)
    run_features(arguments)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # the main process prints the report

    report = json.loads((Path(arguments.output) / "features.json").read_text())["modalities"]
    print(format_report(report))
    print(f"saved to {arguments.output}")
    return 0
