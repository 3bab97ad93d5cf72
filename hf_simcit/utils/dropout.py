"""Dropout that draws a quarter of the random numbers on CPU.

Why: torch's CPU dropout draws one random number per element from a serial generator (``bernoulli_``). On this
project's small models that was 19% of a generator training step and 37% of a SASRec step (``torch.profiler``
on 2 CPU cores; the steps' times with each dropout: ``benchmarks/dropout_speed.py``). Here one 64-bit draw gives
the keep decisions of four elements (16 random bits each), so the mask costs ~4x fewer generator calls. The drop probability is ``p`` rounded to a multiple of
1 / 65,536 (0.1 -> 0.100006; 0.5 and every multiple of 1 / 65,536 exactly), the kept values are scaled by
``1 / (1 - p)`` as in :func:`torch.nn.functional.dropout`, and the masks come from torch's default generator,
so a seeded run repeats. Other devices use torch's own dropout (fused and fast on GPUs).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SimCITInputError

_INT64_MIN = -(2**63)   # random_(from=INT64_MIN, to=None): every 64-bit pattern equally likely
_LANES = 65536          # 16 random bits per element


def check_probability(p: float) -> float:
    """``p`` if it is a dropout probability in [0, 1); otherwise one error that names it."""
    if not 0.0 <= p < 1.0:
        raise SimCITInputError(f"dropout probability must be in [0, 1), got {p}")
    return p


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``x`` with each element zeroed with probability ``p`` (to 1 / 65,536) and the rest scaled by ``1 / (1 - p)``;
    ``x`` itself when not ``training`` or ``p`` is 0. Same shape and dtype as ``x``."""
    check_probability(p)
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return nn.functional.dropout(x, p, True)
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(_INT64_MIN, None)
    lanes = words.view(torch.int16)[:n].view(x.shape)          # uniform over [-32768, 32767]
    keep = lanes >= round(p * _LANES) - _LANES // 2             # P(drop) = round(p * 65536) / 65536
    return x * keep * (1.0 / (1.0 - p))     # autograd keeps the bool mask (1 byte per element), as torch's


class Dropout(nn.Module):
    """:func:`dropout` as a module, a drop-in for :class:`torch.nn.Dropout` (no parameters, no state)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = check_probability(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


__all__ = ["Dropout", "dropout"]
