"""SimCIT: a contrastive residual quantizer that turns multi-modal item features into semantic IDs.

Why contrastive: a recommender must *tell items apart* by their codes, so each item's quantized embedding is
trained to agree with the item's own views (text, collaborative, geography, ...) and to disagree with the other
items of the batch, instead of reconstructing one embedding (RQ-VAE).

Pipeline for ``n`` items and modalities ``m`` (feature sizes ``d_m``), latent size ``D``, ``L`` levels of ``K`` codes::

    x^m (n, d_m) --MLP_m--> e^m (n, D) --attention over present modalities--> z (n, D)
    z --L-level residual quantizer--> codes (n, L) (hard argmin) and q (n, D) (Gumbel-softmax mixture in training)
    loss = sum_m InfoNCE(P(q), P(e^m)) + codeword-diversity(C)

This module is copied next to saved weights for ``trust_remote_code``: it may only import the standard library,
torch, transformers and its sibling modules ``configuration_simcit``, ``errors``, ``safe_files`` and
``tokenization_simcit``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_simcit import SimCITConfig
from .errors import SimCITInputError
from .safe_files import check_safe_folder

# a quantizer folder holds the model and its SID tokenizer: importing the model registers both Auto classes
from .tokenization_simcit import SimCITTokenizer  # noqa: F401


@dataclass
class SimCITQuantizerOutput(ModelOutput):
    """Output of :meth:`SimCITQuantizer.forward`.

    Args:
        loss: total loss, ``contrastive_weight * sum(modality_losses) + codeword_diversity_weight * diversity``.
        contrastive_loss: ``sum(modality_losses)`` (unweighted).
        modality_losses: ``(num_modalities,)`` InfoNCE of each modality, 0 where no item of the batch has it.
        codeword_diversity_loss: mean pairwise cosine similarity of the codewords within each level.
        commitment_loss: mean squared error of each level's residual to its hard codeword (codeword held fixed),
            summed over levels (weighted by ``config.commitment_weight`` in ``loss``).
        codebook_loss: the same error with the residuals held fixed: it moves each chosen codeword toward the
            residuals that chose it (weighted by ``config.codebook_loss_weight``).
        codes: ``(n, L)`` hard codes (argmin at each level).
        quantized: ``(n, D)`` quantized item embeddings (soft in training, hard in eval).
        fused_embeddings: ``(n, D)`` attention-fused modality embeddings ``z``.
        modality_weights: ``(n, num_modalities)`` attention weights (0 for absent modalities).
    """

    loss: torch.FloatTensor | None = None
    contrastive_loss: torch.FloatTensor | None = None
    modality_losses: torch.FloatTensor | None = None
    codeword_diversity_loss: torch.FloatTensor | None = None
    commitment_loss: torch.FloatTensor | None = None
    codebook_loss: torch.FloatTensor | None = None
    codes: torch.LongTensor | None = None
    quantized: torch.FloatTensor | None = None
    fused_embeddings: torch.FloatTensor | None = None
    modality_weights: torch.FloatTensor | None = None


class SimCITModalityEncoder(nn.Module):
    """``d_m -> hidden... -> D`` MLP, ``Linear(bias=False)`` with SiLU between layers (as the reference)."""

    def __init__(self, input_dim: int, hidden_sizes: list[int], output_dim: int):
        super().__init__()
        sizes = [input_dim, *hidden_sizes, output_dim]
        layers: list[nn.Module] = []
        for index, (size_in, size_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(size_in, size_out, bias=False))
            if index < len(sizes) - 2:
                layers.append(nn.SiLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.FloatTensor) -> torch.FloatTensor:
        """``(n, d_m) -> (n, D)``."""
        return self.layers(features)


class SimCITAttentionFusion(nn.Module):
    """``s_m = w^T tanh(W e^m + b)``, softmax over the modalities an item has, ``z = sum_m a_m e^m``."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(
        self, embeddings: torch.FloatTensor, present: torch.BoolTensor
    ) -> tuple[torch.FloatTensor, torch.FloatTensor]:
        """``embeddings (n, M, D)``, ``present (n, M)`` -> fused ``(n, D)``, weights ``(n, M)``."""
        scores = self.score(torch.tanh(self.proj(embeddings))).squeeze(-1)
        scores = scores.masked_fill(~present, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        weights = torch.where(present, weights, torch.zeros_like(weights))  # rows are never all-absent
        return torch.einsum("nm,nmd->nd", weights, embeddings), weights


class SimCITResidualQuantizer(nn.Module):
    """``L`` levels of ``K`` codewords; each level quantizes the residual the previous levels left.

    Codes are the hard argmin at every level (the SID tokens, never affected by the Gumbel noise). In training the
    quantized vector of a level is the Gumbel-softmax mixture ``softmax((-d + g) / tau) @ C_l`` so gradients reach
    the codebooks and the encoders; in eval it is the chosen codeword.
    """

    def __init__(self, num_levels: int, codebook_size: int, dim: int):
        super().__init__()
        self.codebooks = nn.Parameter(torch.empty(num_levels, codebook_size, dim))

    @property
    def num_levels(self) -> int:
        return self.codebooks.shape[0]

    def forward(
        self, latent: torch.FloatTensor, gumbel_temperature: float | None
    ) -> tuple[torch.FloatTensor, torch.LongTensor, torch.FloatTensor, torch.FloatTensor]:
        """``latent (n, D)`` -> quantized ``(n, D)``, codes ``(n, L)``, last-level distances ``(n, K)`` and the
        VQ terms ``(2,)``: commitment (residual -> its hard codeword, the codeword held fixed) and codebook loss
        (codeword -> the residuals that chose it, the residuals held fixed), mean squared errors summed over levels.

        ``gumbel_temperature=None`` quantizes hard (eval); a float uses the Gumbel-softmax mixture.
        """
        residual = latent
        quantized = torch.zeros_like(latent)
        codes = []
        distances = None
        commitment = latent.new_zeros(())
        codebook_loss = latent.new_zeros(())
        for level in range(self.num_levels):
            codebook = self.codebooks[level]
            # ||r||^2 - 2 r.c + ||c||^2 (n, K): one matmul, much cheaper than cdist's backward
            distances = (
                residual.pow(2).sum(-1, keepdim=True) - 2 * residual @ codebook.T + codebook.pow(2).sum(-1)
            ).clamp_min(0)
            level_codes = distances.argmin(dim=-1)
            codes.append(level_codes)
            if latent.shape[0]:
                chosen = codebook[level_codes]
                commitment = commitment + (residual - chosen.detach()).pow(2).mean()
                codebook_loss = codebook_loss + (residual.detach() - chosen).pow(2).mean()
            if gumbel_temperature is None:
                level_quantized = codebook[level_codes]
            else:
                gumbel = -torch.empty_like(distances).exponential_().log()  # Gumbel(0, 1)
                probs = torch.softmax((-distances + gumbel) / gumbel_temperature, dim=-1)
                level_quantized = probs @ codebook
            quantized = quantized + level_quantized
            residual = residual - level_quantized
        return quantized, torch.stack(codes, dim=-1), distances, torch.stack([commitment, codebook_loss])


def _gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather along dim 0 keeping the gradient of the local part; returns (gathered, local offset)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    from torch.distributed.nn.functional import all_gather

    parts = all_gather(tensor)
    return torch.cat(parts, dim=0), dist.get_rank() * tensor.shape[0]


def _gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def info_nce(
    anchors: torch.FloatTensor,
    positives: torch.FloatTensor,
    all_anchors: torch.FloatTensor,
    all_positives: torch.FloatTensor,
    anchor_valid: torch.BoolTensor,
    all_anchor_valid: torch.BoolTensor,
    all_positive_valid: torch.BoolTensor,
    offset: int,
    temperature: float,
) -> torch.FloatTensor:
    """The reference InfoNCE with two kinds of in-batch negatives (other positives and other anchors).

    ``anchors``/``positives`` ``(B, D)`` are this process's L2-normalised rows, ``all_*`` ``(N, D)`` the rows of the
    whole (possibly gathered) batch, local row ``i`` sitting at ``offset + i``. For anchor ``i``:
    ``-log(exp(a_i.p_i/t) / (sum_j exp(a_i.p_j/t) + sum_{j != i} exp(a_i.a_j/t)))``, averaged over valid anchors;
    invalid rows (a missing modality) are neither anchors nor negatives.
    """
    if not bool(anchor_valid.any()):
        return anchors.sum() * 0.0
    batch = anchors.shape[0]
    local = torch.arange(batch, device=anchors.device)
    logits_pos = anchors @ all_positives.T / temperature  # (B, N)
    logits_anc = anchors @ all_anchors.T / temperature  # (B, N)
    logits_pos = logits_pos.masked_fill(~all_positive_valid[None, :], float("-inf"))
    self_mask = torch.zeros_like(logits_anc, dtype=torch.bool)
    self_mask[local, offset + local] = True
    logits_anc = logits_anc.masked_fill(self_mask | ~all_anchor_valid[None, :], float("-inf"))
    log_denominator = torch.logsumexp(torch.cat([logits_pos, logits_anc], dim=-1), dim=-1)
    positive_logit = (anchors * positives).sum(-1) / temperature
    per_anchor = log_denominator - positive_logit
    return per_anchor[anchor_valid].mean()


class SimCITPreTrainedModel(PreTrainedModel):
    config_class = SimCITConfig
    base_model_prefix = "simcit"
    main_input_name = "features"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """``PreTrainedModel.from_pretrained`` that never unpickles: safetensors only, the folder checked first.

        Why: transformers falls back to ``pytorch_model.bin`` when no safetensors file is there, and
        ``AutoModel`` (with or without ``trust_remote_code``) lands here, so this is the one gate for every path.
        """
        if pretrained_model_name_or_path is not None and os.path.isdir(pretrained_model_name_or_path):
            check_safe_folder(pretrained_model_name_or_path)
        if kwargs.get("use_safetensors") is False:
            raise SimCITInputError("SimCIT quantizers load from safetensors only (use_safetensors=False refused)")
        kwargs["use_safetensors"] = True
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        # PyTorch's default Linear init (the reference code's), codebooks uniform(0, 1) as the reference; the
        # trainer replaces the codebooks by k-means centroids when config.codebook_init == "kmeans".
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1 / math.sqrt(module.weight.shape[1])
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, SimCITResidualQuantizer):
            init.uniform_(module.codebooks, 0.0, 1.0)


class SimCITQuantizer(SimCITPreTrainedModel):
    """Multi-modal contrastive residual quantizer; ``encode`` gives each item's semantic ID codes ``(n, L)``.

    Inputs everywhere are ``features: dict[modality, FloatTensor (n, d_m)]`` in any order of keys (all of
    ``config.modality_names`` required) and ``masks: dict[modality, BoolTensor (n,)]`` (True = the item has the
    modality; omitted = all present). Rows where a modality is absent may hold anything finite (zeros).
    """

    def __init__(self, config: SimCITConfig):
        super().__init__(config)
        dim = config.latent_dim
        self.encoders = nn.ModuleDict(
            {
                name: SimCITModalityEncoder(size, config.encoder_hidden_sizes, dim)
                for name, size in zip(config.modality_names, config.modality_dims)
            }
        )
        self.fusion = SimCITAttentionFusion(dim)
        self.quantizer = SimCITResidualQuantizer(config.num_levels, config.codebook_size, dim)
        self.projection = nn.Linear(dim, dim)
        self.post_init()

    # ------------------------------------------------------------------ inputs
    def _stack_inputs(
        self, features: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None
    ) -> tuple[list[torch.FloatTensor], torch.BoolTensor]:
        """Check and order the inputs: per-modality features and a present mask ``(n, M)``."""
        names = self.config.modality_names
        missing = [name for name in names if name not in features]
        if missing:
            raise SimCITInputError(
                f"features lack modality {missing[0]!r} (column {missing[0]}_embedding); this quantizer was "
                f"trained on {names}"
            )
        device = self.device
        tensors, present = [], []
        num_items = None
        for name, dim in zip(names, self.config.modality_dims):
            values = torch.as_tensor(features[name]).to(device=device, dtype=torch.float32)
            if values.dim() != 2 or values.shape[1] != dim:
                raise SimCITInputError(
                    f"modality {name!r} (column {name}_embedding) has shape {tuple(values.shape)}; "
                    f"expected (num_items, {dim})"
                )
            if num_items is None:
                num_items = values.shape[0]
            elif values.shape[0] != num_items:
                raise SimCITInputError(
                    f"modality {name!r} has {values.shape[0]} rows but {names[0]!r} has {num_items}"
                )
            mask = masks.get(name) if masks is not None else None
            mask = (
                torch.ones(num_items, dtype=torch.bool, device=device)
                if mask is None
                else torch.as_tensor(mask).to(device=device, dtype=torch.bool).reshape(-1)
            )
            if mask.shape[0] != num_items:
                raise SimCITInputError(f"mask of modality {name!r} has {mask.shape[0]} rows, expected {num_items}")
            bad = (~torch.isfinite(values).all(dim=1)) & mask
            if bool(bad.any()):
                row = int(bad.nonzero()[0])
                raise SimCITInputError(
                    f"item row {row}: modality {name!r} (column {name}_embedding) has NaN or inf values"
                )
            tensors.append(torch.where(mask[:, None], values, torch.zeros_like(values)))
            present.append(mask)
        present_matrix = torch.stack(present, dim=1)
        orphan = ~present_matrix.any(dim=1)
        if bool(orphan.any()):
            row = int(orphan.nonzero()[0])
            raise SimCITInputError(f"item row {row} has none of the modalities {names}: it cannot be encoded")
        return tensors, present_matrix

    def _embed(
        self, tensors: list[torch.FloatTensor], present: torch.BoolTensor, offset: int = 0
    ) -> tuple[torch.FloatTensor, torch.FloatTensor, torch.FloatTensor]:
        """-> per-modality ``(n, M, D)``, fused ``(n, D)``, attention weights ``(n, M)``; ``offset``: the first
        row's item index (for the error naming a row whose features overflow)."""
        embeddings = torch.stack(
            [self.encoders[name](x) for name, x in zip(self.config.modality_names, tensors)], dim=1
        )
        fused, weights = self.fusion(embeddings, present)
        # finite but huge features (1e38) overflow the encoders or the quantizer's squared distances: NaN loss,
        # codes all 0, and no error unless it is raised here
        overflow = ~torch.isfinite(fused.square().sum(dim=1))
        if bool(overflow.any()):
            row = int(overflow.nonzero()[0]) + offset
            largest = max(float(x[overflow].abs().max()) for x in tensors)
            raise SimCITInputError(f"item row {row}: its features overflow the encoders to NaN/inf (largest |value| "
                                   f"{largest:.3g}); normalise the features (or check the model's weights)")
        return embeddings, fused, weights

    # ------------------------------------------------------------------ training forward
    def forward(
        self,
        features: dict[str, torch.FloatTensor],
        masks: dict[str, torch.BoolTensor] | None = None,
        gumbel_temperature: float | None = None,
        return_loss: bool = True,
        gather_negatives: bool | None = None,
    ) -> SimCITQuantizerOutput:
        """Encode, quantize and (``return_loss``) compute the losses of one batch.

        In training mode the quantized vectors are Gumbel-softmax mixtures at ``gumbel_temperature`` (default
        ``config.gumbel_temperature``); in eval mode they are the chosen codewords, so the loss is the
        validation loss of the hard codes. ``gather_negatives`` overrides ``config.gather_negatives`` (e.g. off
        for an evaluation that every process runs on the same items).
        """
        config = self.config
        gather = config.gather_negatives if gather_negatives is None else gather_negatives
        tensors, present = self._stack_inputs(features, masks)
        embeddings, fused, weights = self._embed(tensors, present)
        temperature = None
        if self.training:
            temperature = gumbel_temperature if gumbel_temperature is not None else config.gumbel_temperature
        quantized, codes, _, vq_terms = self.quantizer(fused, temperature)
        commitment, codebook_loss = vq_terms[0], vq_terms[1]
        if not return_loss:
            return SimCITQuantizerOutput(
                codes=codes, quantized=quantized, fused_embeddings=fused, modality_weights=weights
            )

        anchors = F.normalize(self.projection(quantized), dim=-1)
        all_anchors, offset = _gather_with_grad(anchors) if gather else (anchors, 0)
        all_present = _gather_no_grad(present) if gather else present
        everyone = torch.ones(all_anchors.shape[0], dtype=torch.bool, device=anchors.device)
        losses = []
        for index in range(len(config.modality_names)):
            views = F.normalize(self.projection(embeddings[:, index]), dim=-1)
            all_views = _gather_with_grad(views)[0] if gather else views
            valid, all_valid = present[:, index], all_present[:, index]
            loss = info_nce(
                anchors, views, all_anchors, all_views, valid, everyone, all_valid, offset,
                config.contrastive_temperature,
            )
            if config.symmetric_loss:
                reverse = info_nce(
                    views, anchors, all_views, all_anchors, valid, all_valid, everyone, offset,
                    config.contrastive_temperature,
                )
                loss = 0.5 * (loss + reverse)
            losses.append(loss)
        modality_losses = torch.stack(losses)
        contrastive = modality_losses.sum()
        diversity = self.codeword_diversity()
        total = config.contrastive_weight * contrastive + config.codeword_diversity_weight * diversity
        for weight, term in ((getattr(config, "commitment_weight", 0.0), commitment),
                             (getattr(config, "codebook_loss_weight", 0.0), codebook_loss)):
            if weight:
                total = total + weight * term
        return SimCITQuantizerOutput(
            loss=total,
            contrastive_loss=contrastive,
            modality_losses=modality_losses,
            codeword_diversity_loss=diversity,
            commitment_loss=commitment,
            codebook_loss=codebook_loss,
            codes=codes,
            quantized=quantized,
            fused_embeddings=fused,
            modality_weights=weights,
        )

    def codeword_diversity(self) -> torch.FloatTensor:
        """Mean pairwise cosine similarity of the L2-normalised codewords within a level, averaged over levels."""
        codebooks = F.normalize(self.quantizer.codebooks, dim=-1)  # (L, K, D)
        size = codebooks.shape[1]
        similarity = codebooks @ codebooks.transpose(1, 2)  # (L, K, K)
        off_diagonal = (similarity.sum(dim=(1, 2)) - similarity.diagonal(dim1=1, dim2=2).sum(-1)) / (
            size * (size - 1)
        )
        return off_diagonal.mean()

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def fused_embeddings(
        self,
        features: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor] | None = None,
        batch_size: int = 8192,
    ) -> torch.FloatTensor:
        """Attention-fused item embeddings ``z``: ``(n, D)`` (what the quantizer quantizes)."""
        return self._batched(features, masks, batch_size, lambda fused: fused)

    @torch.no_grad()
    def encode(
        self,
        features: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor] | None = None,
        batch_size: int = 8192,
    ) -> torch.LongTensor:
        """Semantic-ID codes ``(n, L)`` of items (hard argmin at each level; no randomness)."""
        return self._batched(features, masks, batch_size, lambda fused: self.quantizer(fused, None)[1])

    @torch.no_grad()
    def last_level_distances(
        self,
        features: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor] | None = None,
        batch_size: int = 8192,
    ) -> torch.FloatTensor:
        """Squared distances of each item's last residual to the last codebook ``(n, K)`` (for re-assignment)."""
        return self._batched(features, masks, batch_size, lambda fused: self.quantizer(fused, None)[2])

    def _batched(self, features, masks, batch_size, head) -> torch.Tensor:
        tensors, present = self._stack_inputs(features, masks)
        outputs = []
        for start in range(0, present.shape[0], batch_size):
            chunk = [x[start : start + batch_size] for x in tensors]
            _, fused, _ = self._embed(chunk, present[start : start + batch_size], offset=start)
            outputs.append(head(fused))
        if not outputs:
            return head(torch.zeros(0, self.config.latent_dim, device=self.device))
        return torch.cat(outputs).cpu()

    @property
    def codebook_sizes(self) -> list[int]:
        return self.config.codebook_sizes

    @torch.no_grad()
    def set_codebooks(self, codebooks: torch.Tensor) -> None:
        """Replace the codebooks (e.g. by k-means centroids): ``(L, K, D)``."""
        codebooks = torch.as_tensor(codebooks, dtype=self.quantizer.codebooks.dtype)
        if codebooks.shape != self.quantizer.codebooks.shape:
            raise SimCITInputError(
                f"codebooks of shape {tuple(codebooks.shape)} do not fit {tuple(self.quantizer.codebooks.shape)}"
            )
        self.quantizer.codebooks.copy_(codebooks.to(self.quantizer.codebooks.device))


# Registered where it is defined: save_pretrained writes auto_map and copies this file with its siblings
# (trust_remote_code), and AutoModel resolves a SimCITConfig once this module is imported.
SimCITQuantizer.register_for_auto_class("AutoModel")
# Only the installed package registers with the Auto mappings: a copy loaded with trust_remote_code
# (module `transformers_modules.*`) is registered by transformers itself and must not replace the
# package's classes process-wide.
if __name__.startswith("hf_simcit."):
    AutoModel.register(SimCITConfig, SimCITQuantizer, exist_ok=True)

__all__ = ["SimCITQuantizer", "SimCITPreTrainedModel", "SimCITQuantizerOutput", "info_nce"]
