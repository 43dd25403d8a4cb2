"""Nearest-codeword search and exact polyline projection (hard inference)."""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from diveq._checks import check_codebook
from diveq._types import Quantized, SFQuantized
from diveq.core._common import (
    Array,
    cast,
    default_chunk,
    map_row_chunks,
    matmul,
    namespace,
    rows,
    unrows,
    work_dtype,
)

__all__ = ["nearest", "quantize", "sf_quantize"]


def overflow_scale(xp: Any, points: Array) -> Array:
    """``1 / s`` with ``s = 2^ceil(log2(max |p|))`` over the finite entries of ``points``.

    Scaling every score by ``1 / s^2`` (a power of two) changes no rounding, so the search picks
    exactly the same index; but ``||p / s||^2 <= D``, so squared norms of large codewords
    (``|p| > 1.8e19`` in float32) no longer overflow to ``inf`` and silently pick a wrong code.
    """
    a = xp.abs(points)
    if a.shape[-1] == 0:
        return xp.ones((), dtype=a.dtype, device=device(a))
    m = xp.max(xp.where(xp.isfinite(a), a, xp.zeros_like(a)))
    m = xp.clip(m, xp.finfo(a.dtype).smallest_normal, None)
    return 2.0 ** (-xp.ceil(xp.log2(m)))


def nearest_rows(xp: Any, z: Array, points: Array, chunk_size: int | None = None) -> Array:
    """Index of the nearest point for each row of ``z`` ``(N, D)``; no gradient is traced.

    Uses the expanded form ``||p||^2 - 2 z.p`` in at least float32, tiled over rows so that at
    most ``chunk_size * P`` distances exist at once.
    """
    dt = work_dtype(xp, z, points)
    z, points = cast(xp, z, dt), cast(xp, points, dt)
    inv = overflow_scale(xp, points)
    q = points * inv
    weight = xp.permute_dims((-2.0 * inv) * q, (1, 0))  # -2 p / s^2, (D, P)
    bias = xp.sum(q * q, axis=-1)  # ||p||^2 / s^2

    def block(zb: Array) -> tuple[Array]:
        return (xp.argmin(matmul(xp, zb, weight, bias), axis=-1),)

    return map_row_chunks(xp, block, z, default_chunk(points.shape[0], chunk_size, z))[0]


def project_rows(
    xp: Any, z: Array, codebook: Array, chunk_size: int | None = None
) -> tuple[Array, Array]:
    """Exact nearest point of the polyline through ``codebook`` for each row of ``z``.

    Returns the segment index ``i`` and the clipped position ``t`` on ``[c_i, c_{i+1}]``. Every
    term comes from the same ``z C^T`` product as the nearest-codeword search.
    """
    dt = work_dtype(xp, z, codebook)
    z, c = cast(xp, z, dt), cast(xp, codebook, dt)
    # Everything below is scaled by 1 / s^2 (exactly, see `overflow_scale`); t is unchanged.
    inv = overflow_scale(xp, c)
    c_z = (
        c * inv
    ) * inv  # the matrix z is multiplied with: c / s^2 (never inv^2: it over/underflows)
    c = c * inv
    e = c[1:, ...] - c[:-1, ...]
    ee = xp.sum(e * e, axis=-1)
    ae = xp.sum(c[:-1, ...] * e, axis=-1)
    cc = xp.sum(c * c, axis=-1)
    has_len = ee > 0  # t = 0 on a segment of length zero (a repeated codeword)
    len_mask = xp.astype(has_len, ee.dtype)
    ee_safe = xp.where(has_len, ee, xp.ones_like(ee))
    segs = ee.shape[0]

    def block(zb: Array) -> tuple[Array, Array]:
        g = matmul(xp, zb, xp.permute_dims(c_z, (1, 0)))
        vertex = cc - 2.0 * g  # ||z - c_j||^2 - ||z||^2, the same numbers as `nearest_rows`
        num = g[:, 1:] - g[:, :-1] - ae  # (z - a) . e
        t = xp.clip(num / ee_safe, 0.0, 1.0) * len_mask
        # ||z - a - t e||^2 - ||z||^2 = vertex_a - 2 t num + t^2 ee is vertex_a - t num for the
        # unclipped t = num / ee and exactly vertex_a for t = 0. For t clipped to 1 this scores
        # too high, but never below the true minimum; the vertex it stands for is scored
        # exactly by the next segment at t = 0, or (the last vertex) by the column `end` below.
        dist = vertex[:, :-1] - t * num
        i = xp.argmin(dist, axis=-1)
        flat = xp.arange(zb.shape[0], dtype=i.dtype, device=device(zb)) * segs + i
        best = xp.take(xp.reshape(dist, (-1,)), flat, axis=0)
        t_i = xp.take(xp.reshape(t, (-1,)), flat, axis=0)
        # The reference's ties: a vertex shared by two segments belongs to the first (at t = 1),
        # and the last vertex wins only when strictly nearer than every earlier segment.
        end = vertex[:, -1] < best
        back = (t_i <= 0.0) & (i >= 1)
        i = xp.where(end, segs - 1, xp.where(back, i - 1, i))
        return i, xp.where(end | back, 1.0, t_i)

    return map_row_chunks(xp, block, z, default_chunk(c.shape[0], chunk_size, z))


def segment_point(xp: Any, codebook: Array, i: Array, t: Array) -> Array:
    """``c_i + t (c_{i+1} - c_i)``, exactly ``c_{i+1}`` at ``t = 1``; the last vertex
    ``i = K - 1`` (a codeword index, as a composite SF warm-up returns) decodes to ``c_i``."""
    last = codebook.shape[0] - 1
    a, b = xp.take(codebook, i, axis=0), xp.take(codebook, xp.clip(i + 1, None, last), axis=0)
    t = t[:, None]
    return xp.where(t >= 1.0, b, a + t * (b - a))


def nearest(z: Array, codebook: Array, *, chunk_size: int | None = None) -> Array:
    """Index of the nearest codeword (first on ties); see :func:`diveq.reference.nearest`."""
    check_codebook(z, codebook)
    xp = namespace(z, codebook)
    return unrows(xp, nearest_rows(xp, rows(xp, z), codebook, chunk_size), z.shape[:-1])


def quantize(z: Array, codebook: Array, *, chunk_size: int | None = None) -> Quantized:
    """Hard quantisation ``values = c_k``; see :func:`diveq.reference.quantize`."""
    check_codebook(z, codebook)
    xp = namespace(z, codebook)
    k = nearest_rows(xp, rows(xp, z), codebook, chunk_size)
    values = cast(xp, xp.take(codebook, k, axis=0), z.dtype)
    return Quantized(unrows(xp, values, z.shape[:-1]), unrows(xp, k, z.shape[:-1]))


def sf_quantize(z: Array, codebook: Array, *, chunk_size: int | None = None) -> SFQuantized:
    """Exact projection onto the codeword polyline; see :func:`diveq.reference.sf_quantize`."""
    check_codebook(z, codebook, min_codes=2)
    xp = namespace(z, codebook)
    zr = rows(xp, z)
    i, t = project_rows(xp, zr, codebook, chunk_size)
    dt = work_dtype(xp, zr, codebook)
    values = cast(xp, segment_point(xp, cast(xp, codebook, dt), i, t), z.dtype)
    lead = z.shape[:-1]
    return SFQuantized(
        unrows(xp, values, lead), unrows(xp, i, lead), unrows(xp, cast(xp, t, z.dtype), lead)
    )
