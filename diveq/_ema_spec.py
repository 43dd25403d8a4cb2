"""The EMA codebook's argument checks and layer options, shared by every implementation.

As in :mod:`diveq._checks`, only shapes, dtypes and Python scalars are inspected (no device
synchronisation); the reference adds its value checks on top.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from array_api_compat import array_namespace

from diveq._checks import dtype_name
from diveq._layer_spec import INITS, LayerSpec

__all__ = ["EMASpec", "check_ema_options", "check_ema_update"]


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in x.shape)


def check_ema_options(decay: Any, eps: Any) -> None:
    """Raise unless ``decay`` is a real number in ``[0, 1]`` and ``eps`` a finite one ``>= 0``."""
    for name, value, high in (("decay", decay, 1.0), ("eps", eps, math.inf)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"`{name}` must be a real number; got {value!r}")
        if not (0 <= float(value) <= high and math.isfinite(value)):
            want = "in [0, 1]" if name == "decay" else "finite and >= 0"
            raise ValueError(f"`{name}` must be {want}; got {value!r}")


def check_ema_update(state: Any, counts: Any, sums: Any) -> None:
    """Raise unless ``state`` is an :class:`~diveq.EMAState`-shaped triple of real floating
    arrays ``(K, D)``, ``(K,)``, ``(K, D)`` and ``counts`` ``(K,)`` / ``sums`` ``(K, D)`` fit."""
    if not isinstance(state, tuple) or len(state) != 3:
        raise TypeError(
            "`state` must be an EMAState(codebook, cluster_size, embed_sum); "
            f"got {type(state).__name__}"
        )
    codebook = state[0]
    if getattr(codebook, "ndim", None) != 2:
        raise ValueError(
            f"`state.codebook` must have shape (K, D); got shape {getattr(codebook, 'shape', None)}"
        )
    k, d = _shape(codebook)
    want = {
        "state.codebook": (codebook, (k, d)),
        "state.cluster_size": (state[1], (k,)),
        "state.embed_sum": (state[2], (k, d)),
        "counts": (counts, (k,)),
        "sums": (sums, (k, d)),
    }
    for name, (x, shape) in want.items():
        xp = array_namespace(x)
        if not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(
                f"`{name}` must have a real floating dtype; got dtype {dtype_name(x.dtype)}"
            )
        if _shape(x) != shape:
            raise ValueError(
                f"`{name}` must have shape {shape} (state.codebook.shape = {(k, d)}); "
                f"got shape {_shape(x)}"
            )


@dataclass(frozen=True)
class EMASpec:
    """The options of an EMA-codebook layer (the constructor arguments every backend shares).

    Attributes
    ----------
    num_codes : int
        ``K >= 1``.
    dim : int
        ``D``, the feature size of ``z``.
    decay : float
        EMA decay in ``[0, 1]``.
    eps : float
        Laplace smoothing ``>= 0`` of the cluster sizes.
    beta : float
        Weight ``>= 0`` of the commitment term.
    feature_axis : int
        Axis of ``z`` holding the features.
    codebook_init : {"symmetric", "positive"}
        Codebook init: ``U(-1/K, 1/K)`` or ``U[0, 1/K)`` elementwise.
    rows : LayerSpec
        The one-codebook layout the row helpers of :mod:`diveq.core._layer_rows` read
        (input checks, feature axis); built from the options above.
    """

    num_codes: int
    dim: int
    decay: float = 0.99
    eps: float = 1e-5
    beta: float = 0.25
    feature_axis: int = -1
    codebook_init: str = "symmetric"
    rows: LayerSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_ema_options(self.decay, self.eps)
        if isinstance(self.beta, bool) or not isinstance(self.beta, numbers.Real):
            raise TypeError(f"`beta` must be a real number; got {self.beta!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"`beta` must be finite and >= 0; got {self.beta!r}")
        if self.codebook_init not in INITS:
            raise ValueError(f"`codebook_init` must be one of {INITS}; got {self.codebook_init!r}")
        rows = LayerSpec(
            "single",
            1,
            self.num_codes,
            self.dim,
            replacement_iters=None,
            feature_axis=self.feature_axis,
            codebook_init=self.codebook_init,
        )
        object.__setattr__(self, "rows", rows)

    @property
    def init_bounds(self) -> tuple[float, float]:
        """``(low, high)`` of the uniform codebook init."""
        return self.rows.init_bounds
