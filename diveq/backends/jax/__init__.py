"""JAX backend of diveq: the functional API and pure functional layers.

Usage::

    import diveq.backends.jax as dq

    out = dq.diveq(z, codebook, noise_std=1e-3, key=key)   # functional, grad/jit/vmap-ready
    vq = dq.DiVeQ(num_codes=512, dim=64)                    # layer config (frozen)
    state = vq.init(key)                                    # pytree: codebook + counters
    (values, indices, perplexity), state = vq.apply(state, z, key=key)

The functions are :mod:`diveq.core` bound to JAX; their semantics are those of
:mod:`diveq.reference`. Randomness comes from the keyword ``key`` (:func:`jax.random.key`).
The same layers as Flax NNX / Linen modules and Equinox layers: :mod:`diveq.backends.flax.nnx`,
:mod:`diveq.backends.flax.linen`, :mod:`diveq.backends.equinox` (optional extras; importing
this module imports none of them).
"""

from __future__ import annotations

from diveq._types import (
    EMALayerOutput,
    EMAState,
    GumbelState,
    LayerDraws,
    LayerOutput,
    Quantized,
    SFLayerOutput,
    SFQuantized,
)
from diveq.backends.jax._api import (
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
from diveq.backends.jax._ema_layer import EMAVQ
from diveq.backends.jax._gumbel import GumbelVQ
from diveq.backends.jax._layers import DiVeQ, ProductDiVeQ, ResidualDiVeQ, SFDiVeQ
from diveq.backends.jax._state import (
    CompositeState,
    State,
    merge_params,
    split_params,
)

__all__ = [
    "EMALayerOutput",
    "EMAState",
    "EMAVQ",
    "CompositeState",
    "DiVeQ",
    "GumbelState",
    "GumbelVQ",
    "LayerDraws",
    "LayerOutput",
    "ProductDiVeQ",
    "Quantized",
    "ResidualDiVeQ",
    "SFDiVeQ",
    "SFLayerOutput",
    "SFQuantized",
    "State",
    "code_usage",
    "commitment_loss",
    "diveq",
    "ema_init",
    "ema_statistics",
    "ema_update",
    "gumbel_softmax",
    "merge_params",
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
    "split_params",
    "ste",
]
