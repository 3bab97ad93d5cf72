"""Image modality: any Hugging Face vision encoder (ViT, CLIP, SigLIP, ...), pooled and L2-normalised.

Images come from an item-table column holding PIL images, file paths, or ``datasets.Image`` dicts
(``{"bytes": ..., "path": ...}``); a null is an item without an image (absent, masked).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import SimCITInputError
from ..safe_files import check_safe_folder
from .text import resolve_device


def load_image(value: object, label: str):
    """A PIL RGB image from a PIL image, a path, or a ``{"bytes", "path"}`` dict; None stays None."""
    from PIL import Image

    if value is None:
        return None
    try:
        if isinstance(value, Image.Image):
            return value.convert("RGB")
        if isinstance(value, (str, Path)):
            with Image.open(value) as image:
                return image.convert("RGB")
        if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
            source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
            with Image.open(source) as image:
                return image.convert("RGB")
    except (OSError, ValueError) as err:
        raise SimCITInputError(f"image of {label} cannot be read: {err}") from None
    raise SimCITInputError(
        f"image of {label} is a {type(value).__name__}; expected a PIL image, a path or null"
    )


def load_image_encoder(name_or_path: str, device: str | torch.device | None = None):
    """``(image processor, model)`` in eval mode."""
    from transformers import AutoImageProcessor, AutoModel

    if not name_or_path:
        raise SimCITInputError("the image modality needs an encoder: pass --image-encoder NAME_OR_PATH")
    try:
        check_safe_folder(name_or_path)   # a local folder, before anything in it is read: no pickle, no broken safetensors
        processor = AutoImageProcessor.from_pretrained(name_or_path)
        model = AutoModel.from_pretrained(name_or_path, use_safetensors=True)
    except OSError as err:
        raise SimCITInputError(f"cannot load image encoder {name_or_path!r}: {err}") from None
    return processor, model.eval().to(resolve_device(device))


def _pool(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """``(batch, dim)`` image embeddings: the model's image features, pooled output, or mean of the tokens."""
    if hasattr(model, "get_image_features"):
        features = model.get_image_features(pixel_values=pixel_values)
        if isinstance(features, torch.Tensor):
            return features
        pooled = getattr(features, "pooler_output", None)
        if pooled is not None:
            return pooled
        return features.last_hidden_state.mean(dim=1)
    output = model(pixel_values=pixel_values)
    pooled = getattr(output, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)
    states = output.last_hidden_state
    return states.mean(dim=1) if states.dim() == 3 else states.flatten(2).mean(dim=2)


@torch.inference_mode()
def encode_images(
    images: Sequence[object],
    encoder: str | None = None,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    item_ids: Sequence[str] | None = None,
    progress: bool = True,
    processor_and_model=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed item images.

    Returns:
        ``embeddings`` ``(num_items, dim)`` float32, unit norm where present, zero elsewhere, and
        ``present`` ``(num_items,)`` bool.
    """
    if batch_size < 1:
        raise SimCITInputError(f"image batch_size must be positive, got {batch_size}")
    present = np.array([image is not None for image in images], dtype=bool)
    processor, model = processor_and_model or load_image_encoder(encoder, device)
    model_device = next(model.parameters()).device
    rows = np.flatnonzero(present).tolist()
    batches = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    embeddings: np.ndarray | None = None
    for batch in tqdm(batches, desc="image features", unit="batch", disable=not progress or len(batches) < 2):
        loaded = []
        for row in batch:
            label = f"item {item_ids[row]!r} (row {row})" if item_ids is not None else f"row {row}"
            loaded.append(load_image(images[row], label))
        pixel_values = processor(images=loaded, return_tensors="pt")["pixel_values"].to(model_device)
        pooled = F.normalize(_pool(model, pixel_values).float(), dim=-1).cpu().numpy()  # (batch, dim)
        if embeddings is None:
            embeddings = np.zeros((len(images), pooled.shape[1]), dtype=np.float32)
        embeddings[batch] = pooled
    if embeddings is None:
        raise SimCITInputError("the image modality is missing (null) for every item")
    return embeddings, present
