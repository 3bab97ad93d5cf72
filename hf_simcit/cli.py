"""The ``hf-simcit`` command line: one subcommand per pipeline stage, wired from ``hf_simcit.commands``.

User errors (:class:`~hf_simcit.errors.SimCITInputError`, missing files) print one line and exit 2; transformers'
model-loading progress bars are off while a command runs (the pipeline's stages have them off too).
Run as ``hf-simcit ...`` or ``accelerate launch -m hf_simcit.cli <stage> recipe.yaml``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

# Pipeline order; a command whose module is absent is not offered.
COMMANDS = (
    "prepare",
    "features",
    "lgmd",
    "train_quantizer",
    "assign",
    "train",
    "evaluate",
    "recommend",
    "app",
    "push",
    "run",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-simcit",
        description="Generative recommendation with contrastive semantic item IDs (SimCIT) and LGMD.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        module_name = f"hf_simcit.commands.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import SimCITInputError
    from .utils.progress import progress_bars_off

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # transformers' "Loading weights" / "Writing shards" bars: noise on stderr, and before a bad-input
        # error they break its one line (the commands' own progress bars are tqdm's, not switched by this)
        with progress_bars_off("transformers"):
            result = args.func(args)
    except SimCITInputError as err:
        print(f"hf-simcit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        name = err.filename or str(err)
        print(f"hf-simcit {args.command}: error: file not found: {name}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hf-simcit {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        _close_process_group()
    if os.environ.get("HF_SIMCIT_DEBUG_RESULT"):
        print(result)
    return 0 if result is None else int(result)


def _close_process_group() -> None:
    """Destroy the process group a distributed command (``accelerate launch``) opened, on every rank.

    Why: left to interpreter exit, a gloo process group's threads are torn down in an arbitrary order and a
    rank can abort with "terminate called without an active exception" (exit -6) after its work is done,
    which fails the whole launch.
    """
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
