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
