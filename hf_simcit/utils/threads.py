"""CPU threads for one block of work: torch's intra-op pool and the BLAS / OpenMP pools, restored after it.

Why: on a shared 2-core machine one thread is faster than two fighting (the features' text encoder ~2.5x, the
ML-100K quantizer ~2.5x, ``benchmarks/RESULTS.md``), and with two threads the quantizer's training is not
reproducible from one run to the next (same seed, same machine: different SIDs, measured), while one thread gives
the same SIDs every run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..errors import SimCITInputError


@contextlib.contextmanager
def cpu_threads(num_threads: int | None) -> Iterator[None]:
    """Cap torch's intra-op threads and the BLAS/OpenMP pools (numpy, scipy, scikit-learn) inside the block;
    ``None`` leaves the libraries' own settings."""
    import torch

    if num_threads is None:
        yield
        return
    if num_threads < 1:
        raise SimCITInputError(f"num_threads must be positive, got {num_threads}")
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        with threadpool_limits(limits=num_threads):
            yield
    finally:
        torch.set_num_threads(previous)
