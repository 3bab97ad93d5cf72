"""The run report: ``report.md`` with the metrics table plus PNG plots, from the files a run folder holds.

Why a separate module: every stage writes plain JSON (statistics, training logs, metrics); the report reads
only those files, so it can be regenerated for any run folder (``hf_simcit.report.write_report(run_dir)``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

METRIC_ORDER = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr")


def format_metrics_table(rows: Mapping[str, Mapping[str, float]], metrics: Sequence[str] | None = None) -> str:
    """A Markdown table, one row per system (e.g. ``{"SimCIT": {"recall@10": 0.05, ...}}``)."""
    if not rows:
        return "(no metrics)"
    present = {k.lower() for values in rows.values() for k in values}
    columns = [m for m in (metrics or METRIC_ORDER) if m in present] or sorted(present)
    header = "| system | " + " | ".join(c.replace("recall", "Recall").replace("ndcg", "NDCG").replace("mrr", "MRR")
                                        for c in columns) + " |"
    lines = [header, "|---|" + "---|" * len(columns)]
    for name, values in rows.items():
        lowered = {k.lower(): v for k, v in values.items()}
        cells = [f"{lowered[c]:.4f}" if isinstance(lowered.get(c), (int, float)) else "-" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(logs: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> Path | None:
    """One panel per stage: every numeric ``*loss*`` key against ``step`` (training and evaluation)."""
    panels = {name: log for name, log in logs.items() if log}
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, (name, log) in zip(axes[0], panels.items()):
        keys = sorted({k for row in log for k, v in row.items() if "loss" in k and isinstance(v, (int, float))})
        for key in keys:
            points = [(row.get("step", i), row[key]) for i, row in enumerate(log)
                      if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])]
            if points:
                ax.plot(*zip(*points), label=key, marker="." if len(points) < 50 else None)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if keys:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_learning_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], path: Path,
                         metric: str = "ndcg@10", title: str = "validation NDCG@10") -> Path | None:
    """Validation ``metric`` against epochs (left) and training seconds (right), one line per learned model.

    ``curves``: ``{name: [{"epoch", "seconds", metric}, ...]}``; the legend sits outside the axes so that it
    never hides a curve.
    """
    curves = {name: [c for c in curve if isinstance(c.get(metric), (int, float))] for name, curve in curves.items()}
    curves = {name: curve for name, curve in curves.items() if curve}
    if not curves:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for name, curve in curves.items():
        values = [c[metric] for c in curve]
        marker = "." if len(curve) < 60 else None
        axes[0].plot([c["epoch"] for c in curve], values, marker=marker, label=name)
        if all(isinstance(c.get("seconds"), (int, float)) for c in curve):
            axes[1].plot([c["seconds"] for c in curve], values, marker=marker, label=name)
    axes[0].set(xlabel="epoch", ylabel=f"validation {metric.replace('ndcg', 'NDCG').replace('recall', 'Recall')}",
                title=title)
    axes[1].set(xlabel="training seconds (evaluation excluded)", title="against training time")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_codebook_usage(usage: Sequence[float], perplexity: Sequence[float] | None, path: Path) -> Path | None:
    """Bar chart: share of codewords used at each SID level (and perplexity as text)."""
    if not usage:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    levels = [f"level {i + 1}" for i in range(len(usage))]
    bars = ax.bar(levels, [100 * u for u in usage], color="#4c72b0")
    for i, bar in enumerate(bars):
        label = f"{100 * usage[i]:.0f}%"
        if perplexity is not None and i < len(perplexity):
            label += f"\nppl {perplexity[i]:.0f}"
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), label, ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 115)
    ax.set_ylabel("codewords used (%)")
    ax.set_title("Codebook usage per SID level")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_recall_at_k(rows: Mapping[str, Mapping[str, float]], path: Path) -> Path | None:
    """Grouped bars of Recall@K and NDCG@K per system."""
    keys = [k for k in METRIC_ORDER[:4] if any(k in {m.lower() for m in v} for v in rows.values())]
    if not rows or not keys:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(rows) + 2), 3.8))
    width = 0.8 / len(keys)
    names = list(rows)
    for j, key in enumerate(keys):
        values = [{m.lower(): v for m, v in rows[n].items()}.get(key, 0.0) for n in names]
        ax.bar([i + j * width for i in range(len(names))], values, width, label=key)
    ax.set_xticks([i + width * (len(keys) - 1) / 2 for i in range(len(names))], names)
    ax.set_ylabel("test metric")
    ax.set_title("Recall@K / NDCG@K (full ranking, test split)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def write_report(
    run_dir: str | Path,
    *,
    metrics: Mapping[str, Mapping[str, float]],
    data_stats: Mapping[str, Any] | None = None,
    sid_stats: Mapping[str, Any] | None = None,
    training_logs: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    learning_curves: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    settings: Mapping[str, Any] | None = None,
    timings: Mapping[str, float] | None = None,
) -> Path:
    """Write ``run_dir/report.md`` and ``run_dir/plots/*.png``; returns the report path."""
    run_dir = Path(run_dir)
    plots = run_dir / "plots"
    made = {
        "training curves": plot_training_curves(training_logs or {}, plots / "training_curves.png"),
        "codebook usage": plot_codebook_usage(
            (sid_stats or {}).get("codebook_usage", []), (sid_stats or {}).get("perplexity"),
            plots / "codebook_usage.png"),
        "Recall@K": plot_recall_at_k(metrics, plots / "recall_at_k.png"),
        "learning curves": plot_learning_curves(learning_curves or {}, plots / "learning_curves.png"),
    }
    lines = [f"# hf-simcit run report: {run_dir.name}", ""]
    if data_stats:
        lines += [
            "## Data",
            "",
            f"- data set: {data_stats.get('dataset')} ({data_stats.get('source')})",
            f"- users {data_stats.get('users'):,}, items {data_stats.get('items'):,}, "
            f"interactions {data_stats.get('interactions'):,}; leave-one-out, full ranking over all items",
            "",
        ]
    lines += ["## Test metrics", "", format_metrics_table(metrics), ""]
    if sid_stats:
        lines += ["## Semantic IDs", ""]
        for key, value in sid_stats.items():
            if isinstance(value, float):
                value = f"{value:.4f}"
            elif isinstance(value, (list, tuple)):
                value = ", ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in value)
            lines.append(f"- {key}: {value}")
        lines.append("")
    if timings:
        lines += ["## Time per stage", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in timings.items()]
        lines.append("")
    if settings:
        lines += ["## Settings", "", "```json", json.dumps(settings, indent=2, default=str), "```", ""]
    plot_lines = [f"![{name}](plots/{path.name})" for name, path in made.items() if path is not None]
    if plot_lines:
        lines += ["## Plots", "", *plot_lines, ""]
    report = run_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
