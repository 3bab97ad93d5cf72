"""Model, data set and Space cards: ``hub_cards/<kind>.md`` rendered with the run's facts.

Why ``ModelCard``/``DatasetCard.from_template``: the YAML header (model-index with the metrics, tags, data set
configs) is written by huggingface_hub itself, so the Hub reads it as it reads any other card.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SimCITInputError
from .facts import read_json


def _default_templates() -> Path:
    """``hub_cards/`` of the source tree (editable install), else the copy a wheel installs under ``share/``."""
    source = Path(__file__).resolve().parents[2] / "hub_cards"
    installed = Path(sys.prefix) / "share" / "hf-simcit" / "hub_cards"
    return source if source.is_dir() or not installed.is_dir() else installed


DEFAULT_TEMPLATES = _default_templates()
METRIC_KINDS = ("recall", "hit", "hr", "ndcg", "precision", "mrr")


def metric_label(name: str) -> str:
    """``ndcg@10`` -> ``NDCG@10``: the name a card shows."""
    base, _, k = name.lower().partition("@")
    label = {"recall": "Recall", "ndcg": "NDCG", "mrr": "MRR", "hit": "HitRate", "hr": "HitRate",
             "precision": "Precision"}.get(base, base)
    return f"{label}@{k}" if k else label


def metric_order(name: str) -> tuple:
    """Recall@5, NDCG@5, Recall@10, NDCG@10, ..., MRR: grouped by K as in the run report."""
    base, _, k = name.lower().partition("@")
    kind = METRIC_KINDS.index(base) if base in METRIC_KINDS else len(METRIC_KINDS)
    return (int(k) if k.isdigit() else 10**9, kind, name)


def eval_results(facts: Mapping[str, Any], dataset_repo: str | None) -> list:
    """The run's metrics as ``EvalResult`` entries of a model card's model-index."""
    from huggingface_hub import EvalResult

    return [
        EvalResult(
            task_type="text-generation", task_name="Sequential recommendation (full ranking, leave-one-out)",
            dataset_type=dataset_repo or str(facts["dataset"]), dataset_name=str(facts["dataset"]),
            dataset_split=facts["split"], metric_type=name.lower(), metric_name=metric_label(name),
            metric_value=round(float(value), 6),
        )
        for name, value in sorted(facts["metrics"].items(), key=lambda kv: metric_order(kv[0]))
    ]


def metrics_table(metrics: Mapping[str, float]) -> str:
    """A one-row Markdown table of the metrics (or a sentence saying there are none)."""
    if not metrics:
        return "No evaluation results were found in `eval/metrics.json` for this run."
    names = sorted(metrics, key=metric_order)
    return "\n".join([
        "| " + " | ".join(metric_label(n) for n in names) + " |",
        "|" + "---|" * len(names),
        "| " + " | ".join(f"{metrics[n]:.4f}" for n in names) + " |",
    ])


def render(kind: str, card_data: Any, templates_dir: Path | None, **kwargs: Any) -> str:
    """Render ``hub_cards/<kind>.md`` with ``ModelCard``/``DatasetCard``/``SpaceCard.from_template``."""
    from huggingface_hub import DatasetCard, ModelCard, SpaceCard

    template = Path(templates_dir or DEFAULT_TEMPLATES) / f"{kind}.md"
    if not template.is_file():
        raise SimCITInputError(f"card template {template} is missing (expected hub_cards/{kind}.md)")
    card_class = {"dataset": DatasetCard, "space": SpaceCard}.get(kind, ModelCard)
    return str(card_class.from_template(card_data, template_path=str(template), **kwargs))


def _listing(values: Sequence[Any] | None) -> str | None:
    return ", ".join(str(v) for v in values) if values else None


def sid_summary(folder: Path) -> dict[str, Any]:
    """The SID configuration of a quantizer folder (levels, codebooks, an example item and its SID)."""
    config = read_json(folder / "config.json") or {}
    table = read_json(folder / "sid_table.json") or {}
    codes = table.get("codes") or []
    item_ids = table.get("item_ids") or []
    example_item = item_ids[0] if item_ids else None
    example_sid = "".join(f"<{chr(ord('a') + level)}_{code}>" for level, code in enumerate(codes[0])) if codes else ""
    assignment = read_json(folder / "sid_assignment.json") or {}
    return {
        "resolve": assignment.get("resolve"),
        "raw_collision_rate": assignment.get("raw_collision_rate"),
        "model_type": config.get("model_type", "unknown"),
        "num_levels": table.get("num_levels", config.get("num_levels")),
        "codebook_sizes": _listing(table.get("codebook_sizes")),
        "quantizer_levels": config.get("num_levels"),
        "codebook_size": config.get("codebook_size"),
        "latent_dim": config.get("latent_dim"),
        "modalities": _listing(config.get("modality_names")),
        "num_items": len(item_ids) or None,
        "example_item": example_item,
        "example_sid": example_sid,
    }


def feature_rows(run_dir: Path, columns: Sequence[str]) -> list[dict[str, Any]]:
    """One row per embedding column: modality, size, coverage and how it was computed (``features.json``)."""
    info = read_json(run_dir / "features" / "features.json") or {}
    arguments = info.get("arguments") or {}
    how = {
        "text": f"{arguments.get('text_encoder') or 'all-MiniLM-L6-v2'} on the item text, mean-pooled, L2-normalised",
        "cf": ("SPPMI-SVD of the items that follow each other within "
               f"{arguments.get('cf_window')} steps of the training sequences (no validation/test items)"
               if arguments.get("cf_method") == "sequential" else
               f"{arguments.get('cf_method', 'svd')} of the training interactions only (no validation/test items)"),
        "collaborative": f"{arguments.get('cf_method', 'svd')} of the training interactions only",
        "geo": "multi-scale Fourier features of latitude/longitude on the sphere",
        "image": f"{arguments.get('image_encoder') or 'a vision encoder'} on the item image",
    }
    rows = []
    for modality, details in (info.get("modalities") or {}).items():
        rows.append({"column": details.get("column", f"{modality}_embedding"), "modality": modality,
                     "dim": details.get("dim"), "present": details.get("present"), "num_items": details.get("items"),
                     "how": how.get(modality, modality)})
    lgmd = read_json(run_dir / "lgmd" / "lgmd.json")
    if lgmd is not None:  # the collaborative column written by the LGMD stage (hf-simcit lgmd)
        options = lgmd.get("arguments") or {}
        column = options.get("embedding_column", "cf_embedding")
        rows = [row for row in rows if row["column"] != column]
        rows.append({"column": column, "modality": column.removesuffix("_embedding"), "dim": lgmd.get("rank"),
                     "present": lgmd["num_items"] - lgmd.get("items_without_interactions", 0),
                     "num_items": lgmd.get("num_items"),
                     "how": f"LGMD (rank {lgmd.get('rank')}, learned sparse user and item graphs) of the training "
                            "interactions only (no validation/test items)" if lgmd.get("matrix", "interactions") ==
                     "interactions" else f"LGMD (rank {lgmd.get('rank')}, learned sparse item graphs) of the shifted "
                     f"PPMI of the items that follow each other within {options.get('window')} steps of the training "
                     "sequences (no validation/test items)"})
    known = {row["column"] for row in rows}
    rows += [{"column": c, "modality": c.removesuffix("_embedding"), "dim": None, "present": None, "num_items": None,
              "how": "see the hf-simcit features stage"} for c in columns if c not in known]
    return rows


__all__ = ["DEFAULT_TEMPLATES", "eval_results", "feature_rows", "metric_label", "metric_order", "metrics_table",
           "render", "sid_summary"]
