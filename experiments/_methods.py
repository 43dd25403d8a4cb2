"""The study's quantisers: one registry entry per method, each a builder of a quantizer with
the demo's interface (``(values, indices, aux_loss)`` from latents ``(B, D, ...)``).

Equal bits: a one-codebook method with ``K`` codes spends ``log2 K`` bits per latent; the
product and residual composites use ``M = 2`` codebooks of ``sqrt(K)`` codes each, the same
``log2 K`` bits. To add a method, add one :class:`Method` entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

import diveq.backends.torch as dq
from experiments._examples import Baseline, Layer, make_quantizer
from experiments._kmeans import KMeansSF

__all__ = [
    "GUMBEL_KLS",
    "GUMBEL_TAUS",
    "GUMBEL_VARIANTS",
    "METHODS",
    "Method",
    "QuantizerSpec",
    "available",
]

REPLACEMENT_ITERS = 100
COMPOSITE_BOOKS = 2


@dataclass(frozen=True)
class QuantizerSpec:
    """What a builder needs: sizes and the options the study varies."""

    num_codes: int
    dim: int
    noise_std: float
    codebook_init: str
    skip_iters: int
    avg_iters: int
    sf_init: str  # "average" (the layer's own), "kmeans" or "random" (no warm-up)
    steps: int  # training steps (for schedules)


@dataclass(frozen=True)
class Method:
    """A quantiser of the study.

    ``build`` is ``None`` while the method is not implemented yet (the plan skips it and says
    so); ``noise``: it takes ``noise_std``; ``space_filling``: an SF polyline (warm-up,
    ``sf_init``); ``books``: codebooks at equal bits; ``moving``: the codebook moves inside
    the forward pass every step (EMA), so rewritten rows are no replacement count;
    ``variant_of``: a tuning variant of that method (its own part and table, not the main
    comparison).
    """

    label: str
    build: Callable[[QuantizerSpec], nn.Module] | None
    noise: bool = False
    space_filling: bool = False
    books: int = 1
    moving: bool = False
    variant_of: str | None = None


def _baseline(name: str) -> Callable[[QuantizerSpec], nn.Module]:
    def build(s: QuantizerSpec) -> nn.Module:
        return Baseline(
            name,
            s.num_codes,
            s.dim,
            replacement_iters=REPLACEMENT_ITERS,
            codebook_init=s.codebook_init,
        )

    return build


def _demo(name: str) -> Callable[[QuantizerSpec], nn.Module]:
    """The demo's quantizer ``name`` (``examples/_vqvae.py``)."""

    def build(s: QuantizerSpec) -> nn.Module:
        return make_quantizer(
            name, s.num_codes, s.dim, codebook_init=s.codebook_init, steps=s.steps
        )

    return build


def _gumbel(tau: float = 1.0, kl: float = 0.0) -> Callable[[QuantizerSpec], nn.Module]:
    """The demo's Gumbel-softmax, its temperature annealed from ``tau`` to ``tau / 2``, with
    the KL-to-uniform prior term weighted by ``kl``."""

    def build(s: QuantizerSpec) -> nn.Module:
        return make_quantizer(
            "gumbel", s.num_codes, s.dim, codebook_init=s.codebook_init, steps=s.steps,
            gumbel_tau=tau, gumbel_kl=kl,
        )  # fmt: skip

    return build


#: Start temperatures of the Gumbel-softmax tuning part (the main comparison's is 1).
GUMBEL_TAUS = (4.0, 0.1, 0.01)
#: Weights of the KL-to-uniform prior term in the tuning part (the main comparison's is 0).
GUMBEL_KLS = (1e-4, 1e-3, 1e-2)


def _diveq(s: QuantizerSpec) -> nn.Module:
    return Layer(
        dq.DiVeQ(
            s.num_codes,
            s.dim,
            noise_std=s.noise_std,
            replacement_iters=REPLACEMENT_ITERS,
            feature_axis=1,
            codebook_init=s.codebook_init,
        )
    )


def _skip(s: QuantizerSpec) -> int:
    return 0 if s.sf_init == "random" else s.skip_iters


def _sf_diveq(s: QuantizerSpec) -> nn.Module:
    layer = dq.SFDiVeQ(
        s.num_codes,
        s.dim,
        noise_std=s.noise_std,
        skip_iters=_skip(s),
        avg_iters=s.avg_iters,
        feature_axis=1,
        codebook_init=s.codebook_init,
    )
    return KMeansSF(layer) if s.sf_init == "kmeans" else Layer(layer)


def _composite(kind: type[nn.Module], space_filling: bool) -> Callable[[QuantizerSpec], nn.Module]:
    def build(s: QuantizerSpec) -> nn.Module:
        if s.sf_init == "kmeans":
            raise ValueError("the k-means init is implemented for the one-codebook SF-DiVeQ only")
        return Layer(
            kind(
                COMPOSITE_BOOKS,
                math.isqrt(s.num_codes),
                s.dim,
                space_filling=space_filling,
                noise_std=s.noise_std,
                replacement_iters=REPLACEMENT_ITERS,
                skip_iters=_skip(s),
                avg_iters=s.avg_iters,
                feature_axis=1,
                codebook_init=s.codebook_init,
            )
        )

    return build


def _composite_method(label: str, kind: type[nn.Module], space_filling: bool) -> Method:
    build = _composite(kind, space_filling)
    return Method(label, build, noise=True, space_filling=space_filling, books=COMPOSITE_BOOKS)


METHODS: dict[str, Method] = {
    "ste": Method("STE", _baseline("ste")),
    "rotation": Method("rotation trick", _baseline("rotation")),
    "nsvq": Method("NSVQ", _baseline("nsvq")),
    "diveq": Method("DiVeQ", _diveq, noise=True),
    "sf_diveq": Method("SF-DiVeQ", _sf_diveq, noise=True, space_filling=True),
    "product_diveq": _composite_method("product DiVeQ", dq.ProductDiVeQ, False),
    "residual_diveq": _composite_method("residual DiVeQ", dq.ResidualDiVeQ, False),
    "product_sf_diveq": _composite_method("product SF-DiVeQ", dq.ProductDiVeQ, True),
    "residual_sf_diveq": _composite_method("residual SF-DiVeQ", dq.ResidualDiVeQ, True),
    "ema": Method("EMA codebook", _demo("ema"), moving=True),
    "gumbel": Method("Gumbel-softmax", _demo("gumbel")),
}
#: The Gumbel-softmax tuning variants: method name -> (start temperature, KL weight).
GUMBEL_VARIANTS = {f"gumbel_tau{tau:g}": (tau, 0.0) for tau in GUMBEL_TAUS} | {
    f"gumbel_kl{kl:g}": (1.0, kl) for kl in GUMBEL_KLS
}
METHODS.update(
    {
        name: Method(
            f"Gumbel-softmax, tau {tau:g}" if not kl else f"Gumbel-softmax, KL {kl:g}",
            _gumbel(tau, kl),
            variant_of="gumbel",
        )
        for name, (tau, kl) in GUMBEL_VARIANTS.items()
    }
)


def available(name: str) -> bool:
    """Whether ``name`` has a builder (an implemented method)."""
    return METHODS[name].build is not None
