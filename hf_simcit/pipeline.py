"""The whole job in one call: ``hf-simcit run recipes/<data>/pipeline.yaml``.

prepare -> features -> LGMD collaborative embeddings -> SimCIT quantizer -> SIDs + tokenizer -> LLM
-> evaluation (and SASRec on the same split) -> report -> (optionally) the Hub.

Every stage is the library function its own subcommand calls; this module only wires their inputs and
outputs into one run folder::

    RUN/data                  prepared splits + item table + stats.json          (hf-simcit prepare)
    RUN/features              item table with text/geo/... embedding columns     (hf-simcit features)
    RUN/lgmd                  LGMD transform, lgmd.json, items/ (+ cf_embedding) (hf-simcit lgmd)
    RUN/quantizer             SimCITQuantizer + SimCITTokenizer (one Hub repo)   (train-quantizer, assign)
    RUN/recommender           LLM (or LoRA adapter) + extended tokenizer         (hf-simcit train)
    RUN/eval/metrics.json     test metrics, full ranking                         (hf-simcit evaluate)
    RUN/baselines/sasrec.json SASRec on the same split
    RUN/report.md, RUN/plots  metrics table, SID statistics, timings, PNG plots
    RUN/pipeline.json         what ran, with which settings, how long

Re-running the same command resumes: a stage whose settings (and upstream stages) are unchanged and that
finished is skipped; an interrupted training stage continues from its last checkpoint; a stage whose
settings changed runs again from scratch, and so does everything after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import SimCITInputError

BASELINES = ("sasrec", "history", "popularity")
STAGES = ("prepare", "features", "lgmd", "quantizer", "assign", "recommender", "evaluate", "baselines",
          "report", "push")
STATE_FILE = "pipeline.json"
RESUMABLE = ("quantizer", "recommender")  # continue from their checkpoints after an interruption
ALWAYS_RUN = ("report", "push")  # cheap, or meant to happen on every call: never skipped as "done earlier"


@dataclass
class PipelineArguments:
    """A ``pipeline.yaml``: the data set, the run folder, the stage recipes and per-stage overrides.

    Stage recipe paths are relative to the pipeline file. Input/output paths inside the stage recipes are
    replaced by the run folder's layout, so one recipe serves any run folder.
    """

    dataset: str = field(metadata={"help": "ml-100k, beauty, scientific, yelp, foursquare-nyc, s3rec, lcrec, table"})
    data_dir: str | None = field(default=None, metadata={"help": "raw data folder/file (null: built-in for ml-100k)"})
    run_dir: str | None = field(default=None, metadata={"help": "run folder (default runs/<dataset>)"})
    prepare: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "hf_simcit.data.PrepareConfig options (k-core, max_history, train_examples, ...)"})
    features_recipe: str | None = field(default="features.yaml", metadata={"help": "FeaturesArguments YAML"})
    lgmd_recipe: str | None = field(default="lgmd.yaml", metadata={
        "help": "LGMDArguments YAML; null: the cf modality comes from the features stage (cf_method)"})
    quantizer_recipe: str = field(default="quantizer.yaml", metadata={"help": "QuantizerTrainingArguments YAML"})
    recommender_recipe: str = field(default="recommender.yaml", metadata={"help": "recommender YAML"})
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={
        "help": "per stage (features, lgmd, quantizer, recommender, sasrec): keys replacing the recipe's"})
    resolve: str = field(default="level", metadata={"help": "SID collision resolution: level, sinkhorn"})
    disambiguation_order: str = field(default="index", metadata={
        "help": "with resolve=level, how items sharing a SID are numbered: index, random (seed 0), distance"})
    eval_split: str = "test"
    eval_num_beams: int = 20
    eval_ks: list[int] = field(default_factory=lambda: [5, 10])
    eval_max_examples: int | None = field(default=None, metadata={"help": "null: every user of the split"})
    baselines: list[str] = field(default_factory=lambda: ["sasrec", "history", "popularity"], metadata={
        "help": "baselines on the same split: sasrec (trained to its own early-stopping point), history (the user's "
                "most frequent history items) and popularity (most frequent training targets)"})
    stages: list[str] | None = field(default=None, metadata={"help": "run only these stages (default: all)"})
    force: bool = field(default=False, metadata={"help": "re-run stages even if they finished"})
    push_to_hub: str | None = field(default=None, metadata={"help": "ORG/NAME prefix to push the artifacts to"})
    recipe_dir: str | None = field(default=None, metadata={"help": "where stage recipes live (set by the loader)"})

    def __post_init__(self):
        if self.run_dir is None:
            self.run_dir = str(Path("runs") / self.dataset)
        unknown = [s for s in (self.stages or []) if s not in STAGES]
        if unknown:
            raise SimCITInputError(f"unknown stage {unknown[0]!r}; stages are {', '.join(STAGES)}")
        known = {"features", "lgmd", "quantizer", "recommender", "sasrec"}
        bad = [s for s in self.overrides if s not in known]
        if bad:
            raise SimCITInputError(f"overrides: unknown stage {bad[0]!r}; use {', '.join(sorted(known))} "
                                   "(prepare settings: the recipe's prepare: mapping, or --set prepare.KEY=VALUE)")
        if self.resolve not in ("level", "sinkhorn"):
            raise SimCITInputError(f"resolve must be level or sinkhorn, got {self.resolve!r}")
        if self.disambiguation_order not in ("index", "random", "distance"):
            raise SimCITInputError(
                f"disambiguation_order must be index, random or distance, got {self.disambiguation_order!r}")
        unknown_baselines = [b for b in self.baselines if b not in BASELINES]
        if unknown_baselines:
            raise SimCITInputError(
                f"unknown baseline {unknown_baselines[0]!r}; available: {', '.join(BASELINES)}")


def load_pipeline(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> PipelineArguments:
    """Read ``pipeline.yaml`` into :class:`PipelineArguments` (``HfArgumentParser``); ``overrides`` win.

    ``overrides`` keys are pipeline fields, or ``stage.key`` for one key of a stage recipe
    (e.g. ``{"quantizer.max_steps": 50}``).
    """
    from .data import PrepareConfig
    from .utils.recipes import check_recipe_values, mapping_fields, read_recipe, recipe_dataclasses

    path = Path(path)
    raw = read_recipe(path, sections=(), mappings=mapping_fields(PipelineArguments), what="pipeline recipe")
    raw.setdefault("recipe_dir", str(path.parent))
    raw["overrides"] = {stage: dict(values or {}) for stage, values in (raw.get("overrides") or {}).items()}
    raw["prepare"] = dict(raw.get("prepare") or {})
    for key, value in (overrides or {}).items():
        if "." in key:
            stage, _, name = key.partition(".")
            # prepare settings live in the recipe's prepare: mapping, the other stages' in overrides:
            (raw["prepare"] if stage == "prepare" else raw["overrides"].setdefault(stage, {}))[name] = value
        else:
            raw[key] = value
    known = {f.name for f in fields(PipelineArguments)}
    unknown = [key for key in raw if key not in known]
    if unknown:
        raise SimCITInputError(f"{path}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(known))})")
    if "dataset" not in raw:
        raise SimCITInputError(f"{path}: the pipeline needs a 'dataset'")
    raw["prepare"] = check_recipe_values((PrepareConfig,), raw["prepare"], f"{path}: prepare")
    (args,) = recipe_dataclasses((PipelineArguments,), raw, str(path))
    return args


# --------------------------------------------------------------------------------------------- recipes
def _recipe(args: PipelineArguments, name: str | None, types: tuple[type, ...]) -> dict[str, Any]:
    """A stage recipe (arguments ``types``) as a flat dict (sections such as ``model:``/``data:``/``training:``
    are merged)."""
    from .utils.recipes import mapping_fields, read_recipe

    if name is None:
        return {}
    path = Path(name) if Path(name).is_absolute() else Path(args.recipe_dir or ".") / name
    if not path.is_file():
        raise SimCITInputError(f"stage recipe {str(path)!r} does not exist (named in the pipeline recipe)")
    return read_recipe(path, mappings=mapping_fields(*types))


@dataclass
class StagePlan:
    """The resolved arguments of every stage for one run folder."""

    run: Path
    features: Any
    lgmd: Any | None
    quantizer: Any
    recommender: tuple[Any, Any, Any]
    sasrec: dict[str, Any]

    @property
    def quantizer_items(self) -> Path:
        return self.run / "lgmd" / "items" if self.lgmd is not None else self.run / "features"


def plan_stages(args: PipelineArguments) -> StagePlan:
    """Read every stage recipe, apply the pipeline's overrides and point all paths into the run folder."""
    from .features import FeaturesArguments
    from .lgmd.stage import LGMDArguments
    from .training.quantizer import QuantizerTrainingArguments
    from .training.recommender import (
        RecommenderDataArguments,
        RecommenderModelArguments,
        RecommenderTrainingArguments,
    )
    from .utils.recipes import recipe_dataclasses

    run = Path(args.run_dir)
    over = args.overrides
    values = _recipe(args, args.features_recipe, (FeaturesArguments,)) | over.get("features", {})
    values |= {"data": str(run / "data"), "output": str(run / "features")}
    (features,) = recipe_dataclasses((FeaturesArguments,), values, "features recipe")
    lgmd = None
    if args.lgmd_recipe:
        values = _recipe(args, args.lgmd_recipe, (LGMDArguments,)) | over.get("lgmd", {})
        values |= {"data": str(run / "data"), "items": str(run / "features"), "output": str(run / "lgmd")}
        (lgmd,) = recipe_dataclasses((LGMDArguments,), values, "lgmd recipe")
        # the collaborative modality comes from LGMD, as column lgmd.embedding_column
        features.modalities = [m for m in features.modalities if m != "cf"] or ["text"]
    plan = StagePlan(run, features, lgmd, None, None, dict(over.get("sasrec", {})))
    values = _recipe(args, args.quantizer_recipe, (QuantizerTrainingArguments,)) | over.get("quantizer", {})
    values |= {"features_path": str(plan.quantizer_items), "output_dir": str(run / "quantizer"),
               "checkpoint_dir": str(run / "quantizer_checkpoints")}
    (plan.quantizer,) = recipe_dataclasses((QuantizerTrainingArguments,), values, "quantizer recipe")
    recommender_types = (RecommenderModelArguments, RecommenderDataArguments, RecommenderTrainingArguments)
    values = _recipe(args, args.recommender_recipe, recommender_types) | over.get("recommender", {})
    values |= {"data_dir": str(run / "data"), "sid_dir": str(run / "quantizer"),
               "output_dir": str(run / "recommender"), "checkpoint_dir": str(run / "recommender_checkpoints")}
    plan.recommender = recipe_dataclasses(recommender_types, values, "recommender recipe")
    return plan


# --------------------------------------------------------------------------------------------- state
def _fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RunState:
    """``RUN/pipeline.json``: per stage its fingerprint, status and seconds (rewritten atomically)."""

    def __init__(self, run: Path):
        self.path = run / STATE_FILE
        self.stages: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()   # the heartbeat of a running stage writes too
        if self.path.is_file():
            try:
                self.stages = json.loads(self.path.read_text()).get("stages", {})
            except json.JSONDecodeError:
                self.stages = {}  # a damaged state file only costs re-running stages

    def done(self, stage: str, fingerprint: str) -> bool:
        entry = self.stages.get(stage, {})
        return entry.get("status") == "done" and entry.get("fingerprint") == fingerprint

    def started_with(self, stage: str) -> str | None:
        return self.stages.get(stage, {}).get("fingerprint")

    def earlier_seconds(self, stage: str, fingerprint: str) -> float:
        """Seconds an interrupted attempt of ``stage`` with these settings had run (its last heartbeat), 0 when
        the stage finished or ran with other settings: a resumed stage is timed over every attempt."""
        entry = self.stages.get(stage, {})
        if entry.get("status") != "running" or entry.get("fingerprint") != fingerprint:
            return 0.0
        return float(entry.get("seconds_so_far", 0.0))

    def update(self, stage: str, **entry: Any) -> None:
        with self._lock:
            self.stages[stage] = {**self.stages.get(stage, {}), **entry}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({"stages": self.stages}, indent=2, default=str))
            os.replace(tmp, self.path)


@contextlib.contextmanager
def _heartbeat(state: RunState, stage: str, earlier: float, every_s: float = 5.0) -> Iterator[Callable[[], float]]:
    """Record the running stage's seconds in ``pipeline.json`` every ``every_s`` seconds (what a resume adds
    when the process is killed); yields the function giving the stage's seconds over every attempt."""
    start = time.perf_counter()
    stop = threading.Event()

    def seconds() -> float:
        return round(earlier + time.perf_counter() - start, 2)

    def beat() -> None:
        while not stop.wait(every_s):
            state.update(stage, seconds_so_far=seconds())

    thread = threading.Thread(target=beat, name=f"pipeline-{stage}-heartbeat", daemon=True)
    thread.start()
    try:
        yield seconds
    except BaseException:    # interrupted (Ctrl-C, an error): the time so far, without waiting for a beat
        stop.set()
        thread.join()
        state.update(stage, seconds_so_far=seconds())
        raise
    stop.set()
    thread.join()


# --------------------------------------------------------------------------------------------- stages
def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _stage_prepare(args: PipelineArguments, plan: StagePlan) -> dict[str, Any]:
    from .data import prepare_dataset

    rec = prepare_dataset(args.dataset, data_dir=args.data_dir, **args.prepare)
    rec.save_to_disk(plan.run / "data")
    stats = rec.stats
    print(f"  {stats.get('users', rec.num_users):,} users, {rec.num_items:,} items, "
          f"{stats.get('interactions', 0):,} interactions; train/validation/test examples "
          f"{len(rec.splits['train']):,}/{len(rec.splits['validation']):,}/{len(rec.splits['test']):,}")
    return {}


def _stage_features(args: PipelineArguments, plan: StagePlan) -> dict[str, Any]:
    from .features import run_features

    run_features(plan.features)
    return {}


def _stage_lgmd(args: PipelineArguments, plan: StagePlan) -> dict[str, Any]:
    from .lgmd.stage import format_report, run_lgmd

    report = run_lgmd(plan.lgmd)
    print("  " + format_report(report).replace("\n", "\n  "))
    return {}


def _stage_quantizer(args: PipelineArguments, plan: StagePlan) -> dict[str, Any]:
    from .training.quantizer import train_quantizer

    result = train_quantizer(plan.quantizer)
    return {"best_step": result.best_step, "train_time_s": round(result.train_time_s, 2)}


def _stage_assign(args: PipelineArguments, plan: StagePlan) -> dict[str, Any]:
    from .quantizers.assignment import save_semantic_ids

    _, assignment = save_semantic_ids(plan.run / "quantizer", str(plan.quantizer_items), args.resolve,
                                      disambiguation_order=args.disambiguation_order)
    summary = assignment.summary()
    print(f"  {summary['num_items']:,} items: raw collision rate {summary['raw_collision_rate']:.2%}, codebook "
          f"usage {' / '.join(f'{u:.0%}' for u in summary['usage'])}, unique after '{summary['resolve']}' "
          f"{summary['unique_share']:.2%} ({summary['num_levels']} levels)")
    return {}


def _stage_recommender(args: PipelineArguments, plan: StagePlan) -> dict[str, Any]:
    from .training.recommender import train_recommender

    result = train_recommender(*plan.recommender)
    return {"best_step": result["best_step"], "final_step": result["final_step"],
            "best_validation": result["best_metrics"]}


def _stage_evaluate(args: PipelineArguments, plan: StagePlan) -> dict[str, Any]:
    from .training.evaluation import evaluate_saved_recommender

    metrics = evaluate_saved_recommender(
        str(plan.run / "recommender"), str(plan.run / "data"), split=args.eval_split, ks=tuple(args.eval_ks),
        num_beams=args.eval_num_beams, max_examples=args.eval_max_examples,
        output=str(plan.run / "eval" / "metrics.json"))
    print(f"  {args.eval_split}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                                 if "@" in k or k == "mrr") + f", invalid items {metrics['invalid_items']}")
    return {}


def _stage_baselines(args: PipelineArguments, plan: StagePlan) -> dict[str, Any]:
    from .baselines.popularity import evaluate_baseline, item_popularity
    from .data import load_prepared

    prepared = load_prepared(plan.run / "data")
    out_dir = plan.run / "baselines"
    out_dir.mkdir(parents=True, exist_ok=True)
    non_learned = [b for b in args.baselines if b != "sasrec"]
    if non_learned:
        popularity = item_popularity(prepared.splits["train"]["target"], prepared.num_items)
        for name in non_learned:
            metrics = evaluate_baseline(name, prepared.splits[args.eval_split], popularity, ks=tuple(args.eval_ks),
                                        max_examples=args.eval_max_examples)
            (out_dir / f"{name}.json").write_text(json.dumps(metrics, indent=2))
            print(f"  {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "@" in k))
    if "sasrec" in args.baselines:
        _train_sasrec_baseline(args, plan, prepared)
    return {}


def _train_sasrec_baseline(args: PipelineArguments, plan: StagePlan, prepared) -> None:
    from .baselines.sasrec import SASRecConfig, evaluate_sasrec, train_sasrec

    options = dict(plan.sasrec)
    # its own budget: epochs up to its cap with early stopping on validation (equal optimizer steps would be
    # unfair: a SASRec step costs a fraction of a generator step); max_steps only where a recipe sets it
    max_steps = options.pop("max_steps", None)
    config_fields = {f.name for f in fields(SASRecConfig)}
    unknown = sorted(set(options) - config_fields)
    if unknown:
        raise SimCITInputError(f"overrides.sasrec: unknown key {unknown[0]!r}")
    training = plan.recommender[2]
    options.setdefault("seed", training.seed)
    config = SASRecConfig(num_items=prepared.num_items, **options)
    start = time.perf_counter()
    # trained on the whole split (its training windows are rebuilt from train + validation + test), scored on
    # the evaluated rows: the first eval_max_examples of eval_split, as the generator's evaluate stage does
    model, result = train_sasrec(prepared.splits, config, ks=tuple(args.eval_ks), max_steps=max_steps, verbose=False)
    evaluated = prepared.splits[args.eval_split]
    if args.eval_max_examples is not None:
        evaluated = evaluated.select(range(min(len(evaluated), args.eval_max_examples)))
    test = evaluate_sasrec(model, evaluated, tuple(args.eval_ks), device=next(model.parameters()).device)
    metrics = {**test, "steps": result["steps"], "epochs": result["epochs"],
               "best_epoch": result["best_epoch"] + 1, "history": result.get("history"),   # epochs done at the best
               "train_s": result["train_s"], "wall_s": round(time.perf_counter() - start, 1),
               "config": asdict(config)}
    out = plan.run / "baselines" / "sasrec.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2, default=str))
    print(f"  SASRec ({result['epochs']} epochs, best after {result['best_epoch'] + 1}): " + ", ".join(
        f"{k} {v:.4f}" for k, v in test.items() if "@" in k))


def _stage_report(args: PipelineArguments, plan: StagePlan, state: RunState) -> dict[str, Any]:
    from .report import format_metrics_table, write_report

    run = plan.run
    metrics = _json(run / "eval" / "metrics.json")
    if metrics is None:
        raise SimCITInputError(f"{run / 'eval' / 'metrics.json'} is missing; run the evaluate stage first")
    model_args = plan.recommender[0]
    generator = model_args.model_name_or_path or "Llama from config"
    rows = {f"SimCIT SIDs + {generator}": metrics}
    sasrec = _json(run / "baselines" / "sasrec.json")
    if sasrec is not None and "sasrec" in args.baselines:
        rows["SASRec (same split, own early stopping)"] = sasrec
    for name, label in (("history", "history: the user's most frequent items (no training)"),
                        ("popularity", "popularity: most frequent training targets (no training)")):
        found = _json(run / "baselines" / f"{name}.json")
        if found is not None and name in args.baselines:
            rows[label] = found
    has_history = "history" in args.baselines and (run / "baselines" / "history.json").is_file()
    notes = [_history_note(args, run)] if has_history else []
    sid_stats = _json(run / "quantizer" / "sid_assignment.json") or {}
    quantizer_log = (_json(run / "quantizer" / "training_log.json") or {}).get("history", [])
    recommender_log = (_json(run / "recommender" / "train_log.json") or {}).get("log", [])
    sid_rows = {
        "items": sid_stats.get("num_items"),
        "SID levels (incl. disambiguation)": sid_stats.get("num_levels"),
        "codebook sizes": sid_stats.get("codebook_sizes"),
        "raw collision rate (before resolution)": sid_stats.get("raw_collision_rate"),
        "codebook_usage": sid_stats.get("usage"),
        "perplexity": sid_stats.get("perplexity"),
        "items with a unique SID after resolution": sid_stats.get("unique_share"),
        "invalid generated items": metrics.get("invalid_items"),
    }
    timings = {stage: entry["seconds"] for stage, entry in state.stages.items()
               if entry.get("status") == "done" and "seconds" in entry and stage != "report"}
    settings = {"pipeline": asdict(args), "quantizer": asdict(plan.quantizer),
                "recommender": {k: v for part in plan.recommender for k, v in asdict(part).items()},
                "features": asdict(plan.features), "lgmd": asdict(plan.lgmd) if plan.lgmd else None}
    path = write_report(run, metrics=rows, data_stats=_json(run / "data" / "stats.json"),
                        sid_stats={k: v for k, v in sid_rows.items() if v is not None},
                        training_logs={"quantizer": quantizer_log, "recommender": recommender_log},
                        learning_curves=_learning_curves(run, f"SimCIT SIDs + {generator}"),
                        settings=settings, timings=timings, notes=notes)
    print(format_metrics_table(rows))
    print(f"  report: {path}")
    return {}


def _history_note(args: PipelineArguments, run: Path) -> str:
    """Why the history baseline's row is what it is: repeat targets and full histories of the evaluated rows."""
    from .baselines.popularity import repeat_statistics
    from .data import load_prepared
    from .report import history_baseline_note

    split = load_prepared(run / "data").splits[args.eval_split]
    rows = split[: len(split) if args.eval_max_examples is None else int(args.eval_max_examples)]
    return history_baseline_note(repeat_statistics(rows["history"], rows["target"], max(args.eval_ks)),
                                 args.dataset, args.eval_split)


def _learning_curves(run: Path, generator: str) -> dict[str, list[dict[str, Any]]]:
    """Validation NDCG@10 per epoch and training second of the generator and SASRec, from their logs."""
    curves = {}
    log = (_json(run / "recommender" / "train_log.json") or {}).get("log", [])
    curves[generator] = [{"epoch": e.get("epoch"), "seconds": e.get("train_seconds"), "ndcg@10": e.get("ndcg@10")}
                         for e in log if "ndcg@10" in e and e.get("epoch") is not None]
    history = (_json(run / "baselines" / "sasrec.json") or {}).get("history") or []
    curves["SASRec"] = [{"epoch": h["epoch"] + 1, "seconds": h.get("seconds"), "ndcg@10": h.get("ndcg@10")}
                        for h in history]
    return curves


def _stage_push(args: PipelineArguments, plan: StagePlan) -> dict[str, Any]:
    from .hub import push_run

    if not args.push_to_hub:
        print("  nothing to push (set push_to_hub: ORG/NAME)")
        return {}
    results = push_run(plan.run, args.push_to_hub)
    for name, pushed in results.items():
        print(f"  {name}: {pushed.commit_url}")
    return {"pushed": {name: {"repo_id": r.repo_id, "repo_type": r.repo_type, "commit": r.commit_oid,
                              "url": r.commit_url} for name, r in results.items()}}


# the folders a stage writes (removed when its settings changed), and its checkpoint folders
OUTPUTS = {
    "prepare": ("data",), "features": ("features",), "lgmd": ("lgmd",),
    "quantizer": ("quantizer", "quantizer_checkpoints"), "assign": (),
    "recommender": ("recommender", "recommender_checkpoints"), "evaluate": ("eval",),
    "baselines": ("baselines",), "report": (), "push": (),
}


def run_pipeline(args: PipelineArguments, *, on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or resume) every stage in order; returns ``{"run_dir", "metrics", "stages": {stage: entry}}``."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights"/"Writing shards" bars drown the stage bars
    plan = plan_stages(args)
    run = plan.run
    run.mkdir(parents=True, exist_ok=True)
    state = RunState(run)
    selected = list(args.stages or STAGES)
    if not args.push_to_hub and args.stages is None:
        selected.remove("push")
    if plan.lgmd is None and "lgmd" in selected:
        selected.remove("lgmd")
    if not args.baselines and "baselines" in selected:
        selected.remove("baselines")
    configs = {
        "prepare": {"dataset": args.dataset, "data_dir": args.data_dir, "prepare": args.prepare},
        "features": asdict(plan.features),
        "lgmd": asdict(plan.lgmd) if plan.lgmd else None,
        "quantizer": asdict(plan.quantizer),
        # the default order stays out of the fingerprint, so runs made before the option existed still resume
        "assign": {"resolve": args.resolve} | (
            {"disambiguation_order": args.disambiguation_order} if args.disambiguation_order != "index" else {}),
        "recommender": [asdict(part) for part in plan.recommender],
        "evaluate": {"split": args.eval_split, "beams": args.eval_num_beams, "ks": args.eval_ks,
                     "max_examples": args.eval_max_examples},
        "baselines": {"baselines": args.baselines, "sasrec": plan.sasrec, "split": args.eval_split,
                      "max_examples": args.eval_max_examples},
        "report": {},
        "push": {"repo": args.push_to_hub},
    }
    for key in ("progress", "show_progress"):  # display options do not change results
        for config in (configs["features"], configs["lgmd"] or {}, configs["quantizer"]):
            config.pop(key, None)
    fingerprints, upstream = {}, ""
    for stage in STAGES:
        upstream = fingerprints[stage] = _fingerprint(upstream, stage, configs[stage])

    total = len(selected)
    for position, stage in enumerate(selected, 1):
        fingerprint = fingerprints[stage]
        if state.done(stage, fingerprint) and not args.force and stage not in ALWAYS_RUN:
            print(f"[{position}/{total}] {stage}: done earlier, skipped ({run / STATE_FILE})")
            continue
        if state.started_with(stage) != fingerprint or args.force:
            for name in OUTPUTS[stage]:  # settings changed: never resume from another run's checkpoints
                shutil.rmtree(run / name, ignore_errors=True)
        print(f"[{position}/{total}] {stage}")
        if on_stage is not None:
            on_stage(stage)
        # a training stage continuing from its checkpoint is timed over every attempt
        earlier = state.earlier_seconds(stage, fingerprint) if stage in RESUMABLE and not args.force else 0.0
        state.update(stage, fingerprint=fingerprint, status="running", seconds_so_far=earlier)
        runner = STAGE_FUNCTIONS[stage]
        with _heartbeat(state, stage, earlier) as seconds:
            extra = runner(args, plan, state) if stage == "report" else runner(args, plan)
        resumed = {"resumed_after_s": earlier} if earlier else {}
        state.update(stage, status="done", seconds=seconds(), seconds_so_far=seconds(), **resumed, **extra)
    return {"run_dir": str(run), "metrics": _json(run / "eval" / "metrics.json"), "stages": state.stages}


STAGE_FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "prepare": _stage_prepare, "features": _stage_features, "lgmd": _stage_lgmd,
    "quantizer": _stage_quantizer, "assign": _stage_assign, "recommender": _stage_recommender,
    "evaluate": _stage_evaluate, "baselines": _stage_baselines, "report": _stage_report, "push": _stage_push,
}

__all__ = ["STAGES", "PipelineArguments", "StagePlan", "load_pipeline", "plan_stages", "run_pipeline"]
