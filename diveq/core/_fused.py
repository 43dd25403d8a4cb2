"""Opt-in fused search kernels: what the Triton and Pallas kernels share.

A backend's kernel module (``diveq.backends.torch._triton_search``,
``diveq.backends.jax._pallas_search``) provides two launchers over rows ``(N, D)``:

- ``nearest_rows(z, weight, bias, interpret)``: ``argmin_j bias_j + z . weight_j``, the first
  index on ties;
- ``project_rows(z, points, sq_norms, offsets, lengths, interpret)``: the exact polyline
  projection, segment index ``i`` and position ``t``,

which run tile by tile and keep the running minimum on chip, so the ``N x K`` score matrix is
never written to memory. Everything else is here, once: the operands (the same scaled,
overflow-safe numbers :mod:`diveq.core._search` uses), validation, reshaping and decoding, and
:func:`route`, which sends a backend's ``nearest`` / ``quantize`` / ``sf_quantize`` to the
kernels when the caller passes ``chunk_size="fused"`` (or ``"fused-interpret"``).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

from array_api_compat import device

from diveq._checks import check_codebook
from diveq._types import Quantized, SFQuantized
from diveq.core._common import Array, cast, namespace, rows, unrows, work_dtype
from diveq.core._estimators import dithered_points
from diveq.core._search import overflow_scale, segment_point

__all__ = [
    "FUSED",
    "INTERPRET",
    "Kernels",
    "dithered_nearest",
    "nearest",
    "nearest_operands",
    "projection_operands",
    "quantize",
    "route",
    "sf_quantize",
]

#: ``chunk_size`` value that runs the compiled kernel (a GPU is needed).
FUSED = "fused"
#: ``chunk_size`` value that runs the same kernel in the framework's interpreter (any device;
#: slow, for tests on machines without a GPU).
INTERPRET = "fused-interpret"
MODES = (FUSED, INTERPRET)
ROUTED = ("nearest", "quantize", "sf_quantize")


class Kernels(NamedTuple):
    """A backend's two kernel launchers (see the module docstring)."""

    nearest_rows: Callable[..., Array]
    project_rows: Callable[..., tuple[Array, Array]]


def nearest_operands(xp: Any, z: Array, points: Array) -> tuple[Array, Array, Array]:
    """``(z, weight, bias)`` in the work dtype with ``score_j = bias_j + z . weight_j``.

    ``weight = -2 p / s^2`` ``(P, D)`` and ``bias = ||p / s||^2``, ``s`` the power of two of
    :func:`~diveq.core._search.overflow_scale`: the numbers of the tiled search, so the same
    index comes out (no overflow for huge codewords, no rounding change).
    """
    dt = work_dtype(xp, z, points)
    z, points = cast(xp, z, dt), cast(xp, points, dt)
    inv = overflow_scale(xp, points)
    q = points * inv
    return z, (-2.0 * inv) * q, xp.sum(q * q, axis=-1)


def projection_operands(
    xp: Any, z: Array, codebook: Array
) -> tuple[Array, Array, Array, Array, Array]:
    """``(z, points, sq_norms, offsets, lengths)`` for the polyline projection kernel.

    ``points = c / s^2``, ``sq_norms = ||c / s||^2`` ``(K,)``, and per segment ``j`` with
    ``a = c_j / s``, ``e = (c_{j+1} - c_j) / s``: ``offsets = a . e`` and ``lengths = ||e||^2``
    ``(K - 1,)``. With ``g_j = z . points_j`` the kernel forms the terms of
    :func:`~diveq.core._search.project_rows`: ``(z - a) . e = g_{j+1} - g_j - offsets_j``.
    """
    dt = work_dtype(xp, z, codebook)
    z, c = cast(xp, z, dt), cast(xp, codebook, dt)
    inv = overflow_scale(xp, c)
    points = (c * inv) * inv  # never inv^2: it over/underflows
    c = c * inv
    e = c[1:, ...] - c[:-1, ...]
    return (
        z,
        points,
        xp.sum(c * c, axis=-1),
        xp.sum(c[:-1, ...] * e, axis=-1),
        xp.sum(e * e, axis=-1),
    )


def _interpret(mode: str) -> bool:
    if mode not in MODES:
        raise ValueError(f"`chunk_size` must be one of {MODES} here; got {mode!r}")
    return mode == INTERPRET


def _no_rows(xp: Any, zr: Array) -> Array:
    """Empty indices in the namespace's index dtype (that of ``argmin``)."""
    return xp.argmin(xp.zeros((0, 1), dtype=zr.dtype, device=device(zr)), axis=-1)


def _nearest_flat(kernels: Kernels, xp: Any, zr: Array, points: Array, mode: str) -> Array:
    interpret = _interpret(mode)
    if zr.shape[0] == 0:  # no launch for an empty grid
        return _no_rows(xp, zr)
    return kernels.nearest_rows(*nearest_operands(xp, zr, points), interpret)


def nearest(kernels: Kernels, z: Array, codebook: Array, mode: str = FUSED) -> Array:
    """:func:`diveq.core.nearest` through the fused kernel (``mode``: :data:`FUSED` or
    :data:`INTERPRET`)."""
    check_codebook(z, codebook)
    xp = namespace(z, codebook)
    return unrows(xp, _nearest_flat(kernels, xp, rows(xp, z), codebook, mode), z.shape[:-1])


def quantize(kernels: Kernels, z: Array, codebook: Array, mode: str = FUSED) -> Quantized:
    """:func:`diveq.core.quantize` through the fused kernel."""
    check_codebook(z, codebook)
    xp = namespace(z, codebook)
    k = _nearest_flat(kernels, xp, rows(xp, z), codebook, mode)
    values = cast(xp, xp.take(codebook, k, axis=0), z.dtype)
    lead = z.shape[:-1]
    return Quantized(unrows(xp, values, lead), unrows(xp, k, lead))


def dithered_nearest(
    kernels: Kernels, z: Array, codebook: Array, dither: Array, mode: str = FUSED
) -> Array:
    """The segment of the nearest dithered point ``p_j = (1 - lam_j) c_j + lam_j c_{j+1}``, as
    SF-DiVeQ selects it (:func:`diveq.reference.sf_diveq`), through the fused kernel."""
    check_codebook(z, codebook, min_codes=2)
    xp = namespace(z, codebook)
    points = dithered_points(xp, codebook, cast(xp, dither, work_dtype(xp, z, codebook)))
    return unrows(xp, _nearest_flat(kernels, xp, rows(xp, z), points, mode), z.shape[:-1])


def sf_quantize(kernels: Kernels, z: Array, codebook: Array, mode: str = FUSED) -> SFQuantized:
    """:func:`diveq.core.sf_quantize` through the fused kernel."""
    check_codebook(z, codebook, min_codes=2)
    interpret = _interpret(mode)
    xp = namespace(z, codebook)
    zr = rows(xp, z)
    dt = work_dtype(xp, zr, codebook)
    if zr.shape[0] == 0:
        i, t = _no_rows(xp, zr), xp.zeros((0,), dtype=dt, device=device(zr))
    else:
        i, t = kernels.project_rows(*projection_operands(xp, zr, codebook), interpret)
    values = cast(xp, segment_point(xp, cast(xp, codebook, dt), i, t), z.dtype)
    lead = z.shape[:-1]
    return SFQuantized(
        unrows(xp, values, lead), unrows(xp, i, lead), unrows(xp, cast(xp, t, z.dtype), lead)
    )


_FUSED_IMPL: dict[str, Callable[..., Any]] = {
    "nearest": nearest,
    "quantize": quantize,
    "sf_quantize": sf_quantize,
}


def route(functions: dict[str, Callable[..., Any]], module: str) -> dict[str, Callable[..., Any]]:
    """A backend's functions with ``chunk_size="fused"`` / ``"fused-interpret"`` sent to the
    kernels of ``module`` (imported on first use, so Triton stays optional).

    ``nearest``, ``quantize`` and ``sf_quantize`` are routed; any other function given one of
    these values raises a :class:`ValueError` that says so, instead of a generic one.
    """
    out = dict(functions)
    for name, fn in functions.items():
        out[name] = _routed(name, fn, module)
    return out


def _routed(name: str, fn: Callable[..., Any], module: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mode = kwargs.get("chunk_size")
        if not isinstance(mode, str):
            return fn(*args, **kwargs)
        if mode not in MODES:
            raise ValueError(
                f"`chunk_size` must be None, a positive int or one of {MODES}; got {mode!r}"
            )
        if name not in _FUSED_IMPL:
            raise ValueError(
                f"`chunk_size={mode!r}` (the fused search kernels) is supported by "
                f"{', '.join(ROUTED)} only; `{name}` takes None or a positive int"
            )
        kwargs.pop("chunk_size")
        kernels: Kernels = importlib.import_module(module).KERNELS
        return _FUSED_IMPL[name](kernels, *args, mode=mode, **kwargs)

    return wrapper
