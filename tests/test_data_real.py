"""The real benchmark data under ../shared/data (skipped where absent), and the prepare CLI end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import shared_data

from hf_simcit.cli import main
from hf_simcit.data import load_prepared, prepare_dataset


def test_beauty_matches_tiger_protocol(tmp_path, capsys):
    data_dir = shared_data("amazon2014_beauty")
    assert main(["prepare", "--dataset", "beauty", "--data-dir", str(data_dir), "--output", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "22,363" in out and "12,101" in out and "198,502" in out
    rec = load_prepared(tmp_path / "b")
    assert (rec.num_users, rec.num_items, rec.stats["interactions"]) == (22_363, 12_101, 198_502)
    assert len(rec.splits["test"]) == 22_363
    assert rec.items["text"][0] == "nail lacquer simmer and shimmer | OPI | Makeup | Nails | Nail Polish"
    # any other S3-Rec file works the same way: the same file under another name, as the generic format
    copy = tmp_path / "raw" / "Anything.txt"
    copy.parent.mkdir()
    shutil.copy(data_dir / "Beauty.txt", copy)
    generic = prepare_dataset("s3rec", copy)
    assert (generic.num_users, generic.num_items, generic.stats["interactions"]) == (22_363, 12_101, 198_502)
    assert generic.splits["test"]["target"] == rec.splits["test"]["target"]


def test_yelp():
    rec = prepare_dataset("yelp", shared_data("yelp"))
    assert (rec.num_users, rec.num_items, rec.stats["interactions"]) == (30_431, 20_033, 316_354)
    assert rec.items["text"][0] == "The Great Greek | Diners, Greek, Mediterranean, Restaurants"


def test_scientific():
    rec = prepare_dataset("scientific", shared_data("amazon2018_scientific"))
    assert (rec.num_users, rec.num_items) == (8_442, 4_385)
    # 34,101 training lines + 8,442 validation + 8,442 test targets + each user's first item
    assert rec.stats["interactions"] == 59_427
    assert rec.stats["read"]["dropped_by_reader"] == {}
    assert rec.items["text"][0].startswith("PORTER-CABLE") or rec.items["text"][0]


def test_foursquare_nyc_without_k_core():
    rec = prepare_dataset("foursquare-nyc", shared_data("foursquare_nyc"), min_user_interactions=0,
                          min_item_interactions=0)
    assert (rec.num_users, rec.num_items, rec.stats["interactions"]) == (1_076, 5_126, 147_319)
    assert set(rec.items.column_names) >= {"latitude", "longitude"}
    assert 40.0 < rec.items["latitude"][0] < 41.5


def test_cli_user_error_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hf_simcit.cli", "prepare", "--dataset", "beauty", "--data-dir",
         str(tmp_path / "missing"), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "no such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["--help"], ["prepare", "--help"]])
def test_cli_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(command)
    assert exit_info.value.code == 0
    assert "prepare" in capsys.readouterr().out
