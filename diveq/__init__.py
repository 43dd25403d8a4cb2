"""diveq: differentiable vector quantization (DiVeQ and SF-DiVeQ).

The package root is framework-free: it imports NumPy and array-api-compat only. Pick an
implementation by import path:

- :mod:`diveq.reference` -- the normative NumPy float64 reference with analytic VJPs;
- :mod:`diveq.core` -- the implementation written once against the Python array API;
- :mod:`diveq.backends.torch` -- PyTorch functions and ``nn.Module`` layers;
- :mod:`diveq.backends.jax` -- JAX functions and pure functional layers;
- :mod:`diveq.testing` -- the conformance kit (``check_backend``).
"""

from __future__ import annotations

from diveq._temperature import gumbel_temperature
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

__version__ = "0.1.0.dev0"

__all__ = [
    "EMALayerOutput",
    "EMAState",
    "GumbelState",
    "LayerDraws",
    "LayerOutput",
    "Quantized",
    "SFLayerOutput",
    "SFQuantized",
    "__version__",
    "gumbel_temperature",
]
