"""The estimators DiVeQ is compared with, given explicit draws."""

from __future__ import annotations

from typing import Any

from diveq._checks import check_codebook, check_draw, check_indices
from diveq._types import Quantized
from diveq.core._common import (
    UNIT_EPS,
    Array,
    StopGradient,
    cast,
    identity,
    namespace,
    rows,
    safe_norm,
    unit,
    unrows,
    work_dtype,
)
from diveq.core._search import nearest_rows

__all__ = ["commitment_loss", "nsvq", "rotation_trick", "ste"]


def _select(z: Array, codebook: Array, sg: StopGradient, chunk_size: int | None):
    check_codebook(z, codebook)
    xp = namespace(z, codebook)
    dt = work_dtype(xp, z, codebook)
    zr, cb = cast(xp, rows(xp, z), dt), cast(xp, codebook, dt)
    k = nearest_rows(xp, sg(zr), sg(cb), chunk_size)
    return xp, zr, xp.take(cb, k, axis=0), k


def _out(xp: Any, z: Array, values: Array, k: Array) -> Quantized:
    lead = z.shape[:-1]
    return Quantized(unrows(xp, cast(xp, values, z.dtype), lead), unrows(xp, k, lead))


def ste(
    z: Array,
    codebook: Array,
    *,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> Quantized:
    """Straight-through estimator ``z + sg(c_k - z)``; see :func:`diveq.reference.ste`."""
    xp, zr, ck, k = _select(z, codebook, stop_gradient, chunk_size)
    return _out(xp, z, zr + stop_gradient(ck - zr), k)


def nsvq(
    z: Array,
    codebook: Array,
    *,
    noise: Array | None = None,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> Quantized:
    """NSVQ ``z + ||c_k - z|| unit(xi)`` with an explicit draw ``noise`` (``z.shape``).

    Semantics: :func:`diveq.reference.nsvq`.
    """
    if noise is None:
        raise ValueError(
            f"`noise` of shape {tuple(z.shape)} is required: diveq.core takes "
            "explicit draws (the backends sample them for you)"
        )
    check_draw("noise", noise, tuple(z.shape), z)
    xp, zr, ck, k = _select(z, codebook, stop_gradient, chunk_size)
    xi = cast(xp, rows(xp, noise), zr.dtype)
    return _out(xp, z, zr + safe_norm(xp, ck - zr, stop_gradient) * stop_gradient(unit(xp, xi)), k)


def rotation_trick(
    z: Array,
    codebook: Array,
    *,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> Quantized:
    """Rotation trick (Fifty et al. 2024); see :func:`diveq.reference.rotation_trick`."""
    sg = stop_gradient
    xp, zr, ck, k = _select(z, codebook, sg, chunk_size)
    z0, c0 = sg(zr), sg(ck)
    zh, ch = unit(xp, z0), unit(xp, c0)
    w = unit(xp, zh + ch)
    s = safe_norm(xp, c0, sg) / xp.clip(safe_norm(xp, z0, sg), UNIT_EPS, None)
    zw = xp.sum(zr * w, axis=-1, keepdims=True)
    zz = xp.sum(zr * zh, axis=-1, keepdims=True)
    return _out(xp, z, s * (zr - 2.0 * zw * w + 2.0 * zz * ch), k)


def commitment_loss(
    z: Array,
    codebook: Array,
    indices: Array,
    *,
    beta: float = 0.25,
    stop_gradient: StopGradient = identity,
) -> Array:
    """``mean((sg z - c_k)^2) + beta mean((z - sg c_k)^2)``, 0 for empty ``z``.

    Semantics: :func:`diveq.reference.commitment_loss`.
    """
    check_codebook(z, codebook)
    check_indices(indices, z=z)
    xp = namespace(z, codebook)
    dt = work_dtype(xp, z, codebook)
    zr, cb = cast(xp, rows(xp, z), dt), cast(xp, codebook, dt)
    ck = xp.take(cb, xp.reshape(indices, (-1,)), axis=0)
    sg = stop_gradient
    n = max(zr.shape[0] * zr.shape[1], 1)
    codebook_term = xp.sum((sg(zr) - ck) ** 2) / n
    commit_term = xp.sum((zr - sg(ck)) ** 2) / n
    return codebook_term + beta * commit_term
