"""SimCIT quantizer configuration.

The reference design (``alibaba/SimCIT``, see ``docs/simcit.md``) is the default except where it is known not to
train to usable codes in an affordable budget; every departure is a named option:

* ``codebook_init="kmeans"`` (default; reference: ``"uniform"``, codebooks drawn from uniform(0, 1), which stays
  collapsed for hundreds of epochs). The k-means initialisation itself runs in the trainer
  (:func:`hf_simcit.quantizers.initialize_simcit_codebooks`) on the catalogue's fused embeddings.
* ``symmetric_loss`` (off): add the modality -> quantized direction of InfoNCE.
* ``gather_negatives`` (off): use every process's batch as negatives (gradient-preserving all_gather).
* ``gumbel_temperature_end`` (None = fixed temperature as the reference): anneal the Gumbel-softmax temperature
  geometrically from ``gumbel_temperature`` to this value over ``gumbel_anneal_steps``.
* ``codebook_refit`` (``"none"``, as the reference: the SIDs are the argmin over the *learned* codebooks): a record of
  whether the trainer overwrote the codebooks by residual k-means of the fused embeddings (``"periodic"``: every
  ``codebook_refresh_steps`` and at the last step; ``"final"``: once after training). With a re-fit the SIDs are
  RQ-KMeans codes of SimCIT's fused space, not the learned quantizer's; it is an ablation, never the default.

This module is copied next to saved weights for ``trust_remote_code``: it may only import the standard library and
transformers.
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig

CODEBOOK_INITS = ("kmeans", "uniform")
CODEBOOK_REFITS = ("none", "periodic", "final")


class SimCITConfig(PretrainedConfig):
    r"""Configuration of :class:`~hf_simcit.modeling_simcit.SimCITQuantizer`.

    Args:
        modality_names (`list[str]`): item modalities in a fixed order, e.g. ``["text", "cf"]``; the item table
            column of modality ``m`` is ``f"{m}_embedding"``.
        modality_dims (`list[int]`): input feature size of each modality (same order).
        encoder_hidden_sizes (`list[int]`): hidden sizes of each modality's MLP encoder (reference 512, 384, 256).
        latent_dim (`int`): size of the fused item embedding, the codewords and the projection head (128).
        num_levels (`int`): residual quantizer levels ``L`` (3 for LLM use; the released reference config uses 2).
        codebook_size (`int`): codes per level ``K`` (256; reference config 128).
        contrastive_temperature (`float`): InfoNCE temperature (0.07).
        gumbel_temperature (`float`): Gumbel-softmax temperature in training (0.2, fixed in the reference).
        gumbel_temperature_end (`float`, *optional*): anneal to this temperature (None: no annealing).
        gumbel_anneal_steps (`int`): steps over which the temperature is annealed.
        contrastive_weight (`float`): weight of each modality's InfoNCE term (1.0).
        codeword_diversity_weight (`float`): weight of the codeword-diversity regulariser (1.0).
        symmetric_loss (`bool`): also contrast each modality view against all quantized items.
        gather_negatives (`bool`): gather in-batch negatives across processes.
        codebook_init (`str`): ``"kmeans"`` (ours) or ``"uniform"`` (reference).
        codebook_refit (`str`): how the trainer left the codebooks: ``"none"`` (learned codes), ``"periodic"`` or
            ``"final"`` (k-means re-fits; an ablation).
        commitment_weight (`float`): weight of the commitment term, the mean squared error (per dimension) of
            each level's residual to its hard codeword (0: off, as the reference). Why: nothing else ties the
            fused embeddings to the learned codewords, so without it the argmin codes drift onto few codewords.
        codebook_loss_weight (`float`): weight of the VQ codebook loss, the same error with the residuals held
            fixed (0: off, as the reference): each chosen codeword is pulled toward the residuals that chose it,
            so the learned codebook keeps partitioning the moving fused embeddings.
    """

    model_type = "simcit"

    def __init__(
        self,
        modality_names: list[str] | None = None,
        modality_dims: list[int] | None = None,
        encoder_hidden_sizes: list[int] | None = None,
        latent_dim: int = 128,
        num_levels: int = 3,
        codebook_size: int = 256,
        contrastive_temperature: float = 0.07,
        gumbel_temperature: float = 0.2,
        gumbel_temperature_end: float | None = None,
        gumbel_anneal_steps: int = 1000,
        contrastive_weight: float = 1.0,
        codeword_diversity_weight: float = 1.0,
        symmetric_loss: bool = False,
        gather_negatives: bool = False,
        codebook_init: str = "kmeans",
        codebook_refit: str = "none",
        commitment_weight: float = 0.0,
        codebook_loss_weight: float = 0.0,
        **kwargs,
    ):
        modality_names = list(modality_names) if modality_names is not None else ["text"]
        modality_dims = list(modality_dims) if modality_dims is not None else [384] * len(modality_names)
        if len(modality_names) != len(modality_dims):
            raise ValueError(
                f"modality_names has {len(modality_names)} entries but modality_dims has {len(modality_dims)}"
            )
        if len(set(modality_names)) != len(modality_names):
            raise ValueError(f"modality_names has duplicates: {modality_names}")
        if not modality_names:
            raise ValueError("SimCITConfig needs at least one modality")
        if any(int(d) < 1 for d in modality_dims):
            raise ValueError(f"modality_dims must be positive, got {modality_dims}")
        if num_levels < 1 or codebook_size < 2:
            raise ValueError(f"need num_levels >= 1 and codebook_size >= 2, got {num_levels}, {codebook_size}")
        if codebook_init not in CODEBOOK_INITS:
            raise ValueError(f"codebook_init must be one of {CODEBOOK_INITS}, got {codebook_init!r}")
        if codebook_refit not in CODEBOOK_REFITS:
            raise ValueError(f"codebook_refit must be one of {CODEBOOK_REFITS}, got {codebook_refit!r}")
        if commitment_weight < 0 or codebook_loss_weight < 0:
            raise ValueError("commitment_weight and codebook_loss_weight must not be negative")
        if contrastive_temperature <= 0 or gumbel_temperature <= 0:
            raise ValueError("temperatures must be positive")
        self.modality_names = modality_names
        self.modality_dims = [int(d) for d in modality_dims]
        self.encoder_hidden_sizes = (
            list(encoder_hidden_sizes) if encoder_hidden_sizes is not None else [512, 384, 256]
        )
        self.latent_dim = latent_dim
        self.num_levels = num_levels
        self.codebook_size = codebook_size
        self.contrastive_temperature = contrastive_temperature
        self.gumbel_temperature = gumbel_temperature
        self.gumbel_temperature_end = gumbel_temperature_end
        self.gumbel_anneal_steps = gumbel_anneal_steps
        self.contrastive_weight = contrastive_weight
        self.codeword_diversity_weight = codeword_diversity_weight
        self.symmetric_loss = symmetric_loss
        self.gather_negatives = gather_negatives
        self.codebook_init = codebook_init
        self.codebook_refit = codebook_refit
        self.commitment_weight = commitment_weight
        self.codebook_loss_weight = codebook_loss_weight
        super().__init__(**kwargs)

    @property
    def codebook_sizes(self) -> list[int]:
        """Codes per level (all levels share ``codebook_size``)."""
        return [self.codebook_size] * self.num_levels

    def gumbel_temperature_at(self, step: int) -> float:
        """Training temperature at optimisation step ``step`` (geometric annealing when enabled)."""
        if self.gumbel_temperature_end is None or self.gumbel_anneal_steps <= 0:
            return self.gumbel_temperature
        progress = min(max(step, 0) / self.gumbel_anneal_steps, 1.0)
        return self.gumbel_temperature * (self.gumbel_temperature_end / self.gumbel_temperature) ** progress


# Registered where it is defined: save_pretrained writes auto_map and copies this file (trust_remote_code), and
# AutoConfig resolves model_type "simcit" once this module is imported.
SimCITConfig.register_for_auto_class()
# Only the installed package registers with the Auto mappings: a copy loaded with trust_remote_code
# (module `transformers_modules.*`) is registered by transformers itself and must not replace the
# package's classes process-wide.
if __name__.startswith("hf_simcit."):
    AutoConfig.register(SimCITConfig.model_type, SimCITConfig, exist_ok=True)

__all__ = ["SimCITConfig"]
