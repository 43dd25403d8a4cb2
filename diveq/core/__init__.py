"""The framework-agnostic implementation, written once against the Python array API.

Every function takes its random draws explicitly (``noise=``, ``dither=``, ``uniform=``,
``gumbel=``) and a ``stop_gradient`` callable (identity by default, right for NumPy and
array-api-strict). The backends (:mod:`diveq.backends.torch`, :mod:`diveq.backends.jax`)
sample the draws, supply their stop-gradient, and add the layers. The semantics are those of
:mod:`diveq.reference`; the test suite checks this module against it on NumPy and on
``array_api_strict``.
"""

from __future__ import annotations

from diveq._types import Quantized, SFQuantized
from diveq.core._baselines import commitment_loss, nsvq, rotation_trick, ste
from diveq.core._composite import (
    product_diveq,
    product_quantize,
    product_sf_diveq,
    product_sf_quantize,
    residual_diveq,
    residual_quantize,
    residual_sf_diveq,
    residual_sf_quantize,
)
from diveq.core._ema import ema_init, ema_statistics, ema_update
from diveq.core._estimators import diveq, sf_diveq
from diveq.core._gumbel import gumbel_softmax
from diveq.core._schedule import (
    replacement_due,
    warmup_collects,
    warmup_initialises,
    warmup_quantizes,
)
from diveq.core._search import nearest, quantize, sf_quantize
from diveq.core._state import (
    code_usage,
    dead_codes,
    perplexity,
    replace_dead_codes,
    update_usage,
    warmup_codebook,
)

__all__ = [
    "Quantized",
    "SFQuantized",
    "code_usage",
    "commitment_loss",
    "dead_codes",
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
    "replace_dead_codes",
    "replacement_due",
    "residual_diveq",
    "residual_quantize",
    "residual_sf_diveq",
    "residual_sf_quantize",
    "rotation_trick",
    "sf_diveq",
    "sf_quantize",
    "ste",
    "update_usage",
    "warmup_codebook",
    "warmup_collects",
    "warmup_initialises",
    "warmup_quantizes",
]
