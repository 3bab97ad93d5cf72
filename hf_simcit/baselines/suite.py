"""The baselines a run is compared with, each on the generator's split, and the budget each one gets.

Why here and not in the pipeline: how a baseline is trained and scored (SASRec's own early-stopping budget,
its seed, which rows are scored) is a property of the comparison, the same whoever runs it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import SimCITInputError

BASELINES = ("sasrec", "history", "popularity")


def _evaluated_rows(split: Any, max_examples: int | None) -> Any:
    """The first ``max_examples`` rows of ``split``: the rows the generator's evaluate stage scores."""
    return split if max_examples is None else split.select(range(min(len(split), max_examples)))


@dataclass
class _SASRecBudget:
    """The one SASRec option that is not a :class:`~hf_simcit.baselines.sasrec.SASRecConfig` field."""

    max_steps: int | None = None


def check_sasrec_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], int | None]:
    """A pipeline's ``overrides.sasrec`` checked and converted: ``(SASRecConfig keyword arguments, max_steps)``.

    Why apart from training: the pipeline checks them when it plans the run, so a typo stops it before the first
    stage, not in the baselines stage after the generator trained. Unknown keys, values of the wrong type and
    what ``SASRecConfig`` itself refuses are one error; ``num_items`` is the data set's.
    """
    from ..utils.recipes import check_recipe_values
    from .sasrec import SASRecConfig

    if "num_items" in options:
        raise SimCITInputError("overrides.sasrec: num_items is the data set's, not a setting; remove it")
    checked = check_recipe_values((SASRecConfig, _SASRecBudget), dict(options), "overrides.sasrec")
    max_steps = checked.pop("max_steps", None)
    SASRecConfig(num_items=1, **checked)   # its own checks (objective, layer norm, sizes), before any training
    return checked, max_steps


def sasrec_baseline(prepared: Any, options: Mapping[str, Any], *, split: str, ks: Sequence[int],
                    max_examples: int | None, seed: int) -> dict[str, Any]:
    """SASRec trained to its own early-stopping point and scored on the evaluated rows of ``split``.

    Its own budget: epochs up to its cap with early stopping on validation (equal optimizer steps would be
    unfair: a SASRec step costs a fraction of a generator step); ``max_steps`` only where ``options`` sets it.
    ``seed`` (the generator's) applies unless ``options`` names one.
    """
    from .sasrec import SASRecConfig, evaluate_sasrec, train_sasrec

    options, max_steps = check_sasrec_options(options)
    options.setdefault("seed", seed)
    config = SASRecConfig(num_items=prepared.num_items, **options)
    start = time.perf_counter()
    # trained on the whole split (its training windows are rebuilt from train + validation + test), scored on
    # the evaluated rows: the first max_examples of split, as the generator's evaluate stage does
    model, result = train_sasrec(prepared.splits, config, ks=tuple(ks), max_steps=max_steps, verbose=False,
                                 evaluate_splits=())
    evaluated = _evaluated_rows(prepared.splits[split], max_examples)
    test = evaluate_sasrec(model, evaluated, tuple(ks), device=next(model.parameters()).device)
    return {**test, "steps": result["steps"], "epochs": result["epochs"],
            "best_epoch": result["best_epoch"] + 1, "history": result.get("history"),   # epochs done at the best
            "train_s": result["train_s"], "wall_s": round(time.perf_counter() - start, 1),
            "config": asdict(config)}


def run_baselines(prepared: Any, names: Sequence[str], out_dir: Path, *, split: str, ks: Sequence[int],
                  max_examples: int | None, sasrec_options: Mapping[str, Any], seed: int) -> dict[str, dict]:
    """Score every baseline in ``names`` and write ``out_dir/<name>.json``; returns the metrics by name.

    The non-learned ones (history, popularity) rank from the training targets' popularity; SASRec trains.
    """
    from .popularity import evaluate_baseline, item_popularity

    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    non_learned = [b for b in names if b != "sasrec"]
    if non_learned:
        popularity = item_popularity(prepared.splits["train"]["target"], prepared.num_items)
        for name in non_learned:
            results[name] = evaluate_baseline(name, prepared.splits[split], popularity, ks=tuple(ks),
                                              max_examples=max_examples)
            (out_dir / f"{name}.json").write_text(json.dumps(results[name], indent=2))
    if "sasrec" in names:
        results["sasrec"] = sasrec_baseline(prepared, sasrec_options, split=split, ks=ks,
                                            max_examples=max_examples, seed=seed)
        (out_dir / "sasrec.json").write_text(json.dumps(results["sasrec"], indent=2, default=str))
    return results


__all__ = ["BASELINES", "check_sasrec_options", "run_baselines", "sasrec_baseline"]
