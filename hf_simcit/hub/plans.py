"""Four plan builders: each checks one artifact of a run folder and prepares its repo's commit and card.

Why every plan is complete before any network call: a bad run folder (a pickle, a missing tokenizer, a base
model that cannot be named) pushes nothing. Only safetensors/JSON/text/parquet files travel; pickle files or
anything that looks like one are refused (:mod:`hf_simcit.safe_files`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SimCITInputError
from ..safe_files import check_safe_files
from .cards import eval_results, feature_rows, metrics_table, render, sid_summary
from .commit import Plan
from .facts import FEATURE_OPTIONS_FILE, feature_options, is_local, item_table_folder, read_json

SKIPPED_NAMES = {"README.md", "__pycache__", ".DS_Store", ".gitattributes", "checkpoints"}
MAX_SHARD_BYTES = 500 * 1024 * 1024  # as datasets' push_to_hub default
REMOTE_CODE_FILES = ("configuration_simcit.py", "modeling_simcit.py", "tokenization_simcit.py", "errors.py")


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


def _check_remote_code(folder: Path, files: Mapping[str, Any]) -> None:
    """Refuse a SimCIT folder that would not load with ``trust_remote_code`` where hf_simcit is absent.

    ``save_pretrained`` writes ``auto_map`` and copies the module files (the classes register for their Auto
    class where they are defined), so only a folder saved by an older hf-simcit or edited by hand lacks them.
    """
    config = read_json(folder / "config.json") or {}
    tokenizer_config = read_json(folder / "tokenizer_config.json") or {}
    missing = [name for name in REMOTE_CODE_FILES if name not in files]
    if config.get("auto_map") is None:
        missing.append("auto_map in config.json")
    if "AutoTokenizer" not in (tokenizer_config.get("auto_map") or {}):
        missing.append("auto_map in tokenizer_config.json")
    if missing:
        raise SimCITInputError(f"quantizer: {folder} lacks {', '.join(missing)}, so it would not load with "
                               "trust_remote_code; load it and save it again with save_pretrained")


def plan_quantizer(run_dir: Path, repo_id: str, *, facts: Mapping[str, Any], dataset_repo: str | None,
                   templates_dir: Path | None = None, license: str | None = None) -> Plan:  # noqa: A002
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
    sid = sid_summary(folder)
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1], library_name="transformers", license=license,
        tags=["recommendation", "semantic-ids", "simcit", "generative-recommendation", "hf-simcit"],
        datasets=[dataset_repo] if dataset_repo else None,
        eval_results=eval_results(facts, dataset_repo) or None,
    )
    card = render("quantizer", card_data, templates_dir, repo_id=repo_id, facts=facts, sid=sid,
                  dataset_repo=dataset_repo, metrics_table=metrics_table(facts["metrics"]))
    return Plan("quantizer", repo_id, "model", files, card, "Upload SimCIT quantizer and SID tokenizer")


def resolve_base_model(run_dir: Path, base_model: str | None) -> tuple[str | None, Path | None]:
    """The adapter's base model: ``(hub_id, None)`` if it is on the Hub, ``(None, local_dir)`` to push it.

    ``base_model`` (``--base-model``) wins; otherwise the recorded one (``recommender_config.json``, else
    ``adapter_config.json``). A local checkpoint, or the bundled SmolLM2 (a de-quantised GGUF whose weights
    differ from any Hub repo's), cannot be named by a Hub id, so it must be pushed beside the adapter.
    """
    folder = run_dir / "recommender"
    if base_model:
        return base_model, None
    config = read_json(folder / "recommender_config.json") or {}
    recorded = config.get("base_model") or (read_json(folder / "adapter_config.json") or {}).get(
        "base_model_name_or_path")
    if not recorded:
        raise SimCITInputError(f"adapter: no base model recorded in {folder}; pass --base-model ORG/NAME")
    from ..recommender.modeling import SMOLLM2_ALIASES, resolve_model_path

    if recorded.lower() in SMOLLM2_ALIASES:  # the bundled de-quantised GGUF: pushed as -base
        cache_dir = (config.get("model_args") or {}).get("cache_dir")
        return None, Path(resolve_model_path(recorded, cache_dir))
    if is_local(recorded):
        path = Path(recorded).expanduser()
        if not (path / "config.json").is_file():
            raise SimCITInputError(f"adapter: base model {recorded} is a local path without config.json; pass "
                                   "--base-model ORG/NAME naming the Hub repo it was trained from")
        return None, path
    return recorded, None


def plan_base(base_dir: Path, repo_id: str, *, adapter_repo: str, templates_dir: Path | None = None,
              license: str | None = None) -> Plan:  # noqa: A002
    """A local base checkpoint (e.g. the de-quantised SmolLM2) as a model repo the adapter can name."""
    from huggingface_hub import ModelCardData

    files = collect_folder(base_dir, "base model")
    if "config.json" not in files or not any(name.endswith(".safetensors") for name in files):
        raise SimCITInputError(f"base model: {base_dir} needs config.json and *.safetensors weights")
    config = read_json(base_dir / "config.json") or {}
    card_data = ModelCardData(model_name=repo_id.split("/")[-1], library_name="transformers", license=license,
                              pipeline_tag="text-generation", tags=["hf-simcit", "base-model"])
    card = render("base", card_data, templates_dir, repo_id=repo_id, adapter_repo=adapter_repo,
                  source=str(base_dir), architectures=config.get("architectures"),
                  model_type=config.get("model_type"))
    return Plan("base", repo_id, "model", dict(files), card, "Upload the base model of the SimCIT recommender")


def plan_adapter(run_dir: Path, repo_id: str, *, facts: Mapping[str, Any], quantizer_repo: str | None,
                 dataset_repo: str | None, base_model: str | None = None, templates_dir: Path | None = None,
                 license: str | None = None) -> Plan:  # noqa: A002
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
        if not base or is_local(base):
            raise SimCITInputError(f"adapter: base model {base!r} is not a Hub repo id; pass --base-model ORG/NAME")
        adapter_config = read_json(folder / "adapter_config.json")
        adapter_config["base_model_name_or_path"] = base
        files["adapter_config.json"] = (json.dumps(adapter_config, indent=2, sort_keys=True) + "\n").encode()
        recommender_config = read_json(folder / "recommender_config.json")
        if recommender_config is not None:  # so that load_recommender(snapshot) finds the same base
            recommender_config["base_model"] = base
            files["recommender_config.json"] = (json.dumps(recommender_config, indent=2) + "\n").encode()
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1], library_name="peft" if is_adapter else "transformers",
        base_model=base, license=license, pipeline_tag="text-generation",
        tags=["recommendation", "semantic-ids", "simcit", "generative-recommendation", "hf-simcit"]
        + (["lora"] if is_adapter else []),
        datasets=[dataset_repo] if dataset_repo else None,
        eval_results=eval_results(facts, dataset_repo) or None,
    )
    config = read_json(folder / "recommender_config.json") or {}
    card = render("adapter", card_data, templates_dir, repo_id=repo_id, facts=facts, is_adapter=is_adapter,
                  base_model=base, quantizer_repo=quantizer_repo, dataset_repo=dataset_repo,
                  num_sid_tokens=len(config.get("sid_token_ids") or []) or None,
                  dense_head="dense_item_head.safetensors" in files, hybrid_weight=config.get("hybrid_weight") or 0,
                  metrics_table=metrics_table(facts["metrics"]))
    message = "Upload SimCIT recommender " + ("LoRA adapter" if is_adapter else "model")
    return Plan("adapter", repo_id, "model", files, card, message)


def _load_table(path: Path):
    from datasets import Dataset, DatasetDict, load_from_disk

    loaded = load_from_disk(str(path))
    if isinstance(loaded, Dataset):
        loaded = DatasetDict({"train": loaded})
    return loaded


def plan_dataset(run_dir: Path, repo_id: str, *, facts: Mapping[str, Any], templates_dir: Path | None = None,
                 workdir: Path, license: str | None = None) -> Plan:  # noqa: A002
    """The prepared splits (config ``default``) and the item table with its embedding columns (``items``).

    Written as parquet shards in the same layout and README metadata (``configs``, ``dataset_info``) as
    ``DatasetDict.push_to_hub``, but committed together with the card and ``features.json`` in one commit:
    ``push_to_hub`` makes one commit per config and writes its own card, so it cannot serve that goal.
    """
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
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
    # the Hub's documented ``configs`` field, as push_to_hub writes it
    card_data["configs"] = [{"config_name": name, **meta} for name, meta in sorted(metadata.items())]
    embedding_columns = [c for c in summaries.get("items", {}).get("columns", {}) if c.endswith("_embedding")]
    card = render("dataset", card_data, templates_dir, repo_id=repo_id, facts=facts, summaries=summaries,
                  embedding_columns=embedding_columns, feature_rows=feature_rows(run_dir, embedding_columns))
    return Plan("dataset", repo_id, "dataset", files, card, "Upload hf-simcit prepared data set")


def plan_space(repo_id: str, *, source: str, repo_ids: Mapping[str, str], facts: Mapping[str, Any],
               templates_dir: Path | None = None, license: str | None = None) -> Plan:  # noqa: A002
    """A Gradio Space running ``hf-simcit app`` on the pushed quantizer, recommender and data set repos."""
    from huggingface_hub import SpaceCardData

    from ..app.space import APP_FILE, space_files

    files = space_files(source, repo_ids)
    sdk_version = next((r.split("==")[1] for r in files["requirements.txt"].decode().splitlines()
                        if r.startswith("gradio==")), None)
    card_data = SpaceCardData(title=f"{facts['dataset']} recommender (hf-simcit)", sdk="gradio",
                              sdk_version=sdk_version, app_file=APP_FILE, license=license,
                              models=[repo_ids["quantizer"], repo_ids["adapter"]], datasets=[repo_ids["dataset"]],
                              tags=["recommendation", "semantic-ids", "hf-simcit"])
    card = render("space", card_data, templates_dir, repo_id=repo_id, facts=facts, repo_ids=repo_ids,
                  source=source)
    return Plan("space", repo_id, "space", files, card, "Upload the hf-simcit demo app",
                 create_options={"space_sdk": "gradio"})


__all__ = ["collect_folder", "plan_adapter", "plan_base", "plan_dataset", "plan_quantizer", "plan_space",
           "resolve_base_model"]
