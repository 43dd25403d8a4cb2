"""Public conformance kit: hypothesis strategies and ``check_backend``.

Any implementation of the diveq API -- ours or a third party's -- can be cross-checked against
:mod:`diveq.reference` with identical explicit draws::

    from diveq.testing import check_backend
    import diveq.backends.torch

    print(check_backend(diveq.backends.torch).table())

and any implementation of the layers against the reference layers (:func:`check_layers`, through
a :class:`LayerDriver`)::

    from diveq.testing import check_layers

    check_layers("torch")   # raises LayerMismatch naming the case, call and field

Requires ``hypothesis`` (the ``test`` extra).
"""

from __future__ import annotations

from diveq._ops import OPS, Op
from diveq.testing._adapters import Adapter, adapter_for, available_adapters, known_adapters
from diveq.testing._check import Report, check_backend
from diveq.testing._check_ema import check_ema
from diveq.testing._check_ema_layers import check_ema_layers
from diveq.testing._check_layers import (
    LAYER_KINDS,
    LayerKind,
    LayerMismatch,
    check_layer_kind,
    check_layers,
)
from diveq.testing._layer_drivers import (
    JaxLayerDriver,
    LayerDriver,
    ReferenceLayerDriver,
    TorchLayerDriver,
    driver_for,
)
from diveq.testing._properties import (
    assert_close,
    check_commitment,
    check_edge_values,
    check_empty,
    check_errors,
    check_forward,
    check_gradient,
    check_sampling,
    check_usage,
    raises,
    tolerance,
)
from diveq.testing._strategies import Case, cases, separation_tolerance

__all__ = [
    "LAYER_KINDS",
    "OPS",
    "Adapter",
    "Case",
    "JaxLayerDriver",
    "LayerDriver",
    "LayerKind",
    "LayerMismatch",
    "Op",
    "ReferenceLayerDriver",
    "Report",
    "TorchLayerDriver",
    "adapter_for",
    "assert_close",
    "available_adapters",
    "cases",
    "check_backend",
    "check_commitment",
    "check_edge_values",
    "check_ema",
    "check_ema_layers",
    "check_layer_kind",
    "check_layers",
    "check_empty",
    "check_errors",
    "check_forward",
    "check_gradient",
    "check_sampling",
    "check_usage",
    "driver_for",
    "known_adapters",
    "raises",
    "separation_tolerance",
    "tolerance",
]
