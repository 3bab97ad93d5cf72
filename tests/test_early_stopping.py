"""The one early-stopping rule (generator, SASRec, quantizer): the usual rule at window 1, a trend window that
keeps a noisy spike from ending a rising run, exact resume from its JSON state, one-line errors."""

import json

import pytest

from hf_simcit.baselines.sasrec import SASRecConfig
from hf_simcit.errors import SimCITInputError
from hf_simcit.training.early_stopping import EarlyStopping
from hf_simcit.training.quantizer import QuantizerTrainingArguments
from hf_simcit.training.recommender import RecommenderTrainingArguments

# SimCIT, seed 1, Beauty validation NDCG@10 x 1e4 at epochs 1-24 (benchmarks/RESULTS.md, 2026-12-05): a rising
# curve with a one-epoch spike at epoch 14
SPIKE_CURVE = [208, 273, 269, 296, 288, 292, 308, 307, 307, 313, 320, 322, 334, 383, 342, 330, 344, 358, 328,
               359, 361, 369, 374, 351]


def run(values, **kwargs):
    """(epoch at which training stops or None, epochs whose model is kept)."""
    stopping, kept = EarlyStopping(**kwargs), []
    for epoch, value in enumerate(values, start=1):
        if stopping.update(value):
            kept.append(epoch)
        if stopping.should_stop:
            return epoch, kept
    return None, kept


def test_window_one_is_the_usual_rule():
    assert run([1, 3, 2, 2, 2, 4], patience=3) == (5, [1, 2])
    assert run([1, 3, 2, 2, 4, 1], patience=3) == (None, [1, 2, 5])
    assert run([5, 4, 3, 2, 1], patience=0) == (None, [1])             # patience 0: never stops
    assert run([3, 2, 1, 1], patience=2, mode="min") == (None, [1, 2, 3])


def test_trend_window_keeps_a_rising_run_past_a_spike():
    # the recorded run: patience 10 counted from the spike stopped it at epoch 24 on the epoch-14 model
    assert run(SPIKE_CURVE, patience=10) == (24, [1, 2, 4, 7, 10, 11, 12, 13, 14])
    stop, kept = run(SPIKE_CURVE, patience=10, window=3)
    assert stop is None and kept[-1] == 14                 # still rising on average: not stopped; same best model
    # a run that has really stopped improving still stops, later by at most the window
    flat = SPIKE_CURVE + [340] * 20
    assert run(flat, patience=10)[0] == 24
    assert run(flat, patience=10, window=3)[0] == 33


def test_state_resumes_exactly_through_json():
    whole = EarlyStopping(patience=4, window=3)
    decisions = [(whole.update(v), whole.should_stop) for v in SPIKE_CURVE]
    first = EarlyStopping(patience=4, window=3)
    resumed_decisions = [(first.update(v), first.should_stop) for v in SPIKE_CURVE[:9]]
    resumed = EarlyStopping.from_state(4, 3, state=json.loads(json.dumps(first.state_dict())))
    resumed_decisions += [(resumed.update(v), resumed.should_stop) for v in SPIKE_CURVE[9:]]
    assert resumed_decisions == decisions
    assert resumed.state_dict() == whole.state_dict()


@pytest.mark.parametrize("make", [
    lambda: EarlyStopping(patience=3, window=0),
    lambda: EarlyStopping(patience=-1),
    lambda: EarlyStopping(mode="best"),
    lambda: RecommenderTrainingArguments(output_dir="x", early_stopping_window=0),
    lambda: SASRecConfig(num_items=5, patience_window=0),
    lambda: QuantizerTrainingArguments(output_dir="x", early_stopping_window=0),
])
def test_bad_settings_fail_with_one_line(make):
    with pytest.raises(SimCITInputError, match="early stopping (window|patience|mode)"):
        make()


def test_the_generator_trainer_stops_and_keeps_by_the_rule():
    """``train_recommender``'s selection step: window 1 stops 10 validations after the spike and keeps it; window 3
    goes on; both keep the best single validation, and the state survives a JSON round trip (a checkpoint)."""
    from types import SimpleNamespace

    from hf_simcit.training.recommender import _validate_and_select

    def run_trainer(window: int) -> tuple[int | None, int]:
        args = RecommenderTrainingArguments(output_dir="x", early_stopping_patience=10,
                                            early_stopping_window=window, eval_ks="10")
        state = {"best_step": None, "best_metrics": None, "best_epoch": None,
                 "early_stopping": None, "stopped_early": False, "log": [], "train_seconds": 0.0}
        saved = []
        printer = SimpleNamespace(print=lambda *a, **k: None)
        for step, value in enumerate(SPIKE_CURVE, start=1):
            state["epoch_progress"] = float(step)
            _validate_and_select(step, state, lambda s, v=value: {"ndcg@10": v / 1e4, "recall@10": 2 * v / 1e4},
                                 lambda s, m: saved.append(s), args, printer)
            state = json.loads(json.dumps(state))        # as a checkpoint writes and reads it
            if state["stopped_early"]:
                return step, state["best_step"]
        assert saved[-1] == state["best_step"]
        return None, state["best_step"]

    assert run_trainer(1) == (24, 14)
    assert run_trainer(3) == (None, 14)


@pytest.mark.parametrize("count_key", ["evals_without_improvement", "patience"])
def test_a_checkpoint_written_before_early_stopping_resumes_with_its_best_and_count(count_key):
    """The generator trainer recorded ``evals_without_improvement``, the quantizer trainer ``patience``."""
    stopping = EarlyStopping.from_checkpoint(3, 1, checkpoint={"best_metric": 0.5, count_key: 2, "step": 9})
    assert (stopping.best, stopping.evals_without_improvement) == (0.5, 2)
    assert not stopping.update(0.4) and stopping.should_stop
    fresh = EarlyStopping.from_checkpoint(3, 1, checkpoint=None)
    assert (fresh.best, fresh.values) == (None, [])
    resumed = EarlyStopping.from_checkpoint(3, 2, checkpoint={"early_stopping": stopping.state_dict()})
    assert resumed.values == [0.4] and resumed.window == 2
