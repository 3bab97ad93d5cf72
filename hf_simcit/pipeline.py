"""The whole job in one call: ``hf-simcit run recipes/<data>/pipeline.yaml``.

prepare -> features -> LGMD collaborative embeddings -> SimCIT quantizer -> SIDs + tokenizer -> LLM
-> evaluation (and SASRec on the same split) -> report -> (optionally) the Hub.

Every stage is the library function its own subcommand calls; this module only wires their inputs and
outputs into one run folder, one :class:`Stage` per row of ``REGISTRY`` (function, the settings its fingerprint
covers, the folders it writes)::

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

from .baselines.suite import BASELINES, check_sasrec_options
from .errors import SimCITInputError
from .utils.progress import progress_bars_off
from .utils.serialization import read_json

STATE_FILE = "pipeline.json"


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
    eval_hybrid_weight: float | None = field(default=None, metadata={
        "help": "a recommender with a dense item head (model dense_head_dim) ranks by the hybrid of its beam and "
                "the head with this weight (HybridRanking; 0: the beam's order); null: the weight its training "
                "chose on validation (recommender recipe's hybrid_weights), 0 when none was"})
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
    if args.lgmd_recipe:  # LGMD writes cf_embedding: its one route (the features default, text + cf, is text)
        values.setdefault("modalities", ["text"])
    (features,) = recipe_dataclasses((FeaturesArguments,), values, "features recipe")
    if args.lgmd_recipe and "cf" in features.modalities:
        raise SimCITInputError(
            f"features.modalities {features.modalities} includes cf, but the pipeline's lgmd_recipe writes "
            "cf_embedding: remove cf from the features modalities, or set lgmd_recipe: null to compute cf in the "
            "features stage (cf_method svd|lgmd)")
    lgmd = None
    if args.lgmd_recipe:
        values = _recipe(args, args.lgmd_recipe, (LGMDArguments,)) | over.get("lgmd", {})
        values |= {"data": str(run / "data"), "items": str(run / "features"), "output": str(run / "lgmd")}
        (lgmd,) = recipe_dataclasses((LGMDArguments,), values, "lgmd recipe")
    check_sasrec_options(over.get("sasrec", {}))   # SASRec trains late (baselines stage): check its keys now
    plan = StagePlan(run, features, lgmd, None, None, dict(over.get("sasrec", {})))
    values = _recipe(args, args.quantizer_recipe, (QuantizerTrainingArguments,)) | over.get("quantizer", {})
    values |= {"features_path": str(plan.quantizer_items), "output_dir": str(run / "quantizer"),
               "checkpoint_dir": str(run / "quantizer_checkpoints")}
    (plan.quantizer,) = recipe_dataclasses((QuantizerTrainingArguments,), values, "quantizer recipe")
    recommender_types = (RecommenderModelArguments, RecommenderDataArguments, RecommenderTrainingArguments)
    values = _recipe(args, args.recommender_recipe, recommender_types) | over.get("recommender", {})
    values |= {"data_dir": str(run / "data"), "sid_dir": str(run / "quantizer"),
               "output_dir": str(run / "recommender"), "checkpoint_dir": str(run / "recommender_checkpoints")}
    if values.get("dense_head_dim"):   # the dense item head learns the run's own item embeddings, as the quantizer
        values["dense_item_features"] = str(plan.quantizer_items)
    plan.recommender = recipe_dataclasses(recommender_types, values, "recommender recipe")
    if plan.recommender[2].hybrid_weight_choices() and not plan.recommender[0].dense_head_dim:   # before training
        raise SimCITInputError(f"hybrid_weights {plan.recommender[2].hybrid_weights!r} need a dense item head "
                               "(the recommender recipe's dense_head_dim > 0)")
    if args.eval_hybrid_weight and not plan.recommender[0].dense_head_dim:   # now, not after training
        raise SimCITInputError(f"eval_hybrid_weight {args.eval_hybrid_weight} needs a dense item head: set the "
                               "recommender recipe's dense_head_dim (e.g. 384 for MiniLM text)")
    if args.eval_hybrid_weight is not None and not args.eval_hybrid_weight >= 0:
        raise SimCITInputError(f"eval_hybrid_weight must be >= 0, got {args.eval_hybrid_weight}")
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
# Every stage function takes (args, plan, state) and returns the extra entries pipeline.json records for it.
def _prepare(args: PipelineArguments, plan: StagePlan, state: RunState) -> dict[str, Any]:
    from .data import prepare_dataset

    rec = prepare_dataset(args.dataset, data_dir=args.data_dir, **args.prepare)
    rec.save_to_disk(plan.run / "data")
    stats = rec.stats
    print(f"  {stats.get('users', rec.num_users):,} users, {rec.num_items:,} items, "
          f"{stats.get('interactions', 0):,} interactions; train/validation/test examples "
          f"{len(rec.splits['train']):,}/{len(rec.splits['validation']):,}/{len(rec.splits['test']):,}")
    return {}


def _features(args: PipelineArguments, plan: StagePlan, state: RunState) -> dict[str, Any]:
    from .features import run_features

    run_features(plan.features)
    return {}


def _lgmd(args: PipelineArguments, plan: StagePlan, state: RunState) -> dict[str, Any]:
    from .lgmd.stage import format_report, run_lgmd

    report = run_lgmd(plan.lgmd)
    print("  " + format_report(report).replace("\n", "\n  "))
    return {}


def _quantizer(args: PipelineArguments, plan: StagePlan, state: RunState) -> dict[str, Any]:
    from .training.quantizer import train_quantizer

    result = train_quantizer(plan.quantizer)
    return {"best_step": result.best_step, "train_time_s": round(result.train_time_s, 2)}


def _assign(args: PipelineArguments, plan: StagePlan, state: RunState) -> dict[str, Any]:
    from .quantizers.assignment import save_semantic_ids

    _, assignment = save_semantic_ids(plan.run / "quantizer", str(plan.quantizer_items), args.resolve,
                                      disambiguation_order=args.disambiguation_order)
    summary = assignment.summary()
    print(f"  {summary['num_items']:,} items: raw collision rate {summary['raw_collision_rate']:.2%}, codebook "
          f"usage {' / '.join(f'{u:.0%}' for u in summary['usage'])}, unique after '{summary['resolve']}' "
          f"{summary['unique_share']:.2%} ({summary['num_levels']} levels)")
    return {}


def _recommender(args: PipelineArguments, plan: StagePlan, state: RunState) -> dict[str, Any]:
    from .training.recommender import train_recommender

    result = train_recommender(*plan.recommender)
    return {"best_step": result["best_step"], "final_step": result["final_step"],
            "best_validation": result["best_metrics"]}


def _evaluate(args: PipelineArguments, plan: StagePlan, state: RunState) -> dict[str, Any]:
    from .recommender.evaluation import evaluate_saved_recommender

    metrics = evaluate_saved_recommender(
        str(plan.run / "recommender"), str(plan.run / "data"), split=args.eval_split, ks=tuple(args.eval_ks),
        num_beams=args.eval_num_beams, max_examples=args.eval_max_examples,
        output=str(plan.run / "eval" / "metrics.json"), hybrid_weight=args.eval_hybrid_weight)
    print(f"  {args.eval_split}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                                 if "@" in k or k == "mrr") + f", invalid items {metrics['invalid_items']}")
    return {}


def _baselines(args: PipelineArguments, plan: StagePlan, state: RunState) -> dict[str, Any]:
    from .baselines.suite import run_baselines
    from .data import load_prepared

    results = run_baselines(load_prepared(plan.run / "data"), args.baselines, plan.run / "baselines",
                            split=args.eval_split, ks=args.eval_ks, max_examples=args.eval_max_examples,
                            sasrec_options=plan.sasrec, seed=plan.recommender[2].seed)
    for name, metrics in results.items():
        label = name if name != "sasrec" else (f"SASRec ({metrics['epochs']} epochs, best after "
                                               f"{metrics['best_epoch']})")
        print(f"  {label}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "@" in k))
    return {}


def _report(args: PipelineArguments, plan: StagePlan, state: RunState) -> dict[str, Any]:
    from . import report

    run = plan.run
    model_name = plan.recommender[0].model_name_or_path
    hybrid_weight = (read_json(run / "eval" / "metrics.json") or {}).get("hybrid_weight") or 0.0
    generator = report.generator_row(model_name, hybrid_weight)
    rows = report.metrics_rows(run, generator, args.baselines)
    has_history = "history" in args.baselines and (run / "baselines" / "history.json").is_file()
    notes = [report.history_note(run, args.dataset, args.eval_split, args.eval_max_examples, max(args.eval_ks))
             ] if has_history else []
    timings = {stage: entry["seconds"] for stage, entry in state.stages.items()
               if entry.get("status") == "done" and "seconds" in entry and stage != "report"}
    settings = {"pipeline": asdict(args), "quantizer": asdict(plan.quantizer),
                "recommender": {k: v for part in plan.recommender for k, v in asdict(part).items()},
                "features": asdict(plan.features), "lgmd": asdict(plan.lgmd) if plan.lgmd else None}
    path = report.write_report(run, metrics=rows, data_stats=read_json(run / "data" / "stats.json"),
                               sid_stats=report.sid_rows(run, rows[generator].get("invalid_items")),
                               training_logs=report.training_logs(run),
                               learning_curves=report.learning_curves(
                                   run, report.generator_row(model_name, hybrid_weight, curve=True)),
                               settings=settings, timings=timings, notes=notes)
    print(report.format_metrics_table(rows))
    print(f"  report: {path}")
    return {}


def _push(args: PipelineArguments, plan: StagePlan, state: RunState) -> dict[str, Any]:
    from .hub import push_run

    if not args.push_to_hub:
        print("  nothing to push (set push_to_hub: ORG/NAME)")
        return {}
    results = push_run(plan.run, args.push_to_hub)
    for name, pushed in results.items():
        print(f"  {name}: {pushed.commit_url}")
    return {"pushed": {name: {"repo_id": r.repo_id, "repo_type": r.repo_type, "commit": r.commit_oid,
                              "url": r.commit_url} for name, r in results.items()}}


# ------------------------------------------------------------------------------------------- registry
DISPLAY_OPTIONS = ("progress", "show_progress")  # do not change results: outside the fingerprint


def _settings(arguments: Any) -> dict[str, Any]:
    """A stage's argument dataclass as fingerprinted: without its display options."""
    return {k: v for k, v in asdict(arguments).items() if k not in DISPLAY_OPTIONS}


def _never(args: PipelineArguments, plan: StagePlan) -> bool:
    return False


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: its function, the settings its fingerprint covers and the folders it writes.

    ``outputs`` are removed when its settings changed (never resume from another run's checkpoints);
    ``always_run`` stages are never skipped as "done earlier"; a ``resumable`` stage continues from its
    checkpoints after an interruption and is timed over every attempt; ``skip`` leaves it out of a run.
    """

    name: str
    function: Callable[[PipelineArguments, StagePlan, RunState], dict[str, Any]]
    settings: Callable[[PipelineArguments, StagePlan], Any]
    outputs: tuple[str, ...] = ()
    always_run: bool = False
    resumable: bool = False
    skip: Callable[[PipelineArguments, StagePlan], bool] = _never


REGISTRY: tuple[Stage, ...] = (
    Stage("prepare", _prepare, lambda a, p: {"dataset": a.dataset, "data_dir": a.data_dir, "prepare": a.prepare},
          outputs=("data",)),
    Stage("features", _features, lambda a, p: _settings(p.features), outputs=("features",)),
    Stage("lgmd", _lgmd, lambda a, p: _settings(p.lgmd) if p.lgmd else None, outputs=("lgmd",),
          skip=lambda a, p: p.lgmd is None),
    Stage("quantizer", _quantizer, lambda a, p: _settings(p.quantizer),
          outputs=("quantizer", "quantizer_checkpoints"), resumable=True),
    # the default order stays out of the fingerprint, so runs made before the option existed still resume
    Stage("assign", _assign, lambda a, p: {"resolve": a.resolve} | (
        {"disambiguation_order": a.disambiguation_order} if a.disambiguation_order != "index" else {})),
    Stage("recommender", _recommender, lambda a, p: [asdict(part) for part in p.recommender],
          outputs=("recommender", "recommender_checkpoints"), resumable=True),
    Stage("evaluate", _evaluate, lambda a, p: {"split": a.eval_split, "beams": a.eval_num_beams, "ks": a.eval_ks,
                                               "max_examples": a.eval_max_examples} | (
        {"hybrid_weight": a.eval_hybrid_weight} if a.eval_hybrid_weight is not None else {}), outputs=("eval",)),
    Stage("baselines", _baselines, lambda a, p: {"baselines": a.baselines, "sasrec": p.sasrec, "split": a.eval_split,
                                                 "max_examples": a.eval_max_examples},
          outputs=("baselines",), skip=lambda a, p: not a.baselines),
    Stage("report", _report, lambda a, p: {}, always_run=True),
    # pushed only when asked: by push_to_hub, or by naming the stage
    Stage("push", _push, lambda a, p: {"repo": a.push_to_hub}, always_run=True,
          skip=lambda a, p: not a.push_to_hub and a.stages is None),
)
STAGES = tuple(stage.name for stage in REGISTRY)


def run_pipeline(args: PipelineArguments, *, on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or resume) every stage in order; returns ``{"run_dir", "metrics", "stages": {stage: entry}}``."""
    plan = plan_stages(args)
    run = plan.run
    run.mkdir(parents=True, exist_ok=True)
    state = RunState(run)
    fingerprints, upstream = {}, ""
    for stage in REGISTRY:
        upstream = fingerprints[stage.name] = _fingerprint(upstream, stage.name, stage.settings(args, plan))
    wanted = set(args.stages or STAGES)
    selected = [stage for stage in REGISTRY if stage.name in wanted and not stage.skip(args, plan)]

    # transformers' "Loading weights"/"Writing shards" bars would drown the stage bars: off while stages run
    with progress_bars_off("transformers"):
        for position, stage in enumerate(selected, 1):
            _run_stage(stage, args, plan, state, fingerprints[stage.name], f"[{position}/{len(selected)}]",
                       on_stage)
    return {"run_dir": str(run), "metrics": read_json(run / "eval" / "metrics.json"), "stages": state.stages}


def _run_stage(stage: Stage, args: PipelineArguments, plan: StagePlan, state: RunState, fingerprint: str,
               counter: str, on_stage: Callable[[str], None] | None) -> None:
    """Skip a stage done earlier with these settings, else clear its stale outputs, run it and record it."""
    run = plan.run
    if state.done(stage.name, fingerprint) and not args.force and not stage.always_run:
        print(f"{counter} {stage.name}: done earlier, skipped ({run / STATE_FILE})")
        return
    if state.started_with(stage.name) != fingerprint or args.force:
        for name in stage.outputs:  # settings changed: never resume from another run's checkpoints
            shutil.rmtree(run / name, ignore_errors=True)
    print(f"{counter} {stage.name}")
    if on_stage is not None:
        on_stage(stage.name)
    # a training stage continuing from its checkpoint is timed over every attempt
    earlier = state.earlier_seconds(stage.name, fingerprint) if stage.resumable and not args.force else 0.0
    state.update(stage.name, fingerprint=fingerprint, status="running", seconds_so_far=earlier)
    with _heartbeat(state, stage.name, earlier) as seconds:
        extra = stage.function(args, plan, state)
    resumed = {"resumed_after_s": earlier} if earlier else {}
    state.update(stage.name, status="done", seconds=seconds(), seconds_so_far=seconds(), **resumed, **extra)


__all__ = ["REGISTRY", "STAGES", "PipelineArguments", "Stage", "StagePlan", "load_pipeline", "plan_stages",
           "run_pipeline"]
