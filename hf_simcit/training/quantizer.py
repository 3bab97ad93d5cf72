"""Train the SimCIT quantizer with accelerate: ``hf-simcit train-quantizer RECIPE.yaml`` or :func:`train_quantizer`.

AdamW, linear warm-up then cosine decay, in steps (not epochs: an epoch of a small catalogue is a handful of
steps). A share of the items is held out for the validation loss; every evaluation also encodes the *whole*
catalogue and logs per-level codebook usage and perplexity and the share of items with a unique SID, because
the validation loss alone does not say whether the codes are usable. The best model (``metric_for_best_model``)
is kept in ``output_dir``, training stops early when it has not improved for ``early_stopping_patience``
evaluations, and a ``checkpoint-<step>`` (safetensors + JSON, RNG included) after every evaluation makes the run
resumable (``resume_from_checkpoint``; the convention of :mod:`~hf_simcit.training.checkpointing`, shared with
the recommender trainer): the order of each epoch comes from ``seed + epoch``, so a resumed run continues
exactly where it stopped. The items of a step come from a data loader prepared by accelerate, which deals each
process its share of the global batch. Under several processes each process draws its own Gumbel noise (its
own RNG streams, stored per process in the checkpoints); one process draws exactly what it drew before
processes had streams of their own.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import SimCITInputError
from ..quantizers.features import ItemFeatures
from ..utils.serialization import atomic_directory
from ..utils.threads import cpu_threads
from .checkpointing import (
    RESUME_HELP,
    CheckpointManager,
    EpochShuffleSampler,
    checkpoint_folder,
    epoch_batches,
    resume_choice,
)
from .early_stopping import EarlyStopping

BEST_METRICS = {"validation_loss": "min", "collision_rate": "min", "unique_share": "max"}
TRAINING_LOG_NAME = "training_log.json"


@dataclass
class QuantizerTrainingArguments:
    """Everything a quantizer recipe holds (one flat YAML read by ``HfArgumentParser``).

    Defaults are the measured recipe (``recipes/beauty/quantizer.yaml``): reference model and losses, plus the
    symmetric InfoNCE, k-means codebooks on embeddings rescaled to RMS 1, a Gumbel temperature annealed from 10 to
    0.5, the VQ codebook loss with the codebooks' own learning rate and dead-code restarts. The SIDs are the argmin
    over the *learned* codebooks (``codebook_refit="none"``); a k-means re-fit of the codebooks (``"periodic"``,
    ``"final"``) is an ablation: it makes the SIDs RQ-KMeans codes of the fused space. The reference schedule:
    ``codebook_init="uniform"``, ``init_latent_rms=None``, ``symmetric_loss=False``, ``gumbel_temperature=0.2``,
    ``gumbel_temperature_end=None``, ``codebook_loss_weight=0``, ``codebook_learning_rate=None``,
    ``dead_code_restart_steps=0``.
    """

    # data
    features_path: str | None = field(default=None, metadata={
        "help": "Item table with <modality>_embedding columns (Dataset.save_to_disk folder, e.g. RUN/features)."})
    modalities: list[str] | None = field(default=None, metadata={
        "help": "Modalities to use (default: every <modality>_embedding column)."})
    output_dir: str = field(default="runs/quantizer", metadata={"help": "Where the best model is saved."})
    checkpoint_dir: str | None = field(default=None, metadata={
        "help": "checkpoint-<step> folders (default: <output_dir>_checkpoints)."})
    # model (SimCITConfig)
    latent_dim: int = 128
    encoder_hidden_sizes: list[int] = field(default_factory=lambda: [512, 384, 256])
    num_levels: int = 3
    codebook_size: int = 256
    contrastive_temperature: float = 0.07
    gumbel_temperature: float = field(default=10.0, metadata={
        "help": "Gumbel-softmax temperature at step 0 (reference 0.2: at RMS-1 latents a hard argmin, so no "
                "gradient reaches the encoders through the quantizer)."})
    gumbel_temperature_end: float | None = field(default=0.5, metadata={
        "help": "Anneal geometrically to this temperature over gumbel_anneal_steps (None: fixed, as the reference)."})
    gumbel_anneal_steps: int = 400
    contrastive_weight: float = 1.0
    codeword_diversity_weight: float = 1.0
    symmetric_loss: bool = field(default=True, metadata={
        "help": "Both InfoNCE directions (ours; reference: false). Beauty: 4.4% vs 11% raw collisions."})
    gather_negatives: bool = False
    codebook_init: str = field(default="kmeans", metadata={"help": "'kmeans' (ours) or 'uniform' (reference)."})
    codebook_refit: str = field(default="none", metadata={
        "help": "'none': the SIDs are the argmin over the learned codebooks (SimCIT); 'periodic': re-fit the "
                "codebooks by residual k-means of the fused embeddings every codebook_refresh_steps steps and at "
                "the last step; 'final': one re-fit of the saved model (both make RQ-KMeans codes; ablations)."})
    codebook_refresh_steps: int = field(default=50, metadata={
        "help": "With codebook_refit='periodic': re-fit every N steps (and at the last step)."})
    commitment_weight: float = field(default=0.0, metadata={
        "help": "Weight of the commitment term (mean squared distance of each residual to its hard codeword)."})
    codebook_loss_weight: float = field(default=1.0, metadata={
        "help": "Weight of the VQ codebook loss (each chosen codeword pulled toward the residuals that chose it)."})
    codebook_learning_rate: float | None = field(default=1e-2, metadata={
        "help": "Learning rate of the codebooks (None: learning_rate). Why: Adam moves a parameter by about the "
                "learning rate per step, far slower than the encoders move the fused embeddings."})
    dead_code_restart_steps: int = field(default=50, metadata={
        "help": "Every N steps move each codeword no item uses to a random item's residual at its level "
                "(0: off). Only the unused codewords move: the used ones stay as learned."})
    init_latent_rms: float | None = field(default=1.0, metadata={
        "help": "With k-means init: rescale the encoders so fused embeddings start with this RMS (None: as is)."})
    # optimisation
    max_steps: int = 400
    per_device_batch_size: int = 256
    learning_rate: float = 2e-4
    weight_decay: float = 1e-3
    warmup_steps: int = 20
    max_grad_norm: float | None = None
    # evaluation, checkpoints
    eval_steps: int = 100
    eval_batch_size: int = 4096
    validation_share: float = 0.05
    metric_for_best_model: str = "validation_loss"
    early_stopping_patience: int = field(default=0, metadata={"help": "Evaluations without improvement (0: off)."})
    early_stopping_window: int = field(default=1, metadata={
        "help": "Evaluations in the trailing mean that also counts as improvement (1: the value alone)."})
    save_total_limit: int = 2
    resume_from_checkpoint: str | None = field(default="auto", metadata={"help": RESUME_HELP})
    max_train_time_s: float | None = field(default=None, metadata={"help": "Stop after this much training time."})
    seed: int = 42
    num_threads: int | None = field(default=None, metadata={
        "help": "CPU threads (torch + BLAS) while training (None: the libraries' own). 1 trains the same codebooks "
                "from run to run on CPU (with 2, two ML-100K runs of one seed diverged after ~200 steps; "
                "benchmarks/RESULTS.md) and is the faster choice on shared cores for this small model"})
    show_progress: bool = True

    def __post_init__(self):
        if self.metric_for_best_model not in BEST_METRICS:
            raise SimCITInputError(
                f"metric_for_best_model must be one of {list(BEST_METRICS)}, got {self.metric_for_best_model!r}"
            )
        if not 0.0 <= self.validation_share < 1.0:
            raise SimCITInputError(f"validation_share must be in [0, 1), got {self.validation_share}")
        if self.num_threads is not None and self.num_threads < 1:
            raise SimCITInputError(f"num_threads must be positive (or null: the libraries' own), got {self.num_threads}")
        if self.max_steps < 1 or self.per_device_batch_size < 2 or self.eval_steps < 1:
            raise SimCITInputError("max_steps and eval_steps must be >= 1 and per_device_batch_size >= 2")
        if self.codebook_refit == "periodic" and self.codebook_refresh_steps < 1:
            raise SimCITInputError("codebook_refit 'periodic' needs codebook_refresh_steps >= 1")
        if self.dead_code_restart_steps < 0:
            raise SimCITInputError(f"dead_code_restart_steps must be >= 0, got {self.dead_code_restart_steps}")
        EarlyStopping(self.early_stopping_patience, self.early_stopping_window, BEST_METRICS[self.metric_for_best_model])
        if self.learning_rate < 0:
            raise SimCITInputError(f"learning_rate must not be negative, got {self.learning_rate}")
        resume_choice(self.resume_from_checkpoint)
        # the model's settings (codebook_init, num_levels, ...) checked now, with a stand-in modality, so a bad
        # value stops the pipeline before its first stage rather than at the quantizer stage
        self.simcit_config(["text"], [1])

    def simcit_config(self, modalities: list[str], dims: list[int]):
        from ..configuration_simcit import SimCITConfig

        try:
            return SimCITConfig(
                modality_names=modalities, modality_dims=dims, encoder_hidden_sizes=self.encoder_hidden_sizes,
                latent_dim=self.latent_dim, num_levels=self.num_levels, codebook_size=self.codebook_size,
                contrastive_temperature=self.contrastive_temperature,
                gumbel_temperature=self.gumbel_temperature, gumbel_temperature_end=self.gumbel_temperature_end,
                gumbel_anneal_steps=self.gumbel_anneal_steps, contrastive_weight=self.contrastive_weight,
                codeword_diversity_weight=self.codeword_diversity_weight, symmetric_loss=self.symmetric_loss,
                gather_negatives=self.gather_negatives, codebook_init=self.codebook_init,
                codebook_refit=self.codebook_refit, commitment_weight=self.commitment_weight,
                codebook_loss_weight=self.codebook_loss_weight,
            )
        except ValueError as err:
            raise SimCITInputError(f"quantizer recipe: {err}") from None


@dataclass
class QuantizerTrainingResult:
    model: Any
    history: list[dict[str, Any]]
    best_step: int
    best_metric: float
    output_dir: Path
    train_time_s: float


def load_quantizer_features(args: QuantizerTrainingArguments) -> ItemFeatures:
    from ..quantizers.features import load_item_features, read_item_table

    if args.features_path is None:
        raise SimCITInputError("the quantizer recipe needs features_path (an item table with embedding columns)")
    return load_item_features(read_item_table(args.features_path), args.modalities)


def split_items(num_items: int, share: float, seed: int) -> tuple[torch.LongTensor, torch.LongTensor]:
    """Random (seeded) train / validation item indices; the validation part is ``ceil(share * n)`` items."""
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))
    num_validation = math.ceil(share * num_items) if share > 0 and num_items > 2 else 0
    return order[num_validation:].sort().values, order[:num_validation].sort().values


@torch.no_grad()
def evaluate_quantizer(model, features: ItemFeatures, validation: torch.LongTensor, batch_size: int,
                       eval_batch_size: int) -> dict[str, Any]:
    """Validation loss parts (hard codes, in-batch negatives of the training batch size) and catalogue stats."""
    from ..quantizers.residual import codebook_statistics

    was_training = model.training
    model.eval()
    metrics: dict[str, Any] = {}
    if len(validation):
        totals = {"loss": 0.0, "contrastive_loss": 0.0, "codeword_diversity_loss": 0.0}
        modality = torch.zeros(len(features.modalities))
        batches = 0
        for start in range(0, len(validation), batch_size):
            rows = validation[start : start + batch_size]
            if len(rows) < 2:
                continue
            sub = features.subset(rows)
            out = model(sub.features, sub.masks, gather_negatives=False)
            for key in totals:
                totals[key] += float(getattr(out, key))
            modality += out.modality_losses.detach().cpu()
            batches += 1
        if batches:
            metrics.update({f"validation_{k}": v / batches for k, v in totals.items()})
            for name, value in zip(features.modalities, (modality / batches).tolist()):
                metrics[f"validation_{name}_loss"] = value
    codes = model.encode(features.features, features.masks, batch_size=eval_batch_size)
    stats = codebook_statistics(codes.numpy(), model.config.codebook_sizes)
    metrics.update(stats)
    model.train(was_training)
    return metrics


def _format(metrics: dict[str, Any]) -> str:
    parts = [f"step {metrics['step']}"]
    for key in ("train_loss", "validation_loss", "collision_rate", "unique_share"):
        if key in metrics:
            parts.append(f"{key} {metrics[key]:.4f}")
    parts.append("usage " + "/".join(f"{u:.2f}" for u in metrics["usage"]))
    parts.append("ppl " + "/".join(f"{p:.0f}" for p in metrics["perplexity"]))
    return "  ".join(parts)


def train_quantizer(args: QuantizerTrainingArguments, features: ItemFeatures | None = None) -> QuantizerTrainingResult:
    """Train a :class:`~hf_simcit.modeling_simcit.SimCITQuantizer`; the best model is saved in ``output_dir``.

    ``features`` (in-memory :class:`ItemFeatures`) overrides ``args.features_path``; ``args.num_threads`` holds
    for the whole training.
    """
    with cpu_threads(args.num_threads):
        return _train_quantizer(args, features)


def _train_quantizer(args: QuantizerTrainingArguments, features: ItemFeatures | None) -> QuantizerTrainingResult:
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    from ..modeling_simcit import SimCITQuantizer
    from ..quantizers.simcit import initialize_simcit_codebooks
    from .distributed import build_accelerator

    accelerator = build_accelerator()
    if str(accelerator.distributed_type).endswith(("FSDP", "DEEPSPEED")):
        raise SimCITInputError(
            f"the quantizer trains a full copy on every process (DDP), not under {accelerator.distributed_type}: "
            "the codebook refits and the catalogue evaluation need the whole model; use multi_gpu.yaml or "
            "multi_cpu.yaml")
    set_seed(args.seed)
    if features is None:
        features = load_quantizer_features(args)
    elif args.modalities is not None:
        features = features.select(args.modalities)
    output_dir = Path(args.output_dir)
    # checkpoint-<step> folders in checkpoint_dir, the best model in output_dir
    checkpoints = CheckpointManager(checkpoint_folder(output_dir, args.checkpoint_dir), output_dir,
                                    args.save_total_limit)
    resume_path = checkpoints.resolve(args.resume_from_checkpoint, accelerator)
    train_rows, validation_rows = split_items(len(features), args.validation_share, args.seed)
    world = accelerator.num_processes
    global_batch = args.per_device_batch_size * world
    if len(train_rows) < global_batch:
        raise SimCITInputError(
            f"{len(train_rows)} training items are fewer than one batch ({args.per_device_batch_size} x "
            f"{world} processes); lower per_device_batch_size"
        )
    batches_per_epoch = len(train_rows) // global_batch  # every batch full: same shapes on every process
    # the loader deals consecutive per-process batches to the processes: a step of N processes trains on the
    # items of one step of one process with N times the batch. Its own generator: iterating it draws nothing
    # from the global RNG, which the Gumbel noise uses
    sampler = EpochShuffleSampler(len(train_rows), args.seed)
    loader = torch.utils.data.DataLoader(
        train_rows, batch_size=args.per_device_batch_size, sampler=sampler, drop_last=True,
        collate_fn=lambda rows: _batch(features, torch.stack(rows)), generator=torch.Generator())
    # validation loss with the negatives training sees: the global batch when they are gathered over processes
    negatives_batch = global_batch if args.gather_negatives else args.per_device_batch_size

    config = args.simcit_config(features.modalities, features.dims)
    model = SimCITQuantizer(config)
    if config.codebook_init == "kmeans":
        initialize_simcit_codebooks(model, features.subset(train_rows).features,
                                    features.subset(train_rows).masks, seed=args.seed,
                                    latent_rms=args.init_latent_rms)
    codebooks = model.quantizer.codebooks
    groups = [{"params": [p for p in model.parameters() if p is not codebooks]},
              {"params": [codebooks], "lr": args.codebook_learning_rate or args.learning_rate}]
    optimizer = torch.optim.AdamW(groups, lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, args.warmup_steps, args.max_steps)

    step, best_step, history = 0, -1, []
    elapsed_before = 0.0
    # several processes: each its own Gumbel noise for its own rows (one process: unchanged); a resumed
    # process continues the stream its checkpoint stored
    state = checkpoints.restore(resume_path, model=model, optimizer=optimizer, scheduler=scheduler, seed=args.seed,
                                accelerator=accelerator)
    if state is not None:
        step, best_step, history = state["step"], state["best_step"], state["history"]
        elapsed_before = state.get("train_time_s", 0.0)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    unwrapped = accelerator.unwrap_model(model)
    stopping = EarlyStopping.from_checkpoint(args.early_stopping_patience, args.early_stopping_window,
                                             BEST_METRICS[args.metric_for_best_model], state)

    def evaluate_and_checkpoint(train_parts: dict[str, float]) -> bool:
        nonlocal best_step
        metrics = {"step": step, "learning_rate": scheduler.get_last_lr()[0],
                   "gumbel_temperature": config.gumbel_temperature_at(step), **train_parts,
                   **evaluate_quantizer(unwrapped, features, validation_rows, negatives_batch,
                                        args.eval_batch_size),
                   "train_time_s": elapsed_before + (time.perf_counter() - start)}
        key = args.metric_for_best_model
        value = metrics.get(key, metrics.get("collision_rate") if key == "validation_loss" else None)
        if value is None:
            raise SimCITInputError(f"metric_for_best_model {key!r} is not available (validation_share is 0?)")
        # every process holds the whole model (DDP; FSDP and DeepSpeed are refused above): the main one writes
        if stopping.update(value):
            best_step = step
            checkpoints.save_best(lambda folder: unwrapped.save_pretrained(folder, safe_serialization=True),
                                  accelerator)
        metrics["best_step"] = best_step
        history.append(metrics)
        accelerator.print(_format(metrics))
        checkpoints.save(step, model=unwrapped, optimizer=optimizer, scheduler=scheduler, accelerator=accelerator,
                         state={"step": step, "best_step": best_step, "early_stopping": stopping.state_dict(),
                                "history": history, "train_time_s": metrics["train_time_s"]})
        return stopping.should_stop

    start = time.perf_counter()
    model.train()
    running: dict[str, float] = {}
    running_count = 0
    progress = tqdm(total=args.max_steps, initial=step, desc="train-quantizer",
                    disable=not (args.show_progress and accelerator.is_main_process))
    if step == 0 and not history:
        evaluate_and_checkpoint({})
    stopped = False
    while step < args.max_steps and not stopped:
        epoch, done = divmod(step, batches_per_epoch)   # a resumed epoch skips the batches it trained on
        for batch in epoch_batches(accelerator, loader, sampler, epoch, done):
            out = model(batch["features"], batch["masks"], gumbel_temperature=config.gumbel_temperature_at(step))
            accelerator.backward(out.loss)
            if args.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            progress.update(1)
            if args.codebook_refit == "periodic" and (step % args.codebook_refresh_steps == 0
                                                      or step == args.max_steps):
                refresh_codebooks(unwrapped, optimizer, features.subset(train_rows), args.seed + step)
                if world > 1:  # the same k-means on every process; the main one's result makes sure of it
                    torch.distributed.broadcast(unwrapped.quantizer.codebooks.data, src=0)
            elif args.dead_code_restart_steps and step % args.dead_code_restart_steps == 0:
                restart_dead_codes(unwrapped, optimizer, features.subset(train_rows), args.seed + step)
                if world > 1:
                    torch.distributed.broadcast(unwrapped.quantizer.codebooks.data, src=0)
            parts = {"train_loss": out.loss.item(), "train_contrastive_loss": out.contrastive_loss.item(),
                     "train_codeword_diversity_loss": out.codeword_diversity_loss.item(),
                     # the commitment and codebook terms are one distance (residual to its codeword) with
                     # the gradient on opposite sides, so their values are equal: logged (and plotted) once
                     "train_quantization_loss": out.codebook_loss.item()}
            for name, value in zip(features.modalities, out.modality_losses.detach().tolist()):
                parts[f"train_{name}_loss"] = value
            for key, value in parts.items():
                running[key] = running.get(key, 0.0) + value
            running_count += 1
            over_time = (args.max_train_time_s is not None
                         and elapsed_before + time.perf_counter() - start > args.max_train_time_s)
            if args.max_train_time_s is not None and world > 1:  # every process stops at the same step
                over_time = bool(accelerator.reduce(torch.tensor(float(over_time), device=accelerator.device),
                                                    reduction="sum") > 0)
            if step % args.eval_steps == 0 or step == args.max_steps or over_time:
                means = _process_means(accelerator, running, running_count)
                running, running_count = {}, 0
                stopped = evaluate_and_checkpoint(means) or over_time
                if stopped:
                    break
            if step >= args.max_steps:
                break
    progress.close()
    if history and history[-1]["step"] != step:
        evaluate_and_checkpoint(_process_means(accelerator, running, running_count))
    train_time = elapsed_before + time.perf_counter() - start

    best = checkpoints.load_best(SimCITQuantizer.from_pretrained)
    best = unwrapped if best is None else best
    accelerator.wait_for_everyone()     # every process has read the best model before output_dir is rewritten
    if args.codebook_refit == "final":  # the ablation: the saved codebooks are k-means of the fused embeddings
        from ..quantizers.simcit import initialize_simcit_codebooks

        initialize_simcit_codebooks(best, features.subset(train_rows).features, features.subset(train_rows).masks,
                                    seed=args.seed + step)
    if accelerator.is_main_process:
        with atomic_directory(output_dir) as tmp:
            best.save_pretrained(tmp, safe_serialization=True)
            summary = {"best_step": best_step, "metric_for_best_model": args.metric_for_best_model,
                       "best_metric": stopping.best, "train_time_s": train_time, "num_processes": world,
                       "global_batch_size": global_batch, "args": asdict(args), "history": history}
            (tmp / TRAINING_LOG_NAME).write_text(json.dumps(summary, indent=2))
    accelerator.wait_for_everyone()
    return QuantizerTrainingResult(best, history, best_step, stopping.best, output_dir, train_time)


def _batch(features: ItemFeatures, rows: torch.LongTensor) -> dict[str, dict[str, torch.Tensor]]:
    """The training batch of item rows ``rows``: what the model takes (tensors, so accelerate moves them)."""
    batch = features.subset(rows)
    return {"features": batch.features, "masks": batch.masks}


def _process_means(accelerator, running: dict[str, float], count: int) -> dict[str, float]:
    """The training-loss parts averaged over the steps since the last evaluation and over every process (each
    holds the losses of its own share of the batches)."""
    means = {k: v / max(count, 1) for k, v in running.items()}
    if accelerator.num_processes == 1 or not means:
        return means
    values = accelerator.reduce(torch.tensor(list(means.values()), dtype=torch.float64, device=accelerator.device),
                                reduction="mean")
    return dict(zip(means, values.tolist()))


def refresh_codebooks(model, optimizer, features: ItemFeatures, seed: int) -> None:
    """Re-fit the codebooks to the current fused embeddings (residual k-means) and reset their Adam moments.

    Why: the encoders move the embeddings faster than the Gumbel-softmax gradients move rarely chosen
    codewords, so hard codes drift onto fewer codewords; re-fitting keeps every code in use (every process
    computes the same centroids: same data, same seed).
    """
    from ..quantizers.simcit import initialize_simcit_codebooks

    initialize_simcit_codebooks(model, features.features, features.masks, seed=seed)
    state = optimizer.state.get(model.quantizer.codebooks)
    if state:
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key].zero_()


@torch.no_grad()
def restart_dead_codes(model, optimizer, features: ItemFeatures, seed: int) -> int:
    """Move every codeword that no item's hard code uses to the residual of a random item at that level.

    Why: a codeword the argmin never picks gets almost no gradient through the Gumbel softmax and stays dead,
    which is how learned codebooks collapse. Unlike a k-means re-fit, the codewords in use keep what training
    learned, so the SIDs stay the learned quantizer's argmin codes. Returns how many codewords moved.
    """
    from ..quantizers.residual import squared_distances

    was_training = model.training
    model.eval()
    fused = model.fused_embeddings(features.features, features.masks)
    generator = torch.Generator().manual_seed(seed)
    codebooks = model.quantizer.codebooks
    state = optimizer.state.get(codebooks)
    residual = fused.to(codebooks.device)
    moved = 0
    for level in range(codebooks.shape[0]):
        codebook = codebooks[level]
        codes = squared_distances(residual, codebook).argmin(-1)
        dead = (torch.bincount(codes, minlength=codebook.shape[0]) == 0).nonzero().flatten()
        if dead.numel():
            rows = torch.randint(residual.shape[0], (dead.numel(),), generator=generator).to(residual.device)
            codebook[dead] = residual[rows]
            moved += dead.numel()
            for key in ("exp_avg", "exp_avg_sq"):
                if state and key in state:
                    state[key][level, dead] = 0
            codes = squared_distances(residual, codebook).argmin(-1)
        residual = residual - codebook[codes]
    model.train(was_training)
    return moved


def parse_quantizer_recipe(path: str, overrides: list[str] | None = None) -> QuantizerTrainingArguments:
    """Read a recipe YAML into :class:`QuantizerTrainingArguments`; ``overrides`` like ``["--max_steps", "10"]``.

    Keys and types are checked before anything runs (:func:`~hf_simcit.utils.recipes.recipe_dataclasses`).
    """
    from ..utils.recipes import mapping_fields, parse_overrides, read_recipe, recipe_dataclasses

    data = read_recipe(path, mappings=mapping_fields(QuantizerTrainingArguments))
    data |= parse_overrides(overrides, f"{path} (command line)")
    (args,) = recipe_dataclasses((QuantizerTrainingArguments,), data, f"{path} (quantizer recipe)")
    return args


__all__ = [
    "QuantizerTrainingArguments",
    "QuantizerTrainingResult",
    "evaluate_quantizer",
    "load_quantizer_features",
    "parse_quantizer_recipe",
    "refresh_codebooks",
    "restart_dead_codes",
    "split_items",
    "train_quantizer",
]
