"""``hf-simcit app RUN_DIR_OR_REPO_ID``: the demo app (Gradio) on a run folder or on pushed Hub repos."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "app",
        help="serve the demo app: search, pick, recommend with SIDs, add a new item (cold start)",
        description="Serve a Gradio app on a finished run folder (RUN/quantizer, RUN/recommender and its item "
        "table) or on the repos `hf-simcit push --repo-id ORG/NAME` wrote (ORG/NAME-quantizer, -recommender, "
        "-data). Needs the app extra: pip install -e '.[app]' in the checkout (gradio).",
    )
    parser.add_argument("source", metavar="RUN_DIR_OR_REPO_ID", help="run folder, or ORG/NAME on the Hub")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860, as on Spaces)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... for the recommender (default cpu)")
    parser.add_argument("--check", action="store_true",
                        help="load everything, print what was loaded and exit (no server)")
    parser.set_defaults(func=run_app)


def run_app(args: argparse.Namespace) -> int:
    import importlib.util

    from ..errors import SimCITInputError

    if not args.check and importlib.util.find_spec("gradio") is None:
        raise SimCITInputError("the app needs gradio: pip install -e '.[app]' in the hf-simcit checkout (or pip install 'gradio>=6,<7')")
    from ..app import DemoEngine, launch

    if args.check:
        print(DemoEngine.load(args.source, device=args.device).describe())
        return 0
    launch(args.source, server_name=args.host, server_port=args.port, device=args.device)
    return 0
