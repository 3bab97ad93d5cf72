"""RQ-VAE baseline as in TIGER: MLP auto-encoder with a residual quantizer (3 x 256 by default) trained with a
reconstruction loss plus the VQ codebook and commitment losses (straight-through estimator); codebooks start from
residual k-means of the first latents, as TIGER does."""

from __future__ import annotations

import time

import torch
from torch import nn
from tqdm.auto import tqdm

from .base import SemanticIDQuantizer
from .residual import residual_kmeans, squared_distances


class _RQVAENet(nn.Module):
    def __init__(self, input_dim: int, hidden_sizes: list[int], latent_dim: int, num_levels: int, codebook_size: int):
        super().__init__()
        sizes = [input_dim, *hidden_sizes, latent_dim]
        encoder: list[nn.Module] = []
        decoder: list[nn.Module] = []
        for index, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            encoder.append(nn.Linear(a, b))
            if index < len(sizes) - 2:
                encoder.append(nn.ReLU())
        reversed_sizes = sizes[::-1]
        for index, (a, b) in enumerate(zip(reversed_sizes[:-1], reversed_sizes[1:])):
            decoder.append(nn.Linear(a, b))
            if index < len(sizes) - 2:
                decoder.append(nn.ReLU())
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        self.codebooks = nn.Parameter(torch.randn(num_levels, codebook_size, latent_dim) * 0.1)
        # per-dimension standardisation of the inputs (fitted): L2-normalised features have tiny coordinates, and
        # a reconstruction loss at that scale loses to the VQ terms, which then collapse every latent onto one code
        self.register_buffer("input_mean", torch.zeros(input_dim))
        self.register_buffer("input_std", torch.ones(input_dim))

    def standardize(self, inputs: torch.Tensor) -> torch.Tensor:
        return (inputs - self.input_mean) / self.input_std

    def quantize(self, latent: torch.Tensor):
        """-> quantized (straight-through) ``(n, D)``, codes ``(n, L)``, VQ loss, last distances ``(n, K)``."""
        residual = latent
        quantized = torch.zeros_like(latent)
        codes, vq_loss, distances = [], latent.new_zeros(()), None
        for codebook in self.codebooks:
            distances = squared_distances(residual, codebook)
            level_codes = distances.argmin(-1)
            chosen = codebook[level_codes]
            vq_loss = vq_loss + ((residual.detach() - chosen) ** 2).mean() + 0.25 * (
                (residual - chosen.detach()) ** 2
            ).mean()
            quantized = quantized + chosen
            residual = residual - chosen.detach()
            codes.append(level_codes)
        quantized = latent + (quantized - latent).detach()
        return quantized, torch.stack(codes, -1), vq_loss, distances


class RQVAEQuantizer(SemanticIDQuantizer):
    """TIGER-style RQ-VAE. ``fit`` trains for ``steps`` AdamW steps (or until ``time_budget_s``)."""

    name = "rqvae"

    def __init__(
        self,
        num_levels: int = 3,
        codebook_size: int = 256,
        seed: int = 0,
        hidden_sizes: list[int] | None = None,
        latent_dim: int = 32,
        steps: int = 3000,
        batch_size: int = 1024,
        learning_rate: float = 1e-3,
        time_budget_s: float | None = None,
        input_dim: int | None = None,
    ):
        super().__init__(num_levels, codebook_size, seed)
        self.hidden_sizes = list(hidden_sizes) if hidden_sizes is not None else [512, 256, 128]
        self.latent_dim = int(latent_dim)
        self.steps = int(steps)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.time_budget_s = time_budget_s
        self.input_dim = input_dim
        self.net: _RQVAENet | None = None
        self.loss_history: list[float] = []

    def _build(self, input_dim: int) -> None:
        torch.manual_seed(self.seed)
        self.input_dim = int(input_dim)
        self.net = _RQVAENet(input_dim, self.hidden_sizes, self.latent_dim, self.num_levels, self.codebook_size)

    def fit(self, features, masks=None) -> RQVAEQuantizer:
        data = self._inputs(features, masks, fitting=True)
        self._build(data.shape[1])
        net = self.net
        net.input_mean.copy_(data.mean(0))
        net.input_std.copy_(data.std(0).clamp_min(1e-6))
        data = net.standardize(data)
        with torch.no_grad():
            first = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(self.seed))[:16384]]
            codebooks, _ = residual_kmeans(net.encoder(first), self.num_levels, self.codebook_size, seed=self.seed)
            net.codebooks.copy_(codebooks)
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.learning_rate)
        generator = torch.Generator().manual_seed(self.seed)
        start = time.perf_counter()
        net.train()
        for _ in tqdm(range(self.steps), desc="RQ-VAE", leave=False):
            batch = data[torch.randint(len(data), (min(self.batch_size, len(data)),), generator=generator)]
            latent = net.encoder(batch)
            quantized, _, vq_loss, _ = net.quantize(latent)
            loss = ((net.decoder(quantized) - batch) ** 2).mean() + vq_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            self.loss_history.append(loss.item())
            if self.time_budget_s is not None and time.perf_counter() - start > self.time_budget_s:
                break
        net.eval()
        return self

    @torch.no_grad()
    def _walk(self, features, masks):
        data = self.net.standardize(self._inputs(features, masks, fitting=False))
        _, codes, _, distances = self.net.quantize(self.net.encoder(data))
        return codes, distances

    def encode(self, features, masks=None) -> torch.LongTensor:
        return self._walk(features, masks)[0]

    def last_level_distances(self, features, masks=None) -> torch.FloatTensor:
        return self._walk(features, masks)[1]

    def _config(self):
        return {
            **super()._config(), "hidden_sizes": self.hidden_sizes, "latent_dim": self.latent_dim,
            "steps": self.steps, "batch_size": self.batch_size, "learning_rate": self.learning_rate,
            "input_dim": self.input_dim,
        }

    def _state(self):
        return self.net.state_dict()

    def _load_state(self, state):
        self._build(self.input_dim)
        self.net.load_state_dict(state)
        self.net.eval()
