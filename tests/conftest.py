"""Shared pytest configuration: paths to the real data under ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

# The local Hub stand-in (tests/hub_fixtures.py): configured before any test module imports huggingface_hub.
pytest_plugins = ["hub_fixtures"]

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(name: str) -> Path:
    """Path of a real data set under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch intra-op thread (restored afterwards): small-op-heavy solvers stall on a
    shared 2-core machine with more. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

