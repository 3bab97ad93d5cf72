"""``hf-simcit lgmd [RECIPE.yaml] [--data DIR --output DIR --rank 32 ...]``.

A recipe (``recipes/<data>/lgmd.yaml``, keys of :class:`hf_simcit.lgmd.stage.LGMDArguments`) gives the
defaults; command-line options override single keys. Writes the fitted transform, the item table with a
``cf_embedding`` column and ``lgmd.json`` (timings) under the output folder.
"""

from __future__ import annotations

import argparse

OVERRIDES = {
    "data": str,
    "output": str,
    "items": str,
    "matrix": str,
    "window": int,
    "rank": int,
    "rho_u": float,
    "rho_v": float,
    "ridge": float,
    "base": float,
    "prior_weight": float,
    "support": str,
    "max_block_size": int,
    "knn": int,
    "max_iter": int,
    "tol": float,
    "admm_iter": int,
    "dtype": str,
    "device": str,
    "seed": int,
    "embedding_column": str,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lgmd",
        help="LGMD item embeddings (cf_embedding) from the training interactions",
        description="Fit LGMD (learnable graph-regularised matrix decomposition) on a prepared data set's "
        "training user x item matrix (--matrix interactions) or on the SPPMI of the items that follow each other in "
        "the training sequences (--matrix sequential), and add the item factors as a cf_embedding column of the "
        "item table. "
        "Large catalogues use block-restricted sparse graphs (support=blocks/knn).",
    )
    parser.add_argument("recipe", nargs="?", default=None, help="recipe YAML (LGMDArguments keys)")
    for name, kind in OVERRIDES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None)
    parser.add_argument("--attractive", action=argparse.BooleanOptionalAction, default=None,
                        help="learn attractive graphs (precision off-diagonals <= 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_lgmd_command)


def parse_lgmd_arguments(args: argparse.Namespace):
    """Recipe YAML (if any) + command-line overrides -> ``LGMDArguments``."""
    from dataclasses import asdict

    from ..lgmd.stage import LGMDArguments

    if args.recipe is not None:
        from ..utils.recipes import mapping_fields, read_recipe, recipe_dataclasses

        values = read_recipe(args.recipe, mappings=mapping_fields(LGMDArguments))
        (base,) = recipe_dataclasses((LGMDArguments,), values, str(args.recipe))
        values = asdict(base)
    else:
        values = asdict(LGMDArguments())
    for name in (*OVERRIDES, "attractive"):
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if getattr(args, "no_progress", False):
        values["progress"] = False
    return LGMDArguments(**values)


def run_lgmd_command(args: argparse.Namespace) -> int:
    from ..lgmd.stage import format_report, run_lgmd

    arguments = parse_lgmd_arguments(args)
    report = run_lgmd(arguments)
    print(format_report(report))
    print(f"saved to {arguments.output}")
    return 0
