"""A small convolutional VQ-VAE and one quantizer wrapper per method, all with one interface.

Every quantizer takes latents ``(B, D, H, W)`` and returns ``(values, indices, aux_loss)``:
``aux_loss`` is the codebook + commitment loss for STE and the rotation trick and ``0`` for
the others (NSVQ, Gumbel-softmax, DiVeQ and SF-DiVeQ train the codebook through the
reconstruction loss alone).
Train mode runs the estimator, eval mode the hard inference.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import diveq
import diveq.backends.torch as dq
import diveq.core

__all__ = ["INITS", "METHODS", "VQVAE", "Autoencoder", "Baseline", "Layer", "make_quantizer"]

INITS = ("symmetric", "positive")

METHODS = {
    "ste": "STE",
    "rotation": "rotation trick",
    "nsvq": "NSVQ",
    "diveq": "DiVeQ",
    "sf_diveq": "SF-DiVeQ",
    "ema": "EMA codebook",  # STE values, EMA codebook, commitment beta 0.25 (no replacement)
    "gumbel": "Gumbel-softmax",
}


class Baseline(nn.Module):
    """STE, rotation trick or NSVQ around a codebook ``(K, D)`` drawn from ``U(-1/K, 1/K)``
    (``codebook_init="symmetric"``) or ``U[0, 1/K)`` (``"positive"``), as the layers offer.

    Optionally with the same dead-code replacement as :class:`diveq.backends.torch.DiVeQ`
    (as the paper's baselines have), built from :mod:`diveq.core`'s state functions.
    """

    def __init__(
        self,
        method: str,
        num_codes: int,
        dim: int,
        *,
        replacement_iters: int | None = 100,
        codebook_init: str = "symmetric",
    ) -> None:
        super().__init__()
        self.method, self.num_codes = method, num_codes
        if codebook_init not in INITS:
            raise ValueError(f"`codebook_init` must be one of {INITS}; got {codebook_init!r}")
        bound = 1.0 / num_codes
        low = -bound if codebook_init == "symmetric" else 0.0
        self.codebook = nn.Parameter(torch.empty(num_codes, dim).uniform_(low, bound))
        self.replacement_iters = replacement_iters
        self.register_buffer("hits", torch.zeros(num_codes, dtype=torch.int64))
        self.register_buffer("calls_used", torch.zeros(num_codes, dtype=torch.int64))
        self.calls = 0

    @property
    def books(self) -> torch.Tensor:
        """The codebook as ``(1, K, D)``."""
        return self.codebook[None]

    def forward(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.movedim(z, 1, -1)
        if not self.training:
            out = dq.quantize(x, self.codebook)
            return torch.movedim(out.values, -1, 1), out.indices, z.new_zeros(())
        if self.method == "nsvq":
            out = dq.nsvq(x, self.codebook, generator=generator)
            aux = z.new_zeros(())
        else:
            fn = dq.ste if self.method == "ste" else dq.rotation_trick
            out = fn(x, self.codebook)
            aux = dq.commitment_loss(x, self.codebook, out.indices, beta=0.25)
        self._record(out.indices, generator)
        return torch.movedim(out.values, -1, 1), out.indices, aux

    @torch.no_grad()
    def _record(self, indices: torch.Tensor, generator: torch.Generator | None) -> None:
        self.calls += 1
        k = self.num_codes
        hits, used = diveq.core.update_usage(self.hits, self.calls_used, indices, k)
        self.hits.copy_(hits)
        self.calls_used.copy_(used)
        if not diveq.core.replacement_due(self.calls, self.replacement_iters):
            return
        assert self.replacement_iters is not None
        new, _ = diveq.core.replace_dead_codes(
            self.codebook.detach(),
            self.hits,
            self.calls_used,
            replacement_iters=self.replacement_iters,
            discard_threshold=0.01,
            perturb_eps=1e-9,
            uniform=torch.rand(k, generator=generator),
            noise=torch.randn(self.codebook.shape, generator=generator),
        )
        self.codebook.data.copy_(new)
        self.hits.zero_()
        self.calls_used.zero_()


class Layer(nn.Module):
    """A layer of :mod:`diveq.backends.torch` (``DiVeQ``, ``SFDiVeQ``, ``ProductDiVeQ``,
    ``ResidualDiVeQ``, ``EMAVQ``, ...) behind the common interface; an output field ``loss``
    (if any) is the auxiliary loss (``EMAVQ``'s commitment term).

    ``vertices=True`` decodes an SF model at its codewords (nearest codeword per codebook,
    exactly ``log2 K`` bits per latent and codebook) instead of the layer's own inference
    (nearest point of the polyline: a segment index plus a continuous position on it).
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.vertices = False

    @property
    def codebook(self) -> torch.Tensor:
        return self.layer.codebook

    @property
    def books(self) -> torch.Tensor:
        """The codebook(s) as ``(M, K, D')``."""
        books = getattr(self.layer, "codebooks", None)
        return self.layer.codebook[None] if books is None else books

    def forward(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.vertices and not self.training:
            hard = _VERTEX_DECODE.get(type(self.layer), dq.quantize)
            books = getattr(self.layer, "codebooks", None)
            out = hard(torch.movedim(z, 1, -1), self.codebook if books is None else books)
            return torch.movedim(out.values, -1, 1), out.indices, z.new_zeros(())
        out = self.layer(z, generator=generator)
        loss = getattr(out, "loss", None)  # layers whose output carries their auxiliary loss
        return out.values, out.indices, z.new_zeros(()) if loss is None else loss


_VERTEX_DECODE = {dq.ProductDiVeQ: dq.product_quantize, dq.ResidualDiVeQ: dq.residual_quantize}


class Gumbel(nn.Module):
    """:class:`diveq.backends.torch.GumbelVQ`, straight-through (``hard=True``: the decoder sees
    codewords, as at inference), its temperature annealed by :func:`diveq.gumbel_temperature`
    from ``tau`` to ``tau / 2`` over the ``steps`` train-mode calls of the run (Jang et al.'s
    1 to 0.5 by default). ``kl_weight > 0`` adds the Gumbel-softmax VAE's prior term,
    ``kl_weight * KL(softmax(logits) || uniform)`` with the layer's logits
    ``-||z - c_k||^2``, as the auxiliary loss (0: none, the layer alone)."""

    def __init__(
        self,
        num_codes: int,
        dim: int,
        steps: int,
        codebook_init: str = "symmetric",
        tau: float = 1.0,
        kl_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.kl_weight = kl_weight
        self.layer = dq.GumbelVQ(
            num_codes, dim, hard=True, feature_axis=1, codebook_init=codebook_init
        )
        self.rate, self.calls, self.tau = math.log(2.0) / max(steps, 1), 0, tau

    @property
    def codebook(self) -> torch.Tensor:
        return self.layer.codebook

    @property
    def books(self) -> torch.Tensor:
        """The codebook as ``(1, K, D)``."""
        return self.layer.codebook[None]

    def forward(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.training:
            self.layer.tau = diveq.gumbel_temperature(
                self.calls, start=self.tau, end=self.tau / 2, rate=self.rate
            )
            self.calls += 1
        out = self.layer(z, generator=generator)
        aux = self._kl(z) * self.kl_weight if self.training and self.kl_weight else z.new_zeros(())
        return out.values, out.indices, aux

    def _kl(self, z: torch.Tensor) -> torch.Tensor:
        """Mean over latents of ``KL(softmax(-||z - c_k||^2) || uniform)``."""
        c = self.layer.codebook
        rows = z.movedim(1, -1).reshape(-1, c.shape[-1])
        logp = torch.log_softmax(2 * rows @ c.t() - (c * c).sum(-1), dim=-1)  # - ||z||^2: same
        return (logp.exp() * logp).sum(-1).mean() + math.log(c.shape[0])


def make_quantizer(
    method: str,
    num_codes: int,
    dim: int,
    *,
    replacement: bool = True,
    skip_iters: int = 1000,
    avg_iters: int = 50,
    noise_std: float = 1e-3,
    codebook_init: str = "symmetric",
    steps: int = 1500,
    gumbel_tau: float = 1.0,
    gumbel_kl: float = 0.0,
) -> nn.Module:
    """The quantizer of ``method`` (a key of :data:`METHODS`); ``steps``, the length of the run,
    and ``gumbel_tau``, its start, set the Gumbel-softmax temperature schedule; ``gumbel_kl``
    weighs its KL-to-uniform prior term."""
    iters = 100 if replacement else None
    if method == "diveq":
        return Layer(
            dq.DiVeQ(
                num_codes,
                dim,
                noise_std=noise_std,
                replacement_iters=iters,
                feature_axis=1,
                codebook_init=codebook_init,
            )
        )
    if method == "sf_diveq":
        return Layer(
            dq.SFDiVeQ(
                num_codes,
                dim,
                noise_std=noise_std,
                skip_iters=skip_iters,
                avg_iters=avg_iters,
                feature_axis=1,
                codebook_init=codebook_init,
            )
        )
    if method == "ema":
        return Layer(
            dq.EMAVQ(num_codes, dim, beta=0.25, feature_axis=1, codebook_init=codebook_init)
        )
    if method == "gumbel":
        return Gumbel(num_codes, dim, steps, codebook_init, tau=gumbel_tau, kl_weight=gumbel_kl)
    if method in ("ste", "rotation", "nsvq"):
        return Baseline(
            method, num_codes, dim, replacement_iters=iters, codebook_init=codebook_init
        )
    raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS)}")


def _down(c_in: int, c_out: int) -> nn.Module:
    return nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)


def _up(c_in: int, c_out: int) -> nn.Module:
    return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)


class Autoencoder(nn.Module):
    """``encoder`` -> ``quantizer`` -> ``decoder``; subclasses build the two networks."""

    encoder: nn.Module
    decoder: nn.Module

    def __init__(self, quantizer: nn.Module) -> None:
        super().__init__()
        self.quantizer = quantizer

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction, code indices (e.g. ``(B, 4, 4)``) and the quantizer's auxiliary
        loss."""
        values, indices, aux = self.quantizer(self.encoder(x), generator)
        return self.decoder(values), indices, aux


class VQVAE(Autoencoder):
    """32x32x3 -> three stride-2 convolutions -> 4x4 latents of ``dim`` -> quantizer -> back.

    ``hidden`` channels at 8x8 and 4x4, half as many at 16x16 (where most of the cost is).
    """

    def __init__(self, quantizer: nn.Module, dim: int, hidden: int = 64) -> None:
        super().__init__(quantizer)
        h, o = hidden, hidden // 2
        self.encoder = nn.Sequential(
            _down(3, o), nn.ReLU(), _down(o, h), nn.ReLU(), _down(h, h), nn.ReLU(),
            nn.Conv2d(h, h, 3, padding=1), nn.ReLU(), nn.Conv2d(h, dim, 1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(dim, h, 3, padding=1), nn.ReLU(), nn.Conv2d(h, h, 3, padding=1), nn.ReLU(),
            _up(h, h), nn.ReLU(), _up(h, o), nn.ReLU(), _up(o, 3),
        )  # fmt: skip
