"""Layer configuration: the option groups and what follows from them, validated eagerly.

The concrete layers (:mod:`._layers`) are frozen dataclasses combining these option groups;
:class:`Config` derives the static facts the traced code needs (number of codebooks, warm-up
slots, replacement settings) and checks the options at construction.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

import jax.numpy as jnp

__all__ = ["Common", "Config", "Replacement", "Warmup"]


@dataclass(frozen=True, kw_only=True)
class Common:
    """Options of every layer (keyword-only)."""

    noise_std: float = 1e-3
    feature_axis: int = -1
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


def _real(name: str, value: Any, *, nonnegative: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or (nonnegative and value < 0):
        low = " >= 0" if nonnegative else ""
        raise ValueError(f"`{name}` must be a finite float{low}; got {value!r}")


def _positive_int(name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` must be an int >= {low}; got {value!r}")


class Config:
    """Static facts derived from the options; concrete layers are frozen dataclasses."""

    layout: ClassVar[str] = "single"
    num_codes: int
    dim: int
    noise_std: float
    feature_axis: int
    axis_name: Hashable | None
    dtype: Any

    # -- what a concrete layer declares -------------------------------------------------------
    @property
    def num_books(self) -> int:
        """Number of codebooks ``M`` (1 for one-codebook layers)."""
        return 1

    @property
    def _sf(self) -> bool:
        """Space-filling (polyline) quantisation."""
        return bool(getattr(self, "space_filling", False))

    def _names(self) -> tuple[str, str | None, str]:
        """Public functions: (training estimator, warm-up estimator or None, inference)."""
        raise NotImplementedError

    def _replacement(self) -> tuple[int, float, float] | None:
        iters = getattr(self, "replacement_iters", None)
        if iters is None or (self._sf and self._skip() <= 1):
            return None
        return iters, getattr(self, "discard_threshold", 0.01), getattr(self, "perturb_eps", 0.0)

    def _skip(self) -> int:
        return getattr(self, "skip_iters", 0) if self._sf else 0

    def _slots(self) -> int:
        """Warm-up calls whose rows are kept (0: no warm-up buffer)."""
        skip = self._skip()
        return min(getattr(self, "avg_iters", 0), skip - 1) if skip > 1 else 0

    # -- construction ------------------------------------------------------------------------
    def __post_init__(self) -> None:
        _positive_int("num_codes", self.num_codes, 2 if self._sf else 1)
        _positive_int("dim", self.dim)
        _positive_int("num_codebooks", self.num_books)
        if self.layout == "product" and self.dim % self.num_books:
            raise ValueError(
                f"product quantisation needs dim % num_codebooks == 0; got dim = {self.dim}, "
                f"num_codebooks = {self.num_books}"
            )
        _real("noise_std", self.noise_std, nonnegative=True)
        if not isinstance(self.feature_axis, int):
            raise TypeError(f"`feature_axis` must be an int; got {self.feature_axis!r}")
        iters = getattr(self, "replacement_iters", None)
        if iters is not None:
            _positive_int("replacement_iters", iters)
            _real("discard_threshold", getattr(self, "discard_threshold", 0.0))
            _real("perturb_eps", getattr(self, "perturb_eps", 0.0), nonnegative=True)
        if self._sf:
            _positive_int("skip_iters", getattr(self, "skip_iters", 0), 0)
            _positive_int("avg_iters", getattr(self, "avg_iters", 1))
            rows = getattr(self, "rows_per_call", None)
            if self._slots() and rows is None:
                raise ValueError(
                    f"`rows_per_call` is required when skip_iters > 1 (got skip_iters = "
                    f"{self._skip()}): the warm-up buffer has a static size of "
                    "avg_iters * rows_per_call rows; pass the number of rows (latent vectors) "
                    "per call on one device, e.g. batch * height * width"
                )
            if rows is not None:
                _positive_int("rows_per_call", rows)

    @property
    def _width(self) -> int:
        return self.dim // self.num_books if self.layout == "product" else self.dim

    def _rows_per_call(self) -> int:
        return int(getattr(self, "rows_per_call", None) or 0) if self._slots() else 0
