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

from .errors import SimCITInputError
from .utils.serialization import read_json

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


LOSS_PREFIXES = ("train_", "validation_", "eval_")


def loss_family(key: str) -> tuple[str, str]:
    """``("contrastive_loss", "validation")`` of ``"validation_contrastive_loss"``; ``("loss", "train")`` of
    ``"loss"``: one panel per family, one line per split."""
    for prefix in LOSS_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):], prefix[:-1]
    return key, "train"


def plot_training_curves(logs: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> Path | None:
    """One panel per stage and loss family (total, contrastive, per modality, ...), training and validation
    lines in it, against ``step``; a stage's many losses never share one axis and legend."""
    panels: list[tuple[str, str, dict[str, list[tuple[float, float]]]]] = []
    for name, log in logs.items():
        families: dict[str, dict[str, list[tuple[float, float]]]] = {}
        keys = sorted({k for row in log for k, v in row.items() if "loss" in k and isinstance(v, (int, float))})
        for key in keys:
            points = [(row.get("step", i), row[key]) for i, row in enumerate(log)
                      if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])]
            family, split = loss_family(key)
            if points:
                families.setdefault(family, {})[split] = points
        # the total first, then the contrastive sum, per-modality terms, regularisers last
        families = dict(sorted(families.items(), key=lambda kv: (kv[0] != "loss", kv[0] != "contrastive_loss",
                                                                   "diversity" in kv[0], kv[0])))
        panels += [(name, family, lines) for family, lines in families.items()]
    if not panels:
        return None
    plt = _plt()
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.2 * rows), squeeze=False)
    styles = {"train": {"color": "#4c72b0"}, "validation": {"color": "#dd8452", "linestyle": "--"},
              "eval": {"color": "#dd8452", "linestyle": "--"}}
    for ax, (name, family, lines) in zip(axes.flat, panels):
        for split, points in lines.items():
            ax.plot(*zip(*points), label=split, marker="." if len(points) < 50 else None, **styles[split])
        ax.set_title(f"{name}: {family.replace('_', ' ')}", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
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
            label += f"\nperplexity {perplexity[i]:.0f}"
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
    """Horizontal grouped bars of Recall@K and NDCG@K per system: long system names stay readable, and every
    bar carries its value (a row of zeros shows as ``0``, not as a gap)."""
    import textwrap

    keys = [k for k in METRIC_ORDER[:4] if any(k in {m.lower() for m in v} for v in rows.values())]
    if not rows or not keys:
        return None
    plt = _plt()
    names = list(rows)
    height = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(9, 1.0 + 0.28 * len(keys) * len(names) + 0.25 * len(names)))
    largest = max([{m.lower(): v for m, v in rows[n].items()}.get(k, 0.0) for n in names for k in keys] + [1e-9])
    for j, key in enumerate(keys):
        values = [{m.lower(): v for m, v in rows[n].items()}.get(key, 0.0) for n in names]
        positions = [i + (j - (len(keys) - 1) / 2) * height for i in range(len(names))]
        label = key.replace("recall", "Recall").replace("ndcg", "NDCG")
        ax.barh(positions, values, height, label=label)
        for y, value in zip(positions, values):
            ax.text(value + largest * 0.01, y, f"{value:.3f}" if value else "0", va="center", fontsize=7)
    ax.set_yticks(range(len(names)), [textwrap.fill(n, 28) for n in names], fontsize=8)
    ax.invert_yaxis()  # first system on top, as in the table
    ax.set_xlim(0, largest * 1.15)
    ax.set_xlabel("test metric (full ranking)")
    ax.set_title("Recall@K / NDCG@K on the test split")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def history_baseline_note(stats: Mapping[str, int], dataset: str | None = None, split: str = "test") -> str:
    """Why the ``history`` baseline scores what it scores (:func:`hf_simcit.baselines.popularity.
    repeat_statistics` of the evaluated ``split``), as one sentence for the report."""
    users, repeats, full, k = stats["users"], stats["repeat_targets"], stats["full_histories"], stats["k"]
    share = repeats / users if users else 0.0
    text = (f"history baseline: {repeats:,} of {users:,} {split} targets ({share:.1%}) are items already in the "
            f"user's history, and {full:,} of {users:,} histories hold at least {k} distinct items, so their "
            f"top {k} is the user's own past items only")
    if repeats == 0:
        why = " (a user rates a movie once)" if dataset == "ml-100k" else ""
        text += f"; with no repeat consumption in this data set{why} the row is zero by construction, not a bug"
    return text + "."


BASELINE_ROWS = {
    "sasrec": "SASRec (same split, own early stopping)",
    "history": "history: the user's most frequent items (no training)",
    "popularity": "popularity: most frequent training targets (no training)",
}


def generator_row(model_name_or_path: str | None, hybrid_weight: float = 0.0, curve: bool = False) -> str:
    """The generator's row name in the metrics table, or (``curve``) its learning curve's. With a hybrid weight
    the test figures rank the beam's candidates by the hybrid with the dense head, while the validation curve
    that chose the checkpoint is the beam's own order: the names say which is which."""
    name = f"SimCIT SIDs + {model_name_or_path or 'Llama from config'}"
    if not hybrid_weight:
        return name
    return f"{name} (beam order)" if curve else f"{name}, hybrid with its dense head (W {hybrid_weight:g})"


def metrics_rows(run_dir: Path, generator: str, baselines: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """The metrics table of a run: the generator's ``eval/metrics.json`` then each saved baseline asked for."""
    metrics = read_json(run_dir / "eval" / "metrics.json")
    if metrics is None:
        raise SimCITInputError(f"{run_dir / 'eval' / 'metrics.json'} is missing; run the evaluate stage first")
    rows = {generator: metrics}
    for name, label in BASELINE_ROWS.items():
        found = read_json(run_dir / "baselines" / f"{name}.json")
        if found is not None and name in baselines:
            rows[label] = found
    return rows


def sid_rows(run_dir: Path, invalid_items: Any) -> dict[str, Any]:
    """The report's Semantic IDs section, from ``quantizer/sid_assignment.json`` (unknown entries left out)."""
    sid_stats = read_json(run_dir / "quantizer" / "sid_assignment.json") or {}
    rows = {
        "items": sid_stats.get("num_items"),
        "SID levels (incl. disambiguation)": sid_stats.get("num_levels"),
        "codebook sizes": sid_stats.get("codebook_sizes"),
        "raw collision rate (before resolution)": sid_stats.get("raw_collision_rate"),
        "codebook_usage": sid_stats.get("usage"),
        "perplexity": sid_stats.get("perplexity"),
        "items with a unique SID after resolution": sid_stats.get("unique_share"),
        "invalid generated items": invalid_items,
    }
    return {k: v for k, v in rows.items() if v is not None}


def learning_curves(run_dir: Path, generator: str) -> dict[str, list[dict[str, Any]]]:
    """Validation NDCG@10 per epoch and training second of the generator and SASRec, from their logs."""
    curves = {}
    log = (read_json(run_dir / "recommender" / "train_log.json") or {}).get("log", [])
    curves[generator] = [{"epoch": e.get("epoch"), "seconds": e.get("train_seconds"), "ndcg@10": e.get("ndcg@10")}
                         for e in log if "ndcg@10" in e and e.get("epoch") is not None]
    history = (read_json(run_dir / "baselines" / "sasrec.json") or {}).get("history") or []
    curves["SASRec"] = [{"epoch": h["epoch"] + 1, "seconds": h.get("seconds"), "ndcg@10": h.get("ndcg@10")}
                        for h in history]
    return curves


def history_note(run_dir: Path, dataset: str, split: str, max_examples: int | None, k: int) -> str:
    """:func:`history_baseline_note` counted on the evaluated rows of ``split`` (the first ``max_examples``)."""
    from .baselines.popularity import repeat_statistics
    from .data import load_prepared

    rows = load_prepared(run_dir / "data").splits[split]
    rows = rows[: len(rows) if max_examples is None else int(max_examples)]
    return history_baseline_note(repeat_statistics(rows["history"], rows["target"], k), dataset, split)


def training_logs(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The quantizer's and the generator's training logs (one plot panel per loss family)."""
    return {"quantizer": (read_json(run_dir / "quantizer" / "training_log.json") or {}).get("history", []),
            "recommender": (read_json(run_dir / "recommender" / "train_log.json") or {}).get("log", [])}


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
    notes: Sequence[str] = (),
) -> Path:
    """Write ``run_dir/report.md`` and ``run_dir/plots/*.png``; returns the report path.

    ``notes``: sentences shown under the metrics table (e.g. why a baseline's row is all zeros).
    """
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
    if notes:
        lines += [*(f"- {note}" for note in notes), ""]
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
