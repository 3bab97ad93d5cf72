"""Dropout that draws a quarter of the random numbers on CPU.

Why: torch's CPU dropout draws one random number per element from a serial generator (``bernoulli_``). On this
project's small models that was 19% of a generator training step and 37% of a SASRec step (``torch.profiler``
on 2 CPU cores; the steps' times with each dropout: ``benchmarks/dropout_speed.py``). Here one 64-bit draw gives
the keep decisions of four elements (16 random bits each), so the mask costs ~4x fewer generator calls. The drop
probability is ``p`` rounded to a multiple of 1 / 65,536 (0.1 -> 0.100006; 0.5 and every multiple of 1 / 65,536
exactly), the kept values are scaled by 1 / (1 - that probability), so the output's expectation is exactly ``x``
(as :func:`torch.nn.functional.dropout`'s), and the masks come from torch's default generator, so a seeded run
repeats. Other devices use torch's own dropout (fused and fast on GPUs).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SimCITInputError

_INT64_MIN = -(2**63)   # random_(from=INT64_MIN, to=None): every 64-bit pattern equally likely
_LANES = 65536          # 16 random bits per element


def check_probability(p: float, name: str = "dropout probability") -> float:
    """``p`` if it is a dropout probability in [0, 1); otherwise one error that names it (``name``)."""
    if not 0.0 <= p < 1.0:
        raise SimCITInputError(f"{name} must be in [0, 1), got {p}")
    return p


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``x`` with each element zeroed with probability ``p`` (to 1 / 65,536) and the rest scaled so that the
    expectation is ``x``; ``x`` itself when not ``training`` or ``p`` rounds to 0. Same shape and dtype as ``x``."""
    check_probability(p)
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return nn.functional.dropout(x, p, True)
    dropped = round(p * _LANES)                                 # P(drop) = dropped / 65,536
    if dropped == 0:
        return x
    if dropped == _LANES:                                       # p within 2^-17 of 1: everything drops
        return x * 0
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(_INT64_MIN, None)
    lanes = words.view(torch.int16)[:n].view(x.shape)          # uniform over [-32768, 32767]
    keep = lanes >= dropped - _LANES // 2
    # autograd keeps the bool mask (1 byte per element; torch's CPU dropout keeps a float noise tensor); the
    # in-place scaling needs nothing saved
    return x.mul(keep).mul_(_LANES / (_LANES - dropped))


class Dropout(nn.Dropout):
    """:func:`dropout` as a module: a :class:`torch.nn.Dropout` (so ``isinstance`` checks and ``repr`` hold) whose
    forward draws the mask as :func:`dropout` does. No parameters, no state; ``inplace`` is not supported."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        if inplace:
            raise SimCITInputError("hf_simcit.utils.dropout.Dropout has no in-place mode")
        super().__init__(check_probability(p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


__all__ = ["Dropout", "check_probability", "dropout"]
