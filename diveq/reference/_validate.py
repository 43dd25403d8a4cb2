"""Argument handling for the reference: dtype/shape checks, value checks, random draws.

The dtype and shape checks are the shared ones of :mod:`diveq._checks`; on top of them the
reference always checks values (finite inputs, dither in ``[0, 1)``), because it is never on a
hot path. Every check runs at call time, before any computation, and inputs are converted to
float64 only after their dtype has been checked.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from diveq import _checks

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

__all__ = [
    "Draws",
    "F64",
    "I64",
    "check_chunk_size",
    "codebook_args",
    "codebooks_args",
    "counters",
    "cotangent_arg",
    "finite",
    "floating_matrix",
    "indices",
    "integer_array",
    "noise_std_value",
    "optional_draw",
    "positive_int",
    "real_number",
    "required_draw",
    "tau_value",
]


def finite(name: str, x: NDArray[Any]) -> F64:
    """Return ``x`` as float64 after checking that every entry is finite."""
    bad = ~np.isfinite(x)
    if np.any(bad):
        raise ValueError(
            f"`{name}` must be finite; it has {int(np.sum(bad))} NaN or infinite value(s) "
            f"(shape {tuple(x.shape)})"
        )
    return np.asarray(x, dtype=np.float64)


def codebook_args(z: ArrayLike, codebook: ArrayLike, *, min_codes: int = 1) -> tuple[F64, F64]:
    """Check ``z`` ``(..., D)`` and ``codebook`` ``(K, D)``; return both as float64."""
    za, ca = np.asarray(z), np.asarray(codebook)
    _checks.check_codebook(za, ca, min_codes=min_codes)
    return finite("z", za), finite("codebook", ca)


def codebooks_args(
    z: ArrayLike, codebooks: ArrayLike, *, product: bool, min_codes: int = 1
) -> tuple[F64, F64]:
    """Check ``z`` ``(..., D)`` and stacked ``codebooks`` ``(M, K, D')``; return float64."""
    za, ca = np.asarray(z), np.asarray(codebooks)
    _checks.check_codebooks(za, ca, product=product, min_codes=min_codes)
    return finite("z", za), finite("codebooks", ca)


def noise_std_value(noise_std: Any) -> float:
    """Return ``noise_std`` as a Python float after checking it is finite and ``>= 0``."""
    _checks.check_noise_std(noise_std)
    s = float(np.asarray(noise_std, dtype=np.float64))
    if not math.isfinite(s) or s < 0:
        raise ValueError(f"`noise_std` must be finite and >= 0; got {s!r}")
    return s


def _draw(name: str, draw: ArrayLike, shape: tuple[int, ...], unit_interval: bool) -> F64:
    arr = np.asarray(draw)
    _checks.check_draw(name, arr, shape)
    out = finite(name, arr)
    if unit_interval and np.any((out < 0) | (out >= 1)):
        raise ValueError(
            f"`{name}` must lie in [0, 1); got values in [{out.min()!r}, {out.max()!r}]"
        )
    return out


def optional_draw(
    name: str, draw: ArrayLike | None, shape: tuple[int, ...], *, unit_interval: bool = False
) -> F64 | None:
    """Check an explicit random draw (shape, dtype, finite, optionally in ``[0, 1)``)."""
    return None if draw is None else _draw(name, draw, shape, unit_interval)


def required_draw(
    name: str,
    draw: ArrayLike | None,
    shape: tuple[int, ...],
    *,
    why: str,
    unit_interval: bool = False,
) -> F64:
    """Like :func:`optional_draw`, but ``None`` is an error (VJPs take their draws explicitly)."""
    if draw is None:
        raise ValueError(f"`{name}` of shape {shape} is required {why}")
    return _draw(name, draw, shape, unit_interval)


def cotangent_arg(cotangent: ArrayLike, shape: tuple[int, ...]) -> F64:
    """Check the upstream gradient of a VJP (shape, dtype, finite); return float64."""
    arr = np.asarray(cotangent)
    _checks.check_draw("cotangent", arr, shape)
    return finite("cotangent", arr)


class Draws:
    """Samples the random draws that are needed but not given.

    One generator, ``np.random.default_rng(rng)``, is created on first use and serves every
    draw of the call, in the order they are requested (dither before noise).
    """

    def __init__(self, rng: np.random.Generator | None) -> None:
        self._rng = rng
        self._gen: np.random.Generator | None = None

    def _generator(self) -> np.random.Generator:
        if self._gen is None:
            self._gen = np.random.default_rng(self._rng)
        return self._gen

    def dither(self, given: F64 | None, shape: tuple[int, ...]) -> F64:
        """``given``, or uniform draws in ``[0, 1)`` of ``shape``."""
        return given if given is not None else self._generator().random(shape)

    def normal(self, given: F64 | None, shape: tuple[int, ...]) -> F64:
        """``given``, or standard-normal draws of ``shape``."""
        return given if given is not None else self._generator().standard_normal(shape)

    def gumbel(self, given: F64 | None, shape: tuple[int, ...]) -> F64:
        """``given``, or standard Gumbel draws ``-log(-log U)`` of ``shape``."""
        return given if given is not None else self._generator().gumbel(size=shape)

    def noise(self, given: F64 | None, shape: tuple[int, ...], *, needed: bool) -> F64 | None:
        """``given``, or standard-normal draws of ``shape`` if ``needed``, else ``None``."""
        return self.normal(given, shape) if needed else given


def tau_value(tau: Any) -> float:
    """Return the temperature ``tau`` as a Python float after checking it is finite and > 0."""
    _checks.check_tau(tau)
    t = float(np.asarray(tau, dtype=np.float64))
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"`tau` must be finite and > 0; got {t!r}")
    return t


def check_chunk_size(chunk_size: Any) -> None:
    """Raise unless ``chunk_size`` is ``None`` or a positive integer."""
    if chunk_size is None:
        return
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(f"`chunk_size` must be None or a positive int; got {chunk_size!r}")
    if chunk_size <= 0:
        raise ValueError(f"`chunk_size` must be a positive int; got {chunk_size!r}")


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int after checking it is an integer ``>= 1``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be a positive int; got {value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be >= 1; got {value!r}")
    return int(value)


def integer_array(name: str, x: ArrayLike) -> I64:
    """Return ``x`` as int64 after checking its dtype is integer (not bool)."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"`{name}` must have an integer dtype; got dtype {arr.dtype}")
    return arr.astype(np.int64)


def real_number(name: str, value: Any, *, nonnegative: bool = False) -> float:
    """Return a finite real Python number (optionally ``>= 0``) as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a real number; got {value!r}")
    if not math.isfinite(value) or (nonnegative and value < 0):
        what = "finite and >= 0" if nonnegative else "finite"
        raise ValueError(f"`{name}` must be {what}; got {value!r}")
    return float(value)


def indices(x: ArrayLike, num_codes: int | None = None, *, z: F64 | None = None) -> I64:
    """Return code indices as int64 after the shared checks (:func:`diveq._checks.check_indices`):
    an integer dtype, ``num_codes`` an int ``>= 1``, and the shape ``z.shape[:-1]`` given ``z``."""
    arr = np.asarray(x)
    _checks.check_indices(arr, num_codes, z=z)
    return arr.astype(np.int64)


def counters(name: str, x: ArrayLike, num: int | None = None) -> I64:
    """Return a 1-d non-negative integer counter array (of length ``num`` if given) as int64."""
    arr = integer_array(name, x)
    if arr.ndim != 1 or (num is not None and arr.shape[0] != num):
        want = "(K,)" if num is None else f"({num},)"
        raise ValueError(f"`{name}` must have shape {want}; got shape {arr.shape}")
    if np.any(arr < 0):
        raise ValueError(f"`{name}` must be >= 0; got min {arr.min()}")
    return arr


def floating_matrix(name: str, x: ArrayLike) -> NDArray[Any]:
    """Return ``x`` as an array after checking it is a 2-d real floating array."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"`{name}` must have a real floating dtype; got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must have rank 2; got shape {arr.shape}")
    return arr
