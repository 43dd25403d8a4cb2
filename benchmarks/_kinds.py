"""The layer kinds the benchmark times, one table read by the torch, JAX and official cases.

Each kind is a layer configuration, the function its train call runs (on the same input, so a
layer call can be compared with the bare function) and the official ``diveq`` 0.1.3 class that
does the same job. The SF kinds appear twice: quantising (``skip_iters=0``: from the first call,
with the given codebook) and inside the warm-up (``skip_iters`` never reached; no rows are kept
because the collection window never starts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Codebooks of the composite kinds (the data of :func:`benchmarks._torch_cases.data`).
M = 4
#: A ``skip_iters`` no benchmark reaches: the layer stays in its warm-up.
NEVER = 10**9
#: The draws each one-codebook function makes, fixed by its semantics: (standard-normal ``N x D``
#: arrays, uniforms per call beyond ``K``), e.g. SF-DiVeQ: two noises and ``K - 1`` dithers.
DRAWS = {"diveq": (1, 0), "sf_diveq": (2, -1)}


@dataclass(frozen=True)
class Kind:
    """One layer configuration and what it is compared with."""

    name: str
    layer: str  # class name in diveq.backends.torch / diveq.backends.jax
    books: str  # data key of its codebook(s): "codebook", "product" or "residual"
    options: dict[str, Any] = field(default_factory=dict)
    function: str | None = None  # the function the train call runs (None: pass-through)
    official: str | None = None  # the official class (None: nothing comparable)

    @property
    def composite(self) -> bool:
        return self.books != "codebook"


_SF = {"space_filling": True, "skip_iters": 0}
_SF_WARM = {"space_filling": True, "skip_iters": NEVER, "avg_iters": 1}

KINDS: tuple[Kind, ...] = (
    Kind("DiVeQ", "DiVeQ", "codebook", {}, "diveq", "DIVEQ"),
    Kind("SFDiVeQ", "SFDiVeQ", "codebook", {"skip_iters": 0}, "sf_diveq", "SFDIVEQ"),
    Kind("SFDiVeQ warm-up", "SFDiVeQ", "codebook", {"skip_iters": NEVER, "avg_iters": 1}),
    Kind("ProductDiVeQ", "ProductDiVeQ", "product", {}, "product_diveq", "ProductDIVEQ"),
    Kind("ProductDiVeQ SF", "ProductDiVeQ", "product", _SF, "product_sf_diveq", "ProductSFDIVEQ"),
    Kind("ProductDiVeQ SF warm-up", "ProductDiVeQ", "product", _SF_WARM, "product_diveq"),
    Kind("ResidualDiVeQ", "ResidualDiVeQ", "residual", {}, "residual_diveq", "ResidualDIVEQ"),
    Kind(
        "ResidualDiVeQ SF", "ResidualDiVeQ", "residual", _SF, "residual_sf_diveq", "ResidualSFDIVEQ"
    ),
    Kind("ResidualDiVeQ SF warm-up", "ResidualDiVeQ", "residual", _SF_WARM, "residual_diveq"),
)

#: The estimator functions, with the data key of their codebook(s).
FUNCTIONS: dict[str, str] = {
    "diveq": "codebook",
    "sf_diveq": "codebook",
    "product_diveq": "product",
    "product_sf_diveq": "product",
    "residual_diveq": "residual",
    "residual_sf_diveq": "residual",
}


def positional(kind: Kind, k: int, d: int) -> tuple[int, ...]:
    """Constructor positionals of our layers: ``(K, D)`` or ``(M, K, D)``."""
    return (M, k, d) if kind.composite else (k, d)
