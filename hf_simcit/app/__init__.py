"""The demo app (Gradio): search, pick, recommend with SIDs, and place a new item without retraining.

``hf-simcit app RUN_DIR_OR_REPO_ID`` serves it; ``hf-simcit push`` adds it to the Hub as a Space
(:mod:`hf_simcit.app.space`). :class:`DemoEngine` holds the logic, :mod:`hf_simcit.app.ui` the layout; gradio
is imported only when the app is built (``pip install -e '.[app]'`` in the checkout).
"""

from .engine import ColdStartResult, DemoEngine, Neighbour, Recommendation, shared_prefix


def launch(source: str, **kwargs):
    """Serve the app on ``source`` (see :func:`hf_simcit.app.ui.launch`)."""
    from .ui import launch as _launch

    return _launch(source, **kwargs)


__all__ = ["ColdStartResult", "DemoEngine", "Neighbour", "Recommendation", "launch", "shared_prefix"]
