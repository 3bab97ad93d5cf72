"""Train the generative recommender with accelerate: next-item SID generation.

The objective (``data.objective``): ``full_sequence`` (one sequence per user window, loss on every training
target's SID tokens; the default for the ``plain`` template) or ``prefix`` (one example per training row, loss
on the target's SID only; the ``chat`` template). The budget is epochs (``num_train_epochs`` as a cap) with
validation NDCG@10 every ``eval_epochs`` epochs on a fixed, seeded random sample of validation users, early
stopping after ``early_stopping_patience`` validations without improvement (of the value or of its trailing mean
over ``early_stopping_window`` validations: :class:`~hf_simcit.training.early_stopping.EarlyStopping`), and the
best checkpoint kept.
Every validation is logged with its epoch and training seconds (the learning curve).

One loop for every set-up the accelerate config names (CPU, one GPU, DDP, FSDP, DeepSpeed): mixed precision
where the device has it, gradient accumulation, periodic full-ranking validation (Recall/NDCG@K), best-model
selection, pickle-free checkpoints (``checkpoint-<step>``: trainable weights, optimizer, scheduler, RNG and
the data position) and exact resume: the epoch order comes from ``seed + epoch`` and the batches already
seen in the interrupted epoch are skipped, so a resumed run reaches the same weights as an uninterrupted one.
Checkpoints, rotation, ``resume_from_checkpoint`` and the best model (in ``output_dir``) follow the one
convention of :mod:`~hf_simcit.training.checkpointing`, shared with the quantizer trainer. Resume works on one
process and under DDP; under FSDP and DeepSpeed it is refused at start-up (a checkpoint holds only the main
process's optimizer shard).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import SimCITInputError
from ..recommender.data import DEFAULT_INSTRUCTION, PromptTemplate
from ..recommender.dense import DENSE_NEGATIVES
from ..recommender.modeling import RecommenderModelArguments
from .checkpointing import RESUME_HELP, checkpoint_folder, resume_choice
from .early_stopping import EarlyStopping

__all__ = [
    "RecommenderDataArguments",
    "RecommenderModelArguments",
    "RecommenderTrainingArguments",
    "load_sid_source",
    "parse_recommender_recipe",
    "train_recommender",
]


@dataclass
class RecommenderDataArguments:
    """Where the prepared data and the SIDs come from, and how prompts look (recipe section ``data``)."""

    data_dir: str | None = field(default=None, metadata={"help": "Prepared data folder (RUN/data)."})
    sid_dir: str | None = field(default=None, metadata={
        "help": "Folder with the SimCITTokenizer (RUN/quantizer), or a sid_table.json / codes .npy file."})
    prompt_template: str = field(default="plain", metadata={"help": "'plain' (small models) or 'chat'."})
    objective: str = field(default="auto", metadata={
        "help": "'full_sequence' (one sequence per user window, loss on every target), 'prefix' (one example "
                "per history -> target row) or 'auto' (full_sequence for 'plain', prefix for 'chat')."})
    window_stride: int | None = field(default=None, metadata={
        "help": "full_sequence: items between window starts of long users (default max_history)."})
    predict_first_item: bool = field(default=False, metadata={
        "help": "full_sequence: also predict each user's first item from BOS alone."})
    instruction: str = DEFAULT_INSTRUCTION
    add_eos: bool = False
    max_train_examples: int | None = field(default=None, metadata={"help": "Cap on training examples."})
    eval_max_examples: int | None = field(default=1000, metadata={
        "help": "Validation users used by periodic evaluation: a fixed random sample (None: all; 0: no validation, "
                "the last model is kept: a final fit for an epoch budget an earlier, validated run chose)."})
    eval_sample_seed: int = field(default=0, metadata={"help": "Seed of that sample (the same for every run)."})
    empty_history: str = field(default="skip", metadata={"help": "'skip' or 'error' for empty histories."})
    item_text: bool = field(default=False, metadata={
        "help": "Mix LC-Rec-style alignment examples (item text -> SID, SID -> item text; one per item and task "
                "per epoch) into training; needs a pretrained model (model_name_or_path)."})
    item_text_column: str = field(default="text", metadata={"help": "Item table column with the item text."})
    item_text_alignment: str = field(default="title_to_sid,sid_to_title", metadata={
        "help": "Comma-separated alignment tasks: title_to_sid, sid_to_title."})
    item_text_max_tokens: int = field(default=32, metadata={"help": "Item text cut to this many tokens."})
    dense_item_features: str | None = field(default=None, metadata={
        "help": "Item table with <modality>_embedding columns (hf-simcit features' output; the pipeline sets it) "
                "whose dense_item_modality the dense item head learns to predict (model dense_head_dim > 0)."})
    dense_item_modality: str = field(default="text", metadata={
        "help": "The modality of dense_item_features the dense item head predicts."})

    def __post_init__(self):
        self.resolved_objective()   # a bad objective stops the pipeline before its first stage, not at training
        self.text_tasks()           # likewise bad item-text settings
        if self.item_text_max_tokens < 1:
            raise SimCITInputError(f"item_text_max_tokens must be >= 1, got {self.item_text_max_tokens}")

    def text_tasks(self) -> tuple[str, ...]:
        from ..recommender.data import ALIGNMENT_TASKS

        tasks = tuple(t.strip() for t in self.item_text_alignment.split(",") if t.strip())
        if not tasks or set(tasks) - set(ALIGNMENT_TASKS):
            raise SimCITInputError(f"item_text_alignment must be a comma-separated list of {', '.join(ALIGNMENT_TASKS)}; "
                                   f"got {self.item_text_alignment!r}")
        return tasks

    def template(self) -> PromptTemplate:
        return PromptTemplate(kind=self.prompt_template, instruction=self.instruction, add_eos=self.add_eos)

    def resolved_objective(self) -> str:
        objective = self.objective
        if objective == "auto":
            objective = "full_sequence" if self.prompt_template == "plain" else "prefix"
        if objective not in ("full_sequence", "prefix"):
            raise SimCITInputError(f"objective must be 'full_sequence', 'prefix' or 'auto', got {self.objective!r}")
        return objective


@dataclass
class RecommenderTrainingArguments:
    """Optimisation, evaluation and checkpointing (recipe section ``training``)."""

    output_dir: str = field(default="runs/recommender", metadata={
        "help": "Final (best) model: adapter or full model + extended tokenizer."})
    checkpoint_dir: str | None = field(default=None, metadata={
        "help": "checkpoint-<step> folders (default: <output_dir>_checkpoints)."})
    seed: int = 42
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    adam_beta2: float = 0.999
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.05
    num_train_epochs: float = field(default=1.0, metadata={
        "help": "Epochs to train, the budget (with early stopping: the cap)."})
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; overrides num_train_epochs if > 0."})
    max_train_seconds: float = field(default=0.0, metadata={
        "help": "Stop once training (evaluation excluded) has run this long, then validate and keep the best "
                "(0: no time limit); an equal-time budget for comparing models of different speeds."})
    per_device_train_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    mixed_precision: str = field(default="auto", metadata={
        "help": "'auto' (bf16 on a GPU that has it, else none), 'no', 'bf16' or 'fp16'."})
    logging_steps: int = 50
    eval_steps: int = field(default=0, metadata={"help": "Validate every N steps (0: only at the end)."})
    eval_epochs: int = field(default=0, metadata={"help": "Validate at the end of every N-th epoch (0: never)."})
    early_stopping_patience: int = field(default=0, metadata={
        "help": "Stop after this many validations without a better metric_for_best_model (0: never stop early)."})
    early_stopping_window: int = field(default=1, metadata={
        "help": "Validations in the trailing mean that also counts as progress (1: the value alone); a larger "
                "window keeps one noisy validation from ending a rising run. The best single value is kept."})
    group_by_length: bool = field(default=True, metadata={
        "help": "Batches of similar lengths (LengthGroupedSampler): less padding, same randomness per epoch."})
    labelled_loss: bool = field(default=True, metadata={
        "help": "Output layer only at labelled positions (LabelledTokenLoss); false: the model's own loss."})
    softmax_over: str = field(default="auto", metadata={
        "help": "labelled_loss: 'sid' rows only, whole 'vocab', or 'auto' (sid for a large base vocabulary)."})
    dense_loss_weight: float = field(default=1.0, metadata={
        "help": "Weight of the dense item head's InfoNCE (model dense_head_dim > 0) beside the SID loss."})
    dense_temperature: float = field(default=0.07, metadata={"help": "Temperature of that InfoNCE."})
    hybrid_weights: str = field(default="", metadata={
        "help": "With a dense item head: after training, the best checkpoint ranks the validation sample by "
                "the hybrid (HybridRanking) at each of these comma-separated weights (e.g. 0,0.5,1,2; 0 is the "
                "beam's own order) and keeps the best as its folder's hybrid_weight, the ranking it then serves."})
    dense_negatives: str = field(default="batch", metadata={
        "help": "The dense head's negatives: the batch's other target items ('batch'), or every item of the SID "
                "table ('catalogue': a full softmax, as SASRec's, and no bias towards the batch's popular items)."})
    save_steps: int = field(default=0, metadata={"help": "Checkpoint every N steps (0: never)."})
    save_total_limit: int = 2
    metric_for_best_model: str = field(default="auto", metadata={
        "help": "Validation metric that selects the best model; 'auto' = NDCG at the largest K."})
    eval_num_beams: int = 20
    eval_batch_size: int = 32
    eval_ks: str = "5,10"
    resume_from_checkpoint: str | None = field(default="auto", metadata={"help": RESUME_HELP})
    cpu: bool = False
    dataloader_num_workers: int = 0

    def __post_init__(self):
        # no budget would train 0 steps and fail at the final validation (a TypeError, after every earlier stage)
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise SimCITInputError(f"num_train_epochs must be positive (or max_steps > 0), got "
                                   f"num_train_epochs={self.num_train_epochs} and max_steps={self.max_steps}")
        resume_choice(self.resume_from_checkpoint)
        EarlyStopping(self.early_stopping_patience, self.early_stopping_window)   # one line now, not at epoch 1
        if self.dense_negatives not in DENSE_NEGATIVES:
            raise SimCITInputError(f"dense_negatives must be one of {', '.join(DENSE_NEGATIVES)}, "
                                   f"got {self.dense_negatives!r}")
        self.hybrid_weight_choices()

    def hybrid_weight_choices(self) -> tuple[float, ...]:
        """``hybrid_weights`` as floats (empty: no choice to make); one error names a bad list."""
        parts = [p.strip() for p in str(self.hybrid_weights or "").split(",") if p.strip()]
        try:
            weights = tuple(float(p) for p in parts)
        except ValueError:
            weights = (-1.0,)
        if any(not (0 <= w < float("inf")) for w in weights) or len(set(weights)) != len(weights):
            raise SimCITInputError(f"hybrid_weights must be distinct comma-separated weights >= 0 (e.g. 0,0.5,1,2), "
                                   f"got {self.hybrid_weights!r}")
        return weights

    def ks(self) -> tuple[int, ...]:
        from ..utils.recipes import parse_positive_ints

        return parse_positive_ints(self.eval_ks, "eval_ks")

    def checkpoints(self) -> Path:
        return checkpoint_folder(self.output_dir, self.checkpoint_dir)


def parse_recommender_recipe(path: str, overrides: list[str] | None = None):
    """Read a recipe YAML into (model, data, training) argument dataclasses; ``--key value`` overrides win.

    Keys and types are checked before anything runs (:func:`~hf_simcit.utils.recipes.recipe_dataclasses`).
    """
    from ..utils.recipes import mapping_fields, parse_overrides, read_recipe, recipe_dataclasses

    types = (RecommenderModelArguments, RecommenderDataArguments, RecommenderTrainingArguments)
    flat = read_recipe(path, mappings=mapping_fields(*types))  # sections (model:, data:, training:) or flat keys
    flat |= parse_overrides(overrides, f"{path} (command line)")
    return recipe_dataclasses(types, flat, f"{path} (recommender recipe)")


# --------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------
def load_sid_source(sid_dir: str, item_ids: list[str] | None = None):
    """The SID tokenizer saved by ``assign`` (a SimCITTokenizer folder, or a ``.npy`` of codes whose item ids
    are ``"0", "1", ...``), its rows aligned to the data's item order."""
    from ..tokenization_simcit import SimCITTokenizer

    path = Path(sid_dir)
    if not path.exists():   # else transformers reads the path as a Hub repo id and says so
        raise SimCITInputError(f"sid_dir {str(path)!r} does not exist; run `hf-simcit assign` to write the SIDs")
    if path.suffix == ".npy":
        import numpy as np

        try:
            codes = np.load(path, allow_pickle=False)   # a pickled (object) array is refused, never unpickled
        except ValueError as err:
            raise SimCITInputError(f"sid_dir {str(path)!r}: not a plain integer code array ({err})") from None
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[0] == 0:
            raise SimCITInputError(f"SID codes must be a non-empty (num_items, num_levels) array, got {codes.shape}")
        tok = SimCITTokenizer.from_codes(codes, [str(i) for i in range(codes.shape[0])])
    else:
        tok = SimCITTokenizer.from_pretrained(str(path))
    return tok if item_ids is None else tok.aligned_to(item_ids)   # names unknown items


class _TrainableState:
    """Checkpoint view of a model: only parameters that train (LoRA, SID rows, or all for a full fine-tune).

    Why: a LoRA checkpoint stays adapter-sized, and tied weights are stored once (safetensors refuses
    shared tensors). The trainer writes checkpoints from the gathered state dict (``trainable_names``) and
    loads them through this view.
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def trainable_names(self) -> list[str]:
        return [n for n, p in self.model.named_parameters() if p.requires_grad]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        missing = [n for n, p in params.items() if p.requires_grad and n not in state]
        if missing or set(state) - set(params):
            raise SimCITInputError(f"checkpoint does not match the model: missing {missing[:3]}, "
                                   f"unexpected {sorted(set(state) - set(params))[:3]}")
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value.to(params[name].device, params[name].dtype))


def dense_item_embeddings(data_args: RecommenderDataArguments, sid_source: Any) -> torch.Tensor:
    """``(num_items, D)``: ``data_args.dense_item_modality`` of the item table ``dense_item_features``, in the SID
    table's item order (an item the table lacks, or lacks the modality of, is one clear error)."""
    from ..quantizers.features import load_item_features, read_item_table

    table = load_item_features(read_item_table(data_args.dense_item_features, "dense_item_features"),
                               [data_args.dense_item_modality])
    if getattr(sid_source, "item_ids", None) is None:
        raise SimCITInputError("dense_item_features needs a SID table with item ids to align the embeddings to")
    row_of = {item: row for row, item in enumerate(table.item_ids)}
    item_ids = [str(i) for i in sid_source.item_ids]
    missing = [item for item in item_ids if item not in row_of]
    if missing:
        raise SimCITInputError(f"dense_item_features {data_args.dense_item_features}: item {missing[0]!r} of the SID "
                               f"table is not in it ({len(missing)} missing)")
    rows = torch.as_tensor([row_of[item] for item in item_ids], dtype=torch.long)
    absent = ~table.masks[data_args.dense_item_modality][rows]
    if bool(absent.any()):
        raise SimCITInputError(f"dense_item_features {data_args.dense_item_features}: item "
                               f"{item_ids[int(absent.nonzero()[0])]!r} has no {data_args.dense_item_modality} "
                               "embedding")
    return table.features[data_args.dense_item_modality][rows]


# --------------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------------
def train_recommender(
    model_args: RecommenderModelArguments,
    data_args: RecommenderDataArguments,
    training_args: RecommenderTrainingArguments,
    *,
    splits: Any = None,
    sid_source: Any = None,
    step_callback: Callable[[int, dict[str, Any]], None] | None = None,
    item_texts: list[str] | None = None,
    item_embeddings: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Fine-tune the recommender; returns ``{"best_metrics", "best_step", "final_step", "output_dir", "log"}``.

    ``splits`` (a ``DatasetDict`` with train/validation) and ``sid_source`` (a ``SimCITTokenizer``, e.g.
    ``SimCITTokenizer.from_codes``) may be given directly; otherwise they are read from
    ``data_args.data_dir`` and ``data_args.sid_dir``. ``step_callback(step, logs)`` runs after every
    optimizer step (and its checkpoint), e.g. to stop a run early. ``item_texts`` (one per item, in the SID
    table's order) feed ``data_args.item_text``; by default they are the prepared data's ``item_text_column``.
    ``item_embeddings`` ``(num_items, model_args.dense_head_dim)``, in the SID table's order: the content
    embeddings the dense item head learns to predict (needed exactly when ``dense_head_dim > 0``).
    """
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    from ..data.splits import sample_rows
    from ..recommender.data import (
        IGNORE_INDEX,
        LengthGroupedSampler,
        RecommenderCollator,
        SIDPromptFormatter,
        build_full_sequence_dataset,
        build_training_dataset,
    )
    from ..recommender.dense import DenseItemLoss, check_item_embeddings
    from ..recommender.evaluation import evaluate_recommender
    from ..recommender.modeling import build_recommender, save_recommender
    from ..recommender.objective import LabelledTokenLoss
    from .checkpointing import CheckpointManager, EpochShuffleSampler, epoch_batches
    from .distributed import build_accelerator, full_state_dict, match_deepspeed_gradient_clipping

    args = training_args
    accelerator = build_accelerator(cpu=args.cpu, mixed_precision=args.mixed_precision,
                                    gradient_accumulation_steps=args.gradient_accumulation_steps)
    # which checkpoint to resume, decided (and refused where it cannot be restored) before any work; the best
    # model goes to output_dir
    checkpoints = CheckpointManager(args.checkpoints(), args.output_dir, args.save_total_limit)
    resume_path = checkpoints.resolve(args.resume_from_checkpoint, accelerator)
    match_deepspeed_gradient_clipping(accelerator, args.max_grad_norm)
    if data_args.item_text and not model_args.model_name_or_path:
        raise SimCITInputError("item_text needs a pretrained model (model_name_or_path, e.g. smollm2-135m): the "
                               "config-built Llama's tokenizer has no words")
    set_seed(args.seed)
    if splits is None or sid_source is None or (data_args.item_text and item_texts is None):
        if not data_args.data_dir or (sid_source is None and not data_args.sid_dir):
            raise SimCITInputError("recipe needs data_dir (prepared data) and sid_dir (SID tokenizer folder)")
        from ..data import load_prepared

        prepared = load_prepared(data_args.data_dir)
        splits = prepared.splits if splits is None else splits
        if sid_source is None:
            sid_source = load_sid_source(data_args.sid_dir, prepared.items["item_id"])
        if data_args.item_text and item_texts is None:
            if data_args.item_text_column not in prepared.items.column_names:
                raise SimCITInputError(f"item_text_column {data_args.item_text_column!r} is not a column of the item "
                                       f"table ({prepared.items.column_names})")
            item_texts = list(prepared.items[data_args.item_text_column])
    if model_args.dense_head_dim and item_embeddings is None and data_args.dense_item_features:
        item_embeddings = dense_item_embeddings(data_args, sid_source)
    if bool(model_args.dense_head_dim) != (item_embeddings is not None):
        raise SimCITInputError("the dense item head needs item embeddings (dense_item_features in a recipe), and "
                               f"item embeddings need a dense head: dense_head_dim is {model_args.dense_head_dim}, "
                               f"item embeddings {'given' if item_embeddings is not None else 'not given'}")
    if model_args.dense_head_dim and not args.labelled_loss:
        raise SimCITInputError("the dense item head trains through the labelled-token loss (labelled_loss: true)")
    if args.hybrid_weight_choices() and not model_args.dense_head_dim:
        raise SimCITInputError(f"hybrid_weights {args.hybrid_weights!r} need a dense item head (dense_head_dim > 0)")
    if args.hybrid_weight_choices() and data_args.eval_max_examples == 0:
        raise SimCITInputError("hybrid_weights are chosen on the validation sample; eval_max_examples is 0 (none)")
    if args.hybrid_weight_choices() and not ("validation" in splits and len(splits["validation"])):
        raise SimCITInputError(f"hybrid_weights {args.hybrid_weights!r} are chosen on validation data; the splits "
                               "have no validation rows")
    rec = build_recommender(model_args, sid_source, seed=args.seed)
    if model_args.dense_head_dim:   # saved with the model: a loaded folder ranks by the hybrid on its own
        rec.item_embeddings = check_item_embeddings(item_embeddings, rec.item_token_ids.shape[0],
                                                    model_args.dense_head_dim)
        rec.dense_temperature = args.dense_temperature
    template = data_args.template()
    rec.template = asdict(template)
    # recorded with the model: recommend() cuts longer histories to what training showed the model
    rec.max_history = max((len(h) for part in splits.values() for h in part["history"]), default=None)
    formatter = SIDPromptFormatter(rec.tokenizer, rec.item_token_ids, template)
    objective = data_args.resolved_objective()
    with accelerator.main_process_first():
        if objective == "full_sequence":
            train_ds = build_full_sequence_dataset(splits, formatter, stride=data_args.window_stride,
                                                   predict_first=data_args.predict_first_item)
        else:
            train_ds = build_training_dataset(splits["train"], formatter, empty_history=data_args.empty_history)
        if data_args.max_train_examples:
            train_ds = train_ds.select(range(min(len(train_ds), data_args.max_train_examples)))
        text_examples = 0
        if data_args.item_text:
            from datasets import concatenate_datasets

            from ..recommender.data import ItemTextAlignment

            aligned = ItemTextAlignment(formatter, item_texts, tasks=data_args.text_tasks(),
                                        max_text_tokens=data_args.item_text_max_tokens).dataset()
            text_examples = len(aligned)
            train_ds = concatenate_datasets([train_ds, aligned])
    validation = splits.get("validation", None)
    if data_args.eval_max_examples == 0:
        validation = None     # nothing to select on: the last model is the model
    elif validation is not None and len(validation):
        validation = validation.select(sample_rows(len(validation), data_args.eval_max_examples,
                                                   data_args.eval_sample_seed))
    positions = int(sum(len(ids) for ids in train_ds["input_ids"]))
    accelerator.print(f"objective {objective}: {len(train_ds)} sequences ({text_examples} item-text alignment), "
                      f"{positions} token positions per epoch")

    if args.group_by_length:
        # grouped in global batches: accelerate deals consecutive per-device batches to the processes, so a
        # step of N processes sees exactly the examples of one step of one process with N times the batch
        sampler = LengthGroupedSampler([len(ids) for ids in train_ds["input_ids"]],
                                       args.per_device_train_batch_size * accelerator.num_processes, args.seed)
    else:
        sampler = EpochShuffleSampler(len(train_ds), args.seed)
    loader = torch.utils.data.DataLoader(
        train_ds, batch_size=args.per_device_train_batch_size, sampler=sampler,
        collate_fn=RecommenderCollator(rec.tokenizer.pad_token_id), num_workers=args.dataloader_num_workers)
    model = rec.model
    trainable_names = _TrainableState(model).trainable_names()     # before FSDP flattens the parameters
    # weight decay on matrices only: decaying norm gains and biases towards 0 only hurts (GPT-2, BERT practice)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.learning_rate, betas=(0.9, args.adam_beta2))
    # the labelled-token loss reads hidden states through a hook, outside FSDP/DeepSpeed's parameter gathering
    sharded_engine = any(str(accelerator.distributed_type).endswith(t) for t in ("FSDP", "DEEPSPEED"))
    dense = DenseItemLoss(model, rec.item_token_ids, item_embeddings, args.dense_temperature,
                          args.dense_negatives) if model_args.dense_head_dim else None
    if dense is not None and sharded_engine:
        raise SimCITInputError("the dense item head is not supported under FSDP or DeepSpeed")
    loss_fn = LabelledTokenLoss(model, rec.sid_token_ids, args.softmax_over,
                                text_labels=data_args.item_text and "sid_to_title" in data_args.text_tasks(),
                                dense=dense, dense_weight=args.dense_loss_weight) \
        if args.labelled_loss and not sharded_engine else None
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = max(1, math.ceil(len(loader) / args.gradient_accumulation_steps))
    max_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer=optimizer,
                              num_warmup_steps=int(args.warmup_ratio * max_steps), num_training_steps=max_steps)
    trainable = _TrainableState(accelerator.unwrap_model(model))

    # ---- resume
    state = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "best_step": None,
             "best_metrics": None, "best_epoch": None, "early_stopping": None, "train_seconds": 0.0,
             "stopped_early": False, "log": []}
    # several processes: each its own dropout masks (one process: unchanged); a resumed process continues the
    # stream its checkpoint stored. The batch order comes from the sampler's own generator.
    state.update(checkpoints.restore(resume_path, model=trainable, optimizer=optimizer, scheduler=scheduler,
                                     seed=args.seed, accelerator=accelerator) or {})

    ks = args.ks()

    def run_validation(step: int) -> dict[str, Any] | None:
        if validation is None or len(validation) == 0:
            return None
        # DDP/DeepSpeed: decode with the plain module (no gradient sync in eval); FSDP needs the wrapper
        sharded = str(accelerator.distributed_type).endswith("FSDP")
        eval_model = model if sharded else accelerator.unwrap_model(model)
        metrics = evaluate_recommender(
            eval_model, rec.tokenizer, rec.item_token_ids, validation, template=template, ks=ks,
            num_beams=args.eval_num_beams, batch_size=args.eval_batch_size,
            max_examples=data_args.eval_max_examples, accelerator=accelerator, desc=f"validate@{step}")
        if metrics["invalid_items"]:
            raise RuntimeError(f"constrained decoding returned {metrics['invalid_items']} invalid items")
        return metrics

    # Saving: the main process writes the full state dict; under FSDP and ZeRO-3 every process takes part in
    # gathering it (full_state_dict)
    def save_best(step: int, metrics: dict[str, Any] | None) -> None:
        accelerator.wait_for_everyone()
        weights = full_state_dict(accelerator, model)
        extra = {"step": step, "validation_metrics": metrics, "training_args": asdict(args)}
        if args.hybrid_weight_choices():
            extra["hybrid_weight_chosen"] = False    # until training has ended and _choose_hybrid_weight ran
        checkpoints.save_best(lambda folder: save_recommender(_unwrapped(rec, accelerator, model), folder,
                                                              extra=extra, state_dict=weights), accelerator)

    def save_checkpoint(step: int) -> None:
        accelerator.wait_for_everyone()
        weights = full_state_dict(accelerator, model)
        trainable_weights = None if weights is None else {n: weights[n] for n in trainable_names}
        checkpoints.save(step, model=trainable_weights, optimizer=optimizer, scheduler=scheduler, state=state,
                         accelerator=accelerator)

    model.train()
    step = state["step"]
    progress = tqdm(total=max_steps, initial=step, desc="train recommender",
                    disable=not accelerator.is_local_main_process)
    running_loss, running_count = 0.0, 0
    clock = time.perf_counter()

    def train_seconds() -> float:
        """Training time so far, evaluation and checkpointing excluded (the learning curves' x axis)."""
        nonlocal clock
        now = time.perf_counter()
        state["train_seconds"] += now - clock
        clock = now
        return state["train_seconds"]

    def validate(at_step: int) -> None:
        nonlocal clock
        train_seconds()
        _validate_and_select(at_step, state, run_validation, save_best, args, accelerator)
        clock = time.perf_counter()

    while step < max_steps and not state["stopped_early"]:
        for batch in epoch_batches(accelerator, loader, sampler, state["epoch"], state["batches_in_epoch"]):
            with accelerator.accumulate(model):
                if loss_fn is None:
                    loss = model(**batch).loss
                elif accelerator.num_processes > 1:      # normalised by the global batch's labelled tokens
                    count = (batch["labels"][:, 1:] != IGNORE_INDEX).sum().float()
                    loss = loss_fn(model, batch, accelerator.reduce(count, "sum") / accelerator.num_processes)
                else:
                    loss = loss_fn(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm:
                    # the prepared model's parameters, so FSDP clips by the norm over all shards (frozen ones
                    # have no gradient and do not count); under DeepSpeed this does nothing: the engine clips at
                    # its gradient_clipping, matched to max_grad_norm at start-up
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            state["batches_in_epoch"] += 1
            running_loss += loss.detach().float().item()
            running_count += 1
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step += 1
            state["step"] = step
            progress.update(1)
            logs: dict[str, Any] = {}
            if args.logging_steps and step % args.logging_steps == 0:
                # the mean over every process's batches (each process holds only its own share)
                total = accelerator.reduce(torch.tensor([running_loss, running_count], dtype=torch.float64,
                                                        device=accelerator.device), reduction="sum")
                logs = {"step": step, "loss": (total[0] / total[1].clamp(min=1)).item(),
                        "lr": scheduler.get_last_lr()[0]}
                running_loss, running_count = 0.0, 0
                progress.set_postfix(loss=f"{logs['loss']:.4f}")
                state["log"].append(logs)
            end_of_epoch = state["batches_in_epoch"] == len(loader)
            if end_of_epoch:
                state["epoch"] += 1
                state["batches_in_epoch"] = 0
            state["epoch_progress"] = state["epoch"] + state["batches_in_epoch"] / max(1, len(loader))
            state["train_seconds_at_step"] = train_seconds()
            if args.max_train_seconds and _out_of_time(accelerator, state["train_seconds_at_step"],
                                                       args.max_train_seconds):
                max_steps = step            # the time budget is spent: this step is the last one
            if step < max_steps and (
                    (args.eval_steps and step % args.eval_steps == 0)
                    or (args.eval_epochs and end_of_epoch and state["epoch"] % args.eval_epochs == 0)):
                validate(step)
            if args.save_steps and step % args.save_steps == 0:
                save_checkpoint(step)
            if step_callback is not None:
                step_callback(step, logs)
            if step >= max_steps or state["stopped_early"]:
                break
            if end_of_epoch:
                break                      # the next epoch's order (sampler.use_epoch) starts the loader anew
        else:
            state["epoch"] += 1            # a loader that ended on a step that did not sync (accumulation)
            state["batches_in_epoch"] = 0
    progress.close()
    if not state["stopped_early"]:
        validate(step)
    if args.save_steps:
        save_checkpoint(step)
    hybrid = _choose_hybrid_weight(args, validation, template, ks, accelerator) \
        if args.hybrid_weight_choices() else None
    if accelerator.is_main_process:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.output_dir) / "train_log.json").write_text(json.dumps(
            {"objective": objective, "train_sequences": len(train_ds), "token_positions_per_epoch": positions,
             "best_step": state["best_step"], "best_epoch": state["best_epoch"],
             "best_metrics": state["best_metrics"], "final_step": step, "epochs": state["epoch_progress"],
             "train_seconds": state["train_seconds"], "stopped_early": state["stopped_early"],
             "item_text_examples": text_examples, "hybrid": hybrid, "log": state["log"]}, indent=2))
    accelerator.wait_for_everyone()
    return {"best_metrics": state["best_metrics"], "best_step": state["best_step"], "final_step": step,
            "best_epoch": state["best_epoch"], "epochs": state["epoch_progress"],
            "train_seconds": state["train_seconds"], "stopped_early": state["stopped_early"],
            "token_positions_per_epoch": positions, "objective": objective, "hybrid": hybrid,
            "output_dir": args.output_dir, "log": state["log"], "recommender": rec}


def _choose_hybrid_weight(args: RecommenderTrainingArguments, validation: Any, template: Any, ks: tuple[int, ...],
                          accelerator: Any) -> dict[str, Any]:
    """The best checkpoint (``output_dir``) ranks the validation sample at each of ``args.hybrid_weights``; the
    weight with the best NDCG@max(ks) (the first listed on a tie) becomes the folder's ``hybrid_weight``.
    Returns ``{"weight", "validation_ndcg@K": {weight: value}}``."""
    from ..recommender.dense import HybridRanking
    from ..recommender.evaluation import evaluate_recommender
    from ..recommender.modeling import RECOMMENDER_CONFIG_NAME, HybridWeightNotChosenWarning, load_recommender
    from ..utils.serialization import atomic_write_text

    accelerator.wait_for_everyone()
    with warnings.catch_warnings():     # the choice is being made now: the folder's "not chosen" is expected
        warnings.simplefilter("ignore", HybridWeightNotChosenWarning)
        best = load_recommender(args.output_dir, device=accelerator.device)
    metric = f"ndcg@{max(ks)}"
    weights = args.hybrid_weight_choices()   # one beam search serves every weight
    by_weight = evaluate_recommender(
        best.model, best.tokenizer, best.item_token_ids, validation, template=template, ks=ks,
        num_beams=args.eval_num_beams, batch_size=args.eval_batch_size, accelerator=accelerator,
        desc="hybrid weights", hybrid=HybridRanking(best.item_embeddings, 0.0, best.dense_temperature),
        hybrid_weights=weights)["by_hybrid_weight"]
    found = {weight: by_weight[weight][metric] for weight in weights}
    chosen = max(found, key=found.get)
    figures = {f"{w:g}": v for w, v in found.items()}
    accelerator.print(f"hybrid ranking, validation {metric} per weight "
                      f"{ {f'{w:g}': round(v, 4) for w, v in found.items()} }: weight {chosen:g}")
    if accelerator.is_main_process:
        config_path = Path(args.output_dir) / RECOMMENDER_CONFIG_NAME
        config = json.loads(config_path.read_text()) | {
            "hybrid_weight": chosen, "hybrid_weight_chosen": True, f"hybrid_weight_validation_{metric}": figures}
        atomic_write_text(config_path, json.dumps(config, indent=2))
    accelerator.wait_for_everyone()
    return {"weight": chosen, f"validation_{metric}": figures}


def _validate_and_select(step, state, run_validation, save_best, args, accelerator) -> None:
    metrics = run_validation(step)
    if metrics is None:
        save_best(step, None)           # no validation data: the last model is the model
        state["best_step"], state["best_epoch"] = step, state.get("epoch_progress")
        return
    entry = {"step": step, "epoch": state.get("epoch_progress"), "train_seconds": state.get("train_seconds"),
             **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}}
    state["log"].append(entry)
    accelerator.print(f"step {step} (epoch {entry['epoch']:.2f}, {entry['train_seconds']:.0f} s): " + ", ".join(
        f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    key = args.metric_for_best_model
    if key == "auto":
        key = f"ndcg@{max(args.ks())}"
    if key not in metrics:
        raise SimCITInputError(f"metric_for_best_model {key!r} not among {sorted(metrics)}")
    stopping = EarlyStopping.from_checkpoint(args.early_stopping_patience, args.early_stopping_window,
                                             checkpoint=state)
    if stopping.update(metrics[key]):
        state.update(best_step=step, best_epoch=state.get("epoch_progress"),
                     best_metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        save_best(step, state["best_metrics"])
    state["early_stopping"] = stopping.state_dict()
    if stopping.should_stop:
        state["stopped_early"] = True
        accelerator.print(f"early stopping at step {step}: {key} has not improved on {stopping.best:.4f} "
                          f"(step {state['best_step']}) for {args.early_stopping_patience} validations"
                          + (f" (nor its mean over {args.early_stopping_window})" if args.early_stopping_window > 1
                             else ""))


def _out_of_time(accelerator, seconds: float, budget: float) -> bool:
    """Whether the time budget is spent; several processes follow the slowest clock, so all stop together."""
    if accelerator.num_processes == 1:
        return seconds >= budget
    spent = accelerator.reduce(torch.tensor([seconds], dtype=torch.float64, device=accelerator.device), "max")
    return bool(spent.item() >= budget)


def _unwrapped(rec, accelerator, model):
    from dataclasses import replace

    return replace(rec, model=accelerator.unwrap_model(model))
