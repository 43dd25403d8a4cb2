"""The study's two data sets and their models.

- ``photos``: the demo's 32x32 RGB patches of the scikit-image photos and its convolutional
  VQ-VAE (16 latents per patch).
- ``signals``: 1-D windows of 64 samples, generated (sums of sinusoids, a step, AR(1) noise),
  coded by a fully connected (MLP) autoencoder with 8 latents per window: another data type
  and another architecture, for the question whether an ordering transfers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from experiments._examples import VQVAE, Autoencoder, load_patches

__all__ = ["DATASETS", "Dataset", "SignalData", "load_data", "make_model", "make_signals"]


@dataclass(frozen=True)
class Dataset:
    """Model sizes of a data set: latents per item, latent size ``dim``, hidden width."""

    latents: int
    dim: int
    hidden: int


DATASETS = {
    "photos": Dataset(latents=16, dim=32, hidden=64),
    "signals": Dataset(latents=8, dim=16, hidden=256),
}

SIGNAL_LENGTH = 64


def make_signals(count: int, seed: int, length: int = SIGNAL_LENGTH) -> torch.Tensor:
    """``count`` windows ``(count, 1, length)`` in ``[-0.5, 0.5]``: one to three sinusoids
    (1-12 cycles per window), a step at a random place in half of them, AR(1) noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / length
    parts = rng.integers(1, 4, size=count)
    amp = rng.uniform(0.04, 0.2, size=(count, 3)) * (np.arange(3) < parts[:, None])
    freq = rng.uniform(1.0, 12.0, size=(count, 3))
    phase = rng.uniform(0.0, 2 * np.pi, size=(count, 3))
    x = np.einsum("nk,nkt->nt", amp, np.sin(2 * np.pi * freq[..., None] * t + phase[..., None]))
    at = rng.integers(1, length, size=count)
    height = rng.normal(0.0, 0.12, size=count) * (rng.random(count) < 0.5)
    x += height[:, None] * (np.arange(length) >= at[:, None])
    eps = rng.normal(0.0, 0.015, size=(count, length))
    noise = np.zeros_like(eps)
    for i in range(length):  # AR(1), coefficient 0.8
        noise[:, i] = eps[:, i] + (0.8 * noise[:, i - 1] if i else 0.0)
    x = np.clip(x + noise, -0.5, 0.5)
    return torch.from_numpy(x[:, None, :].astype(np.float32))


@dataclass
class SignalData:
    """Generated windows; :meth:`batch` serves random training windows (random sign flip)."""

    train: torch.Tensor
    test: torch.Tensor

    def batch(self, size: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, self.train.shape[0], (size,), generator=generator)
        sign = torch.where(torch.rand(size, generator=generator) < 0.5, -1.0, 1.0)
        return self.train[idx] * sign[:, None, None]

    def test_float(self) -> torch.Tensor:
        return self.test


@functools.cache
def load_data(name: str, quick: bool = False) -> object:
    """The data set ``name`` (cached per process); ``quick`` is a small version for smoke runs."""
    if name == "photos":
        return load_patches(per_photo=60 if quick else 1500, test_stride=128 if quick else 32)
    if name == "signals":
        train, test = (300, 60) if quick else (6000, 600)
        # training and test windows from different generator seeds: no window is shared
        return SignalData(train=make_signals(train, seed=0), test=make_signals(test, seed=1))
    raise ValueError(f"unknown data set {name!r}; choose from {sorted(DATASETS)}")


class MLPCodec(Autoencoder):
    """Window ``(B, 1, L)`` -> MLP -> ``latents`` latents of ``dim`` ``(B, dim, latents)`` ->
    quantizer -> MLP -> window. The same interface as the demo's :class:`VQVAE`."""

    def __init__(self, quantizer: nn.Module, spec: Dataset, length: int = SIGNAL_LENGTH) -> None:
        super().__init__(quantizer)
        h, n, d = spec.hidden, spec.latents, spec.dim
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(length, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
            nn.Linear(h, n * d), nn.Unflatten(1, (d, n)),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Flatten(), nn.Linear(n * d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
            nn.Linear(h, length), nn.Unflatten(1, (1, length)),
        )  # fmt: skip


def make_model(name: str, quantizer: nn.Module) -> nn.Module:
    """The autoencoder of data set ``name`` around ``quantizer``."""
    spec = DATASETS[name]
    if name == "photos":
        return VQVAE(quantizer, spec.dim, spec.hidden)
    return MLPCodec(quantizer, spec)
