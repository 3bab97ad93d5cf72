"""benchmarks/padding.py: the padding share it reports is the padded share of the batches, counted exactly."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import benchmark_module

ROOT = Path(__file__).resolve().parents[1]


def test_padding_share_counts_each_batch_padded_to_its_longest_window():
    padding = benchmark_module("padding")
    lengths = torch.tensor([1, 2, 3, 4])
    assert padding.padding_share(lengths, [0, 1, 2, 3], 2) == 1 - 10 / 12       # (1, 2) -> 2 + 2, (3, 4) -> 4 + 4
    assert padding.padding_share(lengths, [0, 3, 1, 2], 2) == 1 - 10 / 14       # (1, 4) -> 8, (2, 3) -> 6
    assert padding.padding_share(lengths, [3, 2, 1, 0], 4) == 1 - 10 / 16
    assert padding.padding_share(torch.tensor([5, 5, 5]), [2, 0, 1], 2) == 0.0  # a short last batch pads nothing
