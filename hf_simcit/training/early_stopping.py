"""One early-stopping rule for every trained model: the generator, SASRec and the quantizer.

Why a window: validation runs on a seeded sample of users and is noisy. On Beauty (5,000 users) one epoch of a
rising curve spiked 12% above its neighbours (0.0334 -> 0.0383 -> 0.0342); patience counted from that spike
ended the run 16 epochs early on a worse model (benchmarks/RESULTS.md, 2026-12-05). With ``window > 1`` the
*stopping* decision also follows the trailing mean of the last ``window`` validations, so a run goes on while
its trend still improves; the *checkpoint* is still the best single validation, the model measured best.
``window = 1`` is the usual rule (stop after ``patience`` validations without a better value).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import SimCITInputError

MODES = ("max", "min")


@dataclass
class EarlyStopping:
    """Track validations: :meth:`update` says whether a value is the best so far, :attr:`should_stop` when to stop.

    A validation counts as progress when the value itself or the trailing mean of the last ``window`` values
    is the best so far; ``patience`` validations in a row without progress stop training (``patience`` 0: never).
    The state is plain JSON (:meth:`state_dict`), so it travels in checkpoints and resumes exactly.
    """

    patience: int = 0
    window: int = 1
    mode: str = "max"
    values: list[float] = field(default_factory=list)
    best: float | None = None
    best_trend: float | None = None
    evals_without_improvement: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SimCITInputError(f"early stopping mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if int(self.patience) < 0:
            raise SimCITInputError(f"early stopping patience must be >= 0, got {self.patience!r}")
        if int(self.window) < 1:
            raise SimCITInputError(f"early stopping window must be >= 1 validation, got {self.window!r}")

    def _better(self, value: float, reference: float | None) -> bool:
        return reference is None or (value > reference if self.mode == "max" else value < reference)

    def update(self, value: float) -> bool:
        """Record one validation value; ``True`` when it is the best single value so far (keep that model)."""
        self.values.append(float(value))
        tail = self.values[-self.window:]
        trend = sum(tail) / len(tail)
        is_best = self._better(value, self.best)
        trend_improved = self._better(trend, self.best_trend)
        if is_best:
            self.best = float(value)
        if trend_improved:
            self.best_trend = trend
        self.evals_without_improvement = 0 if is_best or trend_improved else self.evals_without_improvement + 1
        return is_best

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.evals_without_improvement >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, patience: int, window: int, mode: str = "max",
                   state: dict[str, Any] | None = None) -> EarlyStopping:
        """A tracker with today's settings and, when resuming, the recorded validations of ``state``."""
        recorded = {k: v for k, v in (state or {}).items() if k not in ("patience", "window", "mode")}
        return cls(patience=patience, window=window, mode=mode, **recorded)

    @classmethod
    def from_checkpoint(cls, patience: int, window: int, mode: str = "max",
                        checkpoint: dict[str, Any] | None = None) -> EarlyStopping:
        """:meth:`from_state` of a trainer's saved state (its ``"early_stopping"`` entry). A checkpoint written
        before this class recorded only its best value (``best_metric``) and its count of validations without
        improvement (``evals_without_improvement``, the quantizer's ``patience``): it resumes with those, its best
        value also standing for the best trailing mean (exact for window 1, which is what such runs used)."""
        checkpoint = checkpoint or {}
        state = checkpoint.get("early_stopping")
        if state is None and checkpoint.get("best_metric") is not None:
            count = checkpoint.get("evals_without_improvement", checkpoint.get("patience", 0))
            state = {"best": checkpoint["best_metric"], "best_trend": checkpoint["best_metric"],
                     "evals_without_improvement": count}
        return cls.from_state(patience, window, mode, state)
