"""NumPy float64 reference implementation of diveq: the normative semantics, with analytic VJPs.

Short and obviously right rather than fast; every backend is tested against it elementwise
with identical explicit draws. Inputs are array-likes of a real floating dtype; every function
checks its arguments (shapes, dtypes, finite values, dither in ``[0, 1)``) at call time and
returns float64 values and int64 indices. Inputs are never modified.

Each stochastic estimator ``f`` and each baseline has a ``f_vjp(z, codebook(s), cotangent,
*, ...)`` returning ``(dz, dcodebook(s))``, with the draws given explicitly.

The layers (:class:`DiVeQ`, :class:`SFDiVeQ`, :class:`ProductDiVeQ`, :class:`ResidualDiVeQ`)
are a pure state machine over a :class:`LayerState`: ``layer.apply(state, z)`` returns the
output and a new state, built from the functions above.
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
from diveq.reference._baselines import (
    nsvq,
    nsvq_vjp,
    rotation_trick,
    rotation_trick_vjp,
    ste,
    ste_vjp,
)
from diveq.reference._commitment import commitment_loss, commitment_loss_vjp
from diveq.reference._composite import (
    product_diveq,
    product_diveq_vjp,
    residual_diveq,
    residual_diveq_vjp,
)
from diveq.reference._composite_inference import (
    product_quantize,
    product_sf_quantize,
    residual_quantize,
    residual_sf_quantize,
)
from diveq.reference._composite_sf import (
    product_sf_diveq,
    product_sf_diveq_vjp,
    residual_sf_diveq,
    residual_sf_diveq_vjp,
)
from diveq.reference._diveq import diveq, diveq_vjp
from diveq.reference._ema import ema_init, ema_statistics, ema_update
from diveq.reference._ema_layer import EMAVQ
from diveq.reference._gumbel import gumbel_softmax, gumbel_softmax_vjp
from diveq.reference._gumbel_layer import GumbelState, GumbelVQ
from diveq.reference._layer_state import LayerState
from diveq.reference._layers import DiVeQ, ProductDiVeQ, ResidualDiVeQ, SFDiVeQ
from diveq.reference._replacement import dead_codes, replace_dead_codes
from diveq.reference._search import nearest, quantize, sf_quantize
from diveq.reference._sf_diveq import sf_diveq, sf_diveq_vjp
from diveq.reference._usage import code_usage, perplexity, update_usage
from diveq.reference._warmup import warmup_codebook

__all__ = [
    "Quantized",
    "SFQuantized",
    # search and inference
    "nearest",
    "quantize",
    "sf_quantize",
    "product_quantize",
    "residual_quantize",
    "product_sf_quantize",
    "residual_sf_quantize",
    # estimators
    "diveq",
    "sf_diveq",
    "product_diveq",
    "residual_diveq",
    "product_sf_diveq",
    "residual_sf_diveq",
    # baselines
    "ste",
    "nsvq",
    "rotation_trick",
    "gumbel_softmax",
    "commitment_loss",
    # vector-Jacobian products
    "diveq_vjp",
    "sf_diveq_vjp",
    "product_diveq_vjp",
    "residual_diveq_vjp",
    "product_sf_diveq_vjp",
    "residual_sf_diveq_vjp",
    "ste_vjp",
    "nsvq_vjp",
    "rotation_trick_vjp",
    "gumbel_softmax_vjp",
    "commitment_loss_vjp",
    # training state
    "code_usage",
    "perplexity",
    "update_usage",
    "dead_codes",
    "replace_dead_codes",
    "warmup_codebook",
    # the EMA codebook
    "EMAState",
    "EMAVQ",
    "EMALayerOutput",
    "ema_init",
    "ema_statistics",
    "ema_update",
    # layers
    "DiVeQ",
    "SFDiVeQ",
    "ProductDiVeQ",
    "ResidualDiVeQ",
    "GumbelVQ",
    "LayerState",
    "GumbelState",
    "LayerDraws",
    "LayerOutput",
    "SFLayerOutput",
]
