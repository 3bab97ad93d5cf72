"""The run report: metrics table, plots as real PNG files."""

from __future__ import annotations

from hf_simcit.report import format_metrics_table, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_metrics_table_orders_columns_and_rows():
    table = format_metrics_table({"SimCIT": {"Recall@10": 0.12345, "recall@5": 0.1}, "SASRec": {"recall@5": 0.2}})
    lines = table.splitlines()
    assert lines[0] == "| system | Recall@5 | Recall@10 |"
    assert lines[2] == "| SimCIT | 0.1000 | 0.1235 |"
    assert lines[3] == "| SASRec | 0.2000 | - |"


def test_write_report_with_plots(tmp_path):
    report = write_report(
        tmp_path,
        metrics={"SimCIT": {"recall@5": 0.1, "ndcg@5": 0.05, "recall@10": 0.2, "ndcg@10": 0.08}},
        data_stats={"dataset": "toy", "source": "unit test", "users": 3, "items": 4, "interactions": 12},
        sid_stats={"codebook_usage": [1.0, 0.5], "perplexity": [3.9, 1.7], "raw_collision_rate": 0.25},
        training_logs={"quantizer": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0, "eval_loss": 1.5}]},
        timings={"prepare": 1.25},
    )
    text = report.read_text()
    assert "| SimCIT | 0.1000 | 0.0500 | 0.2000 | 0.0800 |" in text
    assert "- raw_collision_rate: 0.2500" in text
    assert "| prepare | 1.2 |" in text or "| prepare | 1.3 |" in text
    for name in ("training_curves.png", "codebook_usage.png", "recall_at_k.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == PNG_MAGIC
        assert f"(plots/{name})" in text


def test_loss_family_splits_the_prefix():
    from hf_simcit.report import loss_family

    assert loss_family("validation_contrastive_loss") == ("contrastive_loss", "validation")
    assert loss_family("train_text_loss") == ("text_loss", "train")
    assert loss_family("eval_loss") == ("loss", "eval")
    assert loss_family("loss") == ("loss", "train")


def test_training_curves_get_one_panel_per_loss_family(tmp_path):
    from PIL import Image

    from hf_simcit.report import plot_training_curves

    families = ("loss", "contrastive_loss", "text_loss", "cf_loss", "codeword_diversity_loss")
    quantizer = [{"step": s, **{f"{split}_{f}": 1.0 / (s + 1) for f in families for split in ("train", "validation")}}
                 for s in (0, 50, 100)]
    recommender = [{"step": s, "loss": 3.0 - s / 100} for s in (50, 100, 150)]
    path = plot_training_curves({"quantizer": quantizer, "recommender": recommender}, tmp_path / "curves.png")
    # 5 quantizer families + the recommender's loss: 6 panels in 2 rows of 3 (4.6 x 3.2 inches each, 110 dpi)
    assert Image.open(path).size == (round(3 * 4.6 * 110), round(2 * 3.2 * 110))
    single = plot_training_curves({"recommender": recommender}, tmp_path / "one.png")
    assert Image.open(single).size == (round(4.6 * 110), round(3.2 * 110))


def test_recall_at_k_bars_are_horizontal_and_grow_with_the_systems(tmp_path):
    from PIL import Image

    from hf_simcit.report import plot_recall_at_k

    row = {"recall@5": 0.1, "ndcg@5": 0.05, "recall@10": 0.2, "ndcg@10": 0.08}
    two = Image.open(plot_recall_at_k({"a system with a long name, as the run report has": row,
                                       "history: zeros": dict.fromkeys(row, 0.0)}, tmp_path / "two.png"))
    four = Image.open(plot_recall_at_k({f"system {i}": row for i in range(4)}, tmp_path / "four.png"))
    assert four.size[1] > two.size[1] > 300  # one band of bars per system, taller with more systems


def test_history_note_says_why_the_row_is_zero(tmp_path):
    from hf_simcit.baselines.popularity import repeat_statistics
    from hf_simcit.report import history_baseline_note

    stats = repeat_statistics([[1, 2, 3], [4, 5, 5], [7, 8, 9]], [3, 1, 6], k=3)
    assert stats == {"users": 3, "repeat_targets": 1, "full_histories": 2, "k": 3}
    assert history_baseline_note(stats) == (
        "history baseline: 1 of 3 test targets (33.3%) are items already in the user's history, and 2 of 3 "
        "histories hold at least 3 distinct items, so their top 3 is the user's own past items only.")
    none = history_baseline_note(repeat_statistics([[1, 2], [3, 4]], [5, 6], k=2), "ml-100k")
    assert none.endswith("with no repeat consumption in this data set (a user rates a movie once) the row is zero "
                         "by construction, not a bug.")
    report = write_report(tmp_path, metrics={"history": dict.fromkeys(("recall@10", "ndcg@10"), 0.0)}, notes=[none])
    assert f"- {none}" in report.read_text()


def test_history_note_names_the_evaluated_split():
    from hf_simcit.report import history_baseline_note

    stats = {"users": 4, "repeat_targets": 1, "full_histories": 0, "k": 10}
    assert history_baseline_note(stats, split="validation").startswith(
        "history baseline: 1 of 4 validation targets (25.0%)")


def test_a_damaged_run_file_is_one_line_naming_it(tmp_path):
    """A truncated metrics or baseline JSON (a run killed while writing, an edit) stops the report stage with
    the file and line, not a JSONDecodeError traceback; the pipeline's own reads share that reader."""
    import pytest

    from hf_simcit.errors import SimCITInputError
    from hf_simcit.report import learning_curves, metrics_rows

    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text('{"recall@10": 0.1,\n "ndcg@10": ')
    with pytest.raises(SimCITInputError, match=r"eval/metrics.json:2: not valid JSON"):
        metrics_rows(tmp_path, "generator", ["sasrec"])
    (tmp_path / "eval" / "metrics.json").write_text('{"recall@10": 0.1}')
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "sasrec.json").write_text('{"recall@10": 0.2, "history": [')
    with pytest.raises(SimCITInputError, match=r"baselines/sasrec.json:1: not valid JSON"):
        metrics_rows(tmp_path, "generator", ["sasrec"])
    with pytest.raises(SimCITInputError, match=r"baselines/sasrec.json:1: not valid JSON"):
        learning_curves(tmp_path, "generator")


def test_the_generator_row_says_when_its_test_figures_are_the_hybrid_ranking():
    """A folder serving the hybrid (W > 0): the metrics row names the hybrid and its weight, the learning curve
    (validation of the beam's own order, which chose the checkpoint) says it is the beam's."""
    from hf_simcit.report import generator_row

    assert generator_row(None) == generator_row(None, 0.0, curve=True) == "SimCIT SIDs + Llama from config"
    assert generator_row("m", 2.0) == "SimCIT SIDs + m, hybrid with its dense head (W 2)"
    assert generator_row("m", 0.5, curve=True) == "SimCIT SIDs + m (beam order)"
