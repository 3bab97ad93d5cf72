"""The interface every semantic-ID quantizer here shares (SimCIT and the baselines).

``fit(features, masks)`` learns from item features (``dict[modality, (n, d_m)]`` + present masks),
``encode(features, masks)`` gives codes ``(n, L)``, ``last_level_distances`` the distances ``(n, K)`` of each
item's last residual to the last codebook (used by the balanced re-assignment), ``codebook_sizes`` the ``K`` of
each level. Baselines save and load as safetensors + JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import SimCITInputError
from ..safe_files import check_safe_folder
from ..utils.serialization import atomic_directory
from .features import check_features

WEIGHTS_NAME = "quantizer.safetensors"
CONFIG_NAME = "quantizer_config.json"


def concat_modalities(
    features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None, modalities: list[str]
) -> torch.FloatTensor:
    """Concatenate modality features in a fixed order, zeros where absent: ``(n, sum d_m)``."""
    missing = [m for m in modalities if m not in features]
    if missing:
        raise SimCITInputError(f"features lack modality {missing[0]!r} (column {missing[0]}_embedding)")
    checked, checked_masks = check_features({m: features[m] for m in modalities},
                                            None if masks is None else {m: masks.get(m) for m in modalities})
    return torch.cat([checked[m] * checked_masks[m][:, None] for m in modalities], dim=1)


class SemanticIDQuantizer:
    """Base class of the baselines: subclasses implement ``fit``, ``encode`` and the state they save."""

    name = "base"

    def __init__(self, num_levels: int = 3, codebook_size: int = 256, seed: int = 0):
        self.num_levels = int(num_levels)
        self.codebook_size = int(codebook_size)
        self.seed = int(seed)
        self.modalities: list[str] | None = None

    @property
    def codebook_sizes(self) -> list[int]:
        return [self.codebook_size] * self.num_levels

    def _inputs(self, features, masks, fitting: bool) -> torch.FloatTensor:
        if fitting:
            self.modalities = list(features)
        if self.modalities is None:
            raise SimCITInputError(f"{type(self).__name__} is not fitted; call fit(features) first")
        return concat_modalities(features, masks, self.modalities)

    def fit(self, features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None):
        raise NotImplementedError

    def encode(self, features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None
               ) -> torch.LongTensor:
        raise NotImplementedError

    def last_level_distances(self, features, masks=None) -> torch.FloatTensor | None:
        return None

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        return {}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        pass

    def _config(self) -> dict[str, Any]:
        return {"num_levels": self.num_levels, "codebook_size": self.codebook_size, "seed": self.seed}

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``quantizer_config.json`` + ``quantizer.safetensors`` atomically."""
        with atomic_directory(directory) as tmp:
            config = {"quantizer": self.name, "modalities": self.modalities, **self._config()}
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2))
            save_file({k: v.detach().cpu().contiguous() for k, v in self._state().items()}, str(tmp / WEIGHTS_NAME))
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike):
        directory = check_safe_folder(directory)
        config = json.loads((directory / CONFIG_NAME).read_text())
        kind = config.pop("quantizer")
        if kind != cls.name:
            raise SimCITInputError(f"{directory} holds a {kind!r} quantizer, not {cls.name!r}")
        modalities = config.pop("modalities")
        quantizer = cls(**config)
        quantizer.modalities = modalities
        quantizer._load_state(load_file(str(directory / WEIGHTS_NAME)))
        return quantizer


__all__ = ["SemanticIDQuantizer", "concat_modalities"]
