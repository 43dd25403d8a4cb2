"""Layer options as frozen dataclass fields, checked once by the shared :class:`LayerSpec`.

The concrete layers (:mod:`._layers`) combine these option groups; :class:`Config` builds the
layer's :class:`~diveq._layer_spec.LayerSpec` at construction (the same checks and messages as
every other backend) and adds the JAX-only options: ``axis_name``, ``dtype`` and the static
warm-up buffer size ``rows_per_call``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

import jax.numpy as jnp

from diveq._layer_spec import LayerSpec

__all__ = ["Common", "Config", "Replacement", "Warmup"]


@dataclass(frozen=True, kw_only=True)
class Common:
    """Options of every layer (keyword-only)."""

    noise_std: float = 1e-3
    feature_axis: int = -1
    codebook_init: str = "symmetric"
    axis_name: Hashable | None = None
    dtype: Any = jnp.float32


@dataclass(frozen=True, kw_only=True)
class Replacement:
    """Dead-code replacement options (DiVeQ and composite layers)."""

    replacement_iters: int | None = 100
    discard_threshold: float = 0.01
    perturb_eps: float = 1e-9


@dataclass(frozen=True, kw_only=True)
class Warmup:
    """SF warm-up options (space-filling layers)."""

    skip_iters: int = 1000
    avg_iters: int = 50
    rows_per_call: int | None = None


class Config:
    """Builds and keeps the :class:`LayerSpec`; concrete layers are frozen dataclasses."""

    layout: ClassVar[str] = "single"
    spec: LayerSpec
    axis_name: Hashable | None
    dtype: Any

    @property
    def num_books(self) -> int:
        """Number of codebooks ``M`` (1 for one-codebook layers)."""
        return int(getattr(self, "num_codebooks", 1))

    def __post_init__(self) -> None:
        options = {
            name: getattr(self, name)
            for name in LayerSpec.__dataclass_fields__
            if name not in ("layout", "num_codebooks") and hasattr(self, name)
        }
        options.setdefault("replacement_iters", None)  # SFDiVeQ has no replacement
        spec = LayerSpec(self.layout, self.num_books, **options)
        object.__setattr__(self, "spec", spec)
        rows = getattr(self, "rows_per_call", None)
        if spec.warmup_slots and rows is None:
            raise ValueError(
                f"`rows_per_call` is required when skip_iters > 1 (got skip_iters = "
                f"{spec.skip_iters}): the warm-up buffer has a static size of "
                "avg_iters * rows_per_call rows; pass the number of rows (latent vectors) "
                "per call on one device, e.g. batch * height * width"
            )
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
            raise ValueError(f"`rows_per_call` must be an int >= 1; got {rows!r}")

    def _rows_per_call(self) -> int:
        return int(getattr(self, "rows_per_call", None) or 0) if self.spec.warmup_slots else 0
