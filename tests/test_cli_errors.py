"""The command line's bad-input promise holds as a user runs it: one stderr line, with the libraries' progress
bars left as the process had them (the bad-input catalogue's runners turn them off, so it cannot see this)."""

from __future__ import annotations

import pytest
import torch
from transformers.utils import logging as transformers_logging

from hf_simcit.cli import main


@pytest.fixture()
def saved_recommender(tmp_path):
    from test_recommender import tiny_model_args, tiny_sids

    from hf_simcit.recommender.modeling import build_recommender, save_recommender

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    rec = build_recommender(tiny_model_args(), tiny_sids(), seed=0)
    save_recommender(rec, tmp_path / "recommender")
    torch.set_num_threads(before)
    return tmp_path / "recommender"


@pytest.fixture()
def bars_on():
    """transformers' progress bars on, as in a fresh ``hf-simcit`` process; restored after."""
    before = transformers_logging.is_progress_bar_enabled()
    transformers_logging.enable_progress_bar()
    yield
    (transformers_logging.enable_progress_bar if before else transformers_logging.disable_progress_bar)()


def test_an_unknown_history_item_is_one_stderr_line(saved_recommender, bars_on, capsys):
    code = main(["recommend", "--model", str(saved_recommender), "--history", "item1", "nosuchitem", "-k", "3"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "hf-simcit recommend: error: 1 item id(s) the recommender does not know: 'nosuchitem' (history 0)"], err
    assert transformers_logging.is_progress_bar_enabled()          # as the process had them


def test_a_good_request_still_answers(saved_recommender, bars_on, capsys):
    assert main(["recommend", "--model", str(saved_recommender), "--history", "item1", "item2", "-k", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.count('"item_id"') == 3 and "Loading weights" not in err


def test_the_prepare_command_offers_exactly_the_data_sets_prepare_dataset_reads():
    """``hf-simcit prepare --dataset`` lists its choices without importing hf_simcit.data (start-up time): the
    spelled-out copy must be the data package's list."""
    from hf_simcit.commands.prepare import DATASETS
    from hf_simcit.data import DATASET_NAMES

    assert DATASETS == DATASET_NAMES


def test_new_items_get_the_places_reserved_for_them(saved_recommender, capsys):
    """``--new-items`` + ``--new-item-slots``: the last place goes to the best new item not listed yet, the
    others are the ordinary top items in their order; either flag alone, or an unknown id, is one line."""
    import json

    model = str(saved_recommender)
    assert main(["recommend", "--model", model, "--history", "item1", "item2", "-k", "12"]) == 0
    ordinary = [r["item_id"] for r in json.loads(capsys.readouterr().out)["recommendations"]]
    new = ordinary[-2:]                                    # the two items the model ranks last of its 12
    assert main(["recommend", "--model", model, "--history", "item1", "item2", "-k", "4",
                 "--new-items", *new, "--new-item-slots", "1"]) == 0
    reserved = [r["item_id"] for r in json.loads(capsys.readouterr().out)["recommendations"]]
    assert reserved == ordinary[:3] + [new[0]]
    for argv, message in ((["--new-items", "item3"], "need both new_items"),
                          (["--new-item-slots", "1"], "need both new_items"),
                          (["--new-items", "nosuchitem", "--new-item-slots", "1"], "'nosuchitem'")):
        assert main(["recommend", "--model", model, "--history", "item1", "-k", "4", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
