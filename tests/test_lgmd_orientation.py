"""LGMD's factors come out in one sign convention, so the item embedding is a function of the data."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from hf_simcit.lgmd import LGMD


def _interactions(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((120, 80)) < 0.08).astype(np.float32)
    return sp.csr_matrix(dense)


def _fit(matrix, threads: int) -> LGMD:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return LGMD(6, max_iter=4, random_state=0, support="blocks", max_block_size=40).fit(matrix)
    finally:
        torch.set_num_threads(previous)


def test_largest_entry_of_every_item_factor_column_is_positive():
    model = _fit(_interactions(), threads=1)
    V = model.V_
    rows = np.abs(V).argmax(axis=0)
    assert (V[rows, np.arange(V.shape[1])] > 0).all()


def test_one_and_two_threads_give_the_same_embedding():
    matrix = _interactions(2)
    one, two = _fit(matrix, threads=1), _fit(matrix, threads=2)
    np.testing.assert_allclose(one.V_, two.V_, atol=1e-4)
