"""SimCIT-specific helpers that live outside the model file (which must stay self-contained for Hub loading)."""

from __future__ import annotations

import torch

from .residual import residual_kmeans


@torch.no_grad()
def initialize_simcit_codebooks(
    model, features, masks=None, seed: int = 0, iterations: int = 20, latent_rms: float | None = None
) -> torch.Tensor:
    """Set a :class:`SimCITQuantizer`'s codebooks to residual k-means centroids of its fused item embeddings.

    Why: the reference uniform(0, 1) initialisation leaves almost every item on a handful of codes for hundreds
    of epochs; centroids of the actual embeddings start every code in use. Returns the codes ``(n, L)`` at init.

    ``latent_rms``: first rescale the encoders' last layers so the fused embeddings have this root-mean-square
    per dimension. Why: with freshly initialised encoders the embeddings are tiny, so squared distances are far
    below the Gumbel temperature, the soft assignment is nearly uniform, and training answers by inflating the
    embeddings away from the codebooks, which collapses the hard codes.
    """
    was_training = model.training
    model.eval()
    fused = model.fused_embeddings(features, masks)
    if latent_rms is not None:
        scale = latent_rms / fused.pow(2).mean().sqrt().clamp_min(1e-12)
        for encoder in model.encoders.values():
            last = [m for m in encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.weight.mul_(scale)
        fused = model.fused_embeddings(features, masks)
    codebooks, codes = residual_kmeans(
        fused, model.config.num_levels, model.config.codebook_size, iterations=iterations, seed=seed
    )
    model.set_codebooks(codebooks)
    model.train(was_training)
    return codes
