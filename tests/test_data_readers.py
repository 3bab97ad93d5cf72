"""Readers of every supported format on small hand-made files, and their error messages."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hf_simcit.data import PrepareConfig, prepare_dataset, training_matrix
from hf_simcit.errors import SimCITInputError

K0 = {"min_user_interactions": 0, "min_item_interactions": 0}


def test_s3rec_generic(tmp_path):
    (tmp_path / "Toy.txt").write_text("1 10 11 12 13\n2 11 12 13\n3 12 10 11 13 12\n")
    rec = prepare_dataset("s3rec", tmp_path, **K0)
    assert (rec.num_users, rec.num_items, rec.stats["interactions"]) == (3, 4, 12)
    assert rec.items["item_id"] == ["10", "11", "12", "13"]
    assert rec.splits["test"]["target"] == [3, 3, 2]
    assert rec.splits["test"]["history"][2] == [2, 0, 1, 3]
    assert rec.items["text"] == [None] * 4  # no metadata: a missing text, not a made-up one
    assert rec.stats["items_without_text"] == 4


def test_s3rec_malformed_line_names_file_and_line(tmp_path):
    (tmp_path / "Bad.txt").write_text("1 10 11\n2\n")
    with pytest.raises(SimCITInputError, match=r"Bad.txt:2: malformed line"):
        prepare_dataset("s3rec", tmp_path)


def test_s3rec_duplicate_user(tmp_path):
    (tmp_path / "Dup.txt").write_text("1 10 11 12\n1 10 11\n")
    with pytest.raises(SimCITInputError, match=r"Dup.txt:2: duplicate user id '1'"):
        prepare_dataset("s3rec", tmp_path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SimCITInputError, match="no file matching"):
        prepare_dataset("s3rec", tmp_path)
    with pytest.raises(SimCITInputError, match="no such file or directory"):
        prepare_dataset("beauty", tmp_path / "nowhere")


def test_empty_after_k_core(tmp_path):
    (tmp_path / "Tiny.txt").write_text("1 10 11 12\n")
    with pytest.raises(SimCITInputError, match="no user is left after k-core"):
        prepare_dataset("s3rec", tmp_path, min_user_interactions=5)


def test_lcrec(tmp_path):
    (tmp_path / "Toy.inter.json").write_text(json.dumps({"u1": [1, 2, 3, 4], "u2": [2, 3, 4]}))
    (tmp_path / "Toy.item.json").write_text(json.dumps({"1": {"title": "A", "description": "x"}, "2": "B"}))
    rec = prepare_dataset("lcrec", tmp_path, **K0)
    assert rec.splits["test"]["target"] == [3, 3]
    assert rec.items["text"][:3] == ["A | x", "B", None]


def test_lcrec_wrong_format(tmp_path):
    (tmp_path / "Toy.inter.json").write_text(json.dumps({"u1": "not a list"}))
    with pytest.raises(SimCITInputError, match="user 'u1': expected a list"):
        prepare_dataset("lcrec", tmp_path)


def test_unisrec_rebuilds_sequences_from_unordered_truncated_lines(tmp_path):
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    # user 0's sequence is 0..6; histories truncated to 3; training lines in reverse order
    (tmp_path / "S.train.inter").write_text(header + "0\t1 2 3\t4\n0\t0 1 2\t3\n0\t0 1\t2\n0\t0\t1\n")
    (tmp_path / "S.valid.inter").write_text(header + "0\t2 3 4\t5\n")
    (tmp_path / "S.test.inter").write_text(header + "0\t3 4 5\t6\n")
    (tmp_path / "S.item2index").write_text("\n".join(f"A{i}\t{i}" for i in range(7)))
    (tmp_path / "S.text").write_text("item_id:token\ttext:token_seq\n" + "".join(f"A{i}\tthing {i}\n" for i in range(7)))
    rec = prepare_dataset("unisrec", tmp_path, **K0)
    assert rec.sequences["items"][0] == list(range(7))
    assert rec.items["item_id"] == [f"A{i}" for i in range(7)]
    assert rec.items["text"][6] == "thing 6"
    assert rec.splits["test"]["target"] == [6]


def test_table_formats_and_stable_tie_break(tmp_path):
    frame = pd.DataFrame({
        "uid": ["a", "a", "a", "b", "b", "b"],
        "iid": ["x", "y", "z", "z", "y", "x"],
        "ts": [3, 1, 1, 5, 6, 7],  # a's y and z tie: file order (y before z) wins
    })
    for name, write in (("t.csv", frame.to_csv), ("t.parquet", frame.to_parquet)):
        path = tmp_path / name
        write(path, index=False)
        rec = prepare_dataset("table", path, user_column="uid", item_column="iid", timestamp_column="ts", **K0)
        assert rec.sequences["items"] == [[1, 2, 0], [2, 1, 0]]
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    rec = prepare_dataset("table", tmp_path / "t.jsonl", user_column="uid", item_column="iid", timestamp_column="ts",
                          **K0)
    assert rec.sequences["items"] == [[1, 2, 0], [2, 1, 0]]


def test_table_unknown_column(tmp_path):
    pd.DataFrame({"user": [1], "item": [2]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(SimCITInputError, match=r"unknown column\(s\) 'user_id', 'item_id'; the file has"):
        prepare_dataset("table", tmp_path / "t.csv")


def test_table_bad_timestamp_and_duplicate_item_text(tmp_path):
    pd.DataFrame({"user_id": [1, 1], "item_id": [2, 3], "timestamp": ["2020-01-01", "soon"]}).to_csv(
        tmp_path / "t.csv", index=False)
    with pytest.raises(SimCITInputError, match=r"t.csv:3: column 'timestamp' is not a time"):
        prepare_dataset("table", tmp_path / "t.csv")
    pd.DataFrame({"user_id": [1, 1, 1], "item_id": [2, 3, 4]}).to_csv(tmp_path / "u.csv", index=False)
    pd.DataFrame({"item_id": [2, 2], "text": ["a", "b"]}).to_csv(tmp_path / "items.csv", index=False)
    with pytest.raises(SimCITInputError, match="duplicate item id '2'"):
        prepare_dataset("table", tmp_path / "u.csv", item_text_file=str(tmp_path / "items.csv"), timestamp_column=None,
                        **K0)


@pytest.mark.parametrize("name, text, line", [
    # a line of spaces is blank to pandas (skipped), so the bad row is the file's 5th line, not its 4th
    ("spaces.csv", "user_id,item_id,timestamp\n1,2,2020-01-01\n   \n\n1,3,soon\n", 5),
    ("lead.csv", "\n  \nuser_id,item_id,timestamp\n1,2,2020-01-01\n1,3,soon\n", 5),
    ("quoted.csv", 'user_id,item_id,timestamp\n"1\n\n",2,2020-01-01\n1,3,soon\n', 5),
    ("tabs.tsv", "user_id\titem_id\ttimestamp\n1\t2\t2020-01-01\n  \n1\t3\tsoon\n", 4),
    ("lines.jsonl", '{"user_id": 1, "item_id": 2, "timestamp": "2020-01-01"}\n \n'
                    '{"user_id": 1, "item_id": 3, "timestamp": "soon"}\n', 3),
])
def test_table_errors_name_the_file_line_as_pandas_reads_it(tmp_path, name, text, line):
    (tmp_path / name).write_text(text)
    with pytest.raises(SimCITInputError, match=rf"{name}:{line}: column 'timestamp' is not a time: 'soon'$"):
        prepare_dataset("table", tmp_path / name)


def test_a_quoted_blank_cell_is_a_row_of_its_own(tmp_path):
    """A quoted field of spaces is not a blank line to pandas: that line is the row named."""
    (tmp_path / "t.csv").write_text('user_id,item_id,timestamp\n1,2,2020-01-01\n"  "\n1,3,soon\n')
    with pytest.raises(SimCITInputError, match=r"t.csv:3: column 'timestamp' is empty"):
        prepare_dataset("table", tmp_path / "t.csv")


@pytest.mark.parametrize("odd", ["soon", "2020-01-03"])
def test_numeric_times_with_a_stray_cell_name_that_cell(tmp_path, recwarn, odd):
    """Unix times with one bad cell: the error names that cell, not the first (valid) number."""
    (tmp_path / "t.csv").write_text(f"user_id,item_id,timestamp\n1,2,100\n1,3,200\n1,4,{odd}\n")
    with pytest.raises(SimCITInputError, match=rf"t.csv:4: column 'timestamp' is not a time: '{odd}' \(the "
                                               r"column's other times are numbers\)$"):
        prepare_dataset("table", tmp_path / "t.csv")
    assert not [w for w in recwarn if "infer format" in str(w.message)]   # one line, no pandas warning


def test_unknown_dataset_and_option():
    with pytest.raises(SimCITInputError, match="unknown dataset 'netflix'"):
        prepare_dataset("netflix")
    with pytest.raises(SimCITInputError, match="unknown prepare option"):
        prepare_dataset("ml-100k", max_histroy=3)


def test_movielens_from_wheel_and_training_matrix(tmp_path):
    rec = prepare_dataset("ml-100k", config=PrepareConfig())
    assert rec.num_users == 943
    assert rec.stats["read"]["interactions"] == 100_000
    assert rec.num_items + rec.stats["k_core"]["removed_items"] == 1682
    assert len(rec.splits["test"]) == 943
    assert rec.items["text"][0].startswith("Toy Story (1995). Genres: Animation")
    matrix = training_matrix(rec)
    assert matrix.shape == (943, rec.num_items)
    # the validation and test targets never enter the training matrix as the held-out interaction
    for split in ("validation", "test"):
        for user, target in zip(rec.splits[split]["user_id"][:50], rec.splits[split]["target"][:50]):
            seq = rec.sequences["items"][user]
            earlier = set(seq[:-2])
            assert bool(matrix[user, target]) == (target in earlier)
    rec.save_to_disk(tmp_path / "ml")
    from hf_simcit.data import load_prepared

    again = load_prepared(tmp_path / "ml")
    assert again.splits["train"]["target"] == rec.splits["train"]["target"]
    assert again.stats == rec.stats
