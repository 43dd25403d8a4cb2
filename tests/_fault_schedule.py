"""The training run both faults suites share (``test_torch_faults.py``, ``test_jax_faults.py``):
sizes, layer settings, and the calls at which the training state must change.

Dead-code replacement fires every 3 calls (DiVeQ and composites; composite SF during its warm-up
only) and the SF warm-up initialises at call 5 from the rows of calls 4 and 5.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

STEPS, ROWS, IN, DIM = 10, 12, 6, 4
SF_OPTS: dict[str, Any] = {"skip_iters": 6, "avg_iters": 2}
INIT_CALL = 5

# name -> (class, positional arguments, options)
SPECS: dict[str, tuple[str, tuple[int, ...], dict[str, Any]]] = {
    "diveq": ("DiVeQ", (16, DIM), {"replacement_iters": 3}),
    "sf": ("SFDiVeQ", (4, DIM), SF_OPTS),
    "product": ("ProductDiVeQ", (2, 8, DIM), {"replacement_iters": 3}),
    "residual": ("ResidualDiVeQ", (2, 8, DIM), {"replacement_iters": 3}),
    "product_sf": (
        "ProductDiVeQ",
        (2, 8, DIM),
        {"space_filling": True, "replacement_iters": 3, **SF_OPTS},
    ),
    "residual_sf": (
        "ResidualDiVeQ",
        (2, 8, DIM),
        {"space_filling": True, "replacement_iters": 3, **SF_OPTS},
    ),
}

#: train-mode calls whose forward may rewrite the codebook and reset the counters
EVENTS = {
    "diveq": {3, 6, 9},
    "sf": {INIT_CALL},
    "product": {3, 6, 9},
    "residual": {3, 6, 9},
    "product_sf": {3, INIT_CALL},
    "residual_sf": {3, INIT_CALL},
}


def build(dq: ModuleType, name: str, **extra: Any) -> Any:
    """Layer ``name`` of backend module ``dq`` with the shared settings plus ``extra``."""
    cls, args, options = SPECS[name]
    return getattr(dq, cls)(*args, **options, **extra)
