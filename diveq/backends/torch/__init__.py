"""PyTorch backend of diveq: the functional API and ``torch.nn.Module`` layers.

Usage::

    import diveq.backends.torch as dq

    out = dq.diveq(z, codebook, noise_std=1e-3)     # functional, autograd-ready
    vq = dq.DiVeQ(num_codes=512, dim=64)            # layer with training state
    values, indices, perplexity = vq(z)

The functions are :mod:`diveq.core` bound to torch; their semantics are those of
:mod:`diveq.reference`. Randomness comes from the keyword ``generator`` (a
:class:`torch.Generator`, ``None`` for torch's default generator), sampled on the device of the
input.
"""

from __future__ import annotations

from diveq._types import (
    EMALayerOutput,
    EMAState,
    LayerDraws,
    LayerOutput,
    Quantized,
    SFLayerOutput,
    SFQuantized,
)
from diveq.backends.torch._api import (
    code_usage,
    commitment_loss,
    diveq,
    ema_init,
    ema_statistics,
    ema_update,
    gumbel_softmax,
    nearest,
    nsvq,
    perplexity,
    product_diveq,
    product_quantize,
    product_sf_diveq,
    product_sf_quantize,
    quantize,
    residual_diveq,
    residual_quantize,
    residual_sf_diveq,
    residual_sf_quantize,
    rotation_trick,
    sf_diveq,
    sf_quantize,
    ste,
)
from diveq.backends.torch._ema_layer import EMAVQ
from diveq.backends.torch._gumbel import GumbelVQ
from diveq.backends.torch._layers import DiVeQ, SFDiVeQ
from diveq.backends.torch._layers_composite import ProductDiVeQ, ResidualDiVeQ

__all__ = [
    "EMALayerOutput",
    "EMAState",
    "EMAVQ",
    "DiVeQ",
    "GumbelVQ",
    "LayerDraws",
    "LayerOutput",
    "ProductDiVeQ",
    "Quantized",
    "ResidualDiVeQ",
    "SFDiVeQ",
    "SFLayerOutput",
    "SFQuantized",
    "code_usage",
    "commitment_loss",
    "diveq",
    "ema_init",
    "ema_statistics",
    "ema_update",
    "gumbel_softmax",
    "nearest",
    "nsvq",
    "perplexity",
    "product_diveq",
    "product_quantize",
    "product_sf_diveq",
    "product_sf_quantize",
    "quantize",
    "residual_diveq",
    "residual_quantize",
    "residual_sf_diveq",
    "residual_sf_quantize",
    "rotation_trick",
    "sf_diveq",
    "sf_quantize",
    "ste",
]
