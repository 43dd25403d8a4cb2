"""Small float64 geometry helpers shared by the reference estimators.

Everything here works on *rows*: 2-d arrays ``(N, D)``. The public functions flatten
``z`` of shape ``(..., D)`` with :func:`as_rows` and restore the leading axes at the end.
"""

from __future__ import annotations

import math

import numpy as np

from diveq.reference._validate import F64, I64

__all__ = [
    "TINY",
    "argmin_first",
    "as_rows",
    "dithered_points",
    "norm",
    "project_on_segments",
    "scatter_rows",
    "sq_dists",
    "unit",
]

#: Floor of ``||z||`` in the rotation trick's scale ``||c_k|| / max(||z||, 1e-12)``.
TINY = 1e-12


def as_rows(x: F64) -> F64:
    """Reshape ``(..., D)`` to ``(N, D)`` with ``N = prod(x.shape[:-1])`` (``N`` may be 0)."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def _scaled(v: F64) -> tuple[F64, F64]:
    """``(v * inv, inv)`` with per-row powers of two ``inv`` that bring ``max |v_row|`` into
    ``[0.5, 1)`` (``inv = 1`` for a zero row): exact, so norms of the scaled rows neither
    overflow nor underflow."""
    m = np.max(np.abs(v), axis=-1, keepdims=True, initial=0.0)
    inv = np.ldexp(1.0, -np.frexp(m)[1])
    return v * inv, inv


def norm(v: F64) -> F64:
    """``||v||`` along the last axis (keepdims), overflow- and underflow-safe."""
    w, inv = _scaled(v)
    return np.sqrt(np.sum(w * w, axis=-1, keepdims=True)) / inv


def unit(v: F64) -> F64:
    """``v / ||v||`` along the last axis, and ``unit(0) = 0``; the norm is taken on the row
    scaled by a power of two, so it neither overflows nor underflows (no floor: a row of any
    nonzero length gets a unit vector)."""
    w, _ = _scaled(v)
    n = np.sqrt(np.sum(w * w, axis=-1, keepdims=True))
    return w / np.where(n > 0, n, 1.0)


def sq_dists(rows: F64, points: F64) -> F64:
    """Exact squared distances ``||rows[n] - points[j]||^2``, shape ``(N, P)``."""
    diff = rows[:, None, :] - points[None, :, :]
    return np.sum(diff * diff, axis=-1)


def argmin_first(dists: F64) -> I64:
    """Row-wise argmin of ``(N, P)`` distances, the first index on ties (as ``np.argmin``)."""
    return np.argmin(dists, axis=1).astype(np.int64)


def dithered_points(codebook: F64, lam: F64) -> F64:
    """``p_j = (1 - lam_j) c_j + lam_j c_{j+1}`` for ``j = 0 .. K-2``, shape ``(K-1, D)``."""
    return (1.0 - lam)[:, None] * codebook[:-1] + lam[:, None] * codebook[1:]


def project_on_segments(rows: F64, codebook: F64) -> tuple[I64, F64, F64]:
    """Exact nearest point of the polyline ``c_0, c_1, ..., c_{K-1}`` for every row.

    For segment ``j`` with ``a = c_j`` and ``e = c_{j+1} - c_j``:
    ``t_j = clip(((z - a) . e) / ||e||^2, 0, 1)`` (``t_j = 0`` when ``e = 0``); the point is
    ``a + t_j e``; the segment of smallest distance wins, the first on ties.

    Returns
    -------
    indices : (N,) int64
        Chosen segment per row.
    t : (N,) float64
        Position on the chosen segment.
    points : (N, D) float64
        The projections.
    """
    n, d = rows.shape
    nseg = codebook.shape[0] - 1
    ts = np.zeros((n, nseg))
    pts = np.zeros((n, nseg, d))
    for j in range(nseg):
        a, e = codebook[j], codebook[j + 1] - codebook[j]
        ee = float(e @ e)
        t = np.clip((rows - a) @ e / ee, 0.0, 1.0) if ee > 0 else np.zeros(n)
        ts[:, j] = t
        # at t = 1 the point is the next vertex itself, so a vertex shared by two segments is
        # an exact tie and the first segment wins
        pts[:, j] = np.where(t[:, None] >= 1.0, codebook[j + 1], a + t[:, None] * e)
    diff = rows[:, None, :] - pts
    idx = argmin_first(np.sum(diff * diff, axis=-1))
    rows_n = np.arange(n)
    return idx, ts[rows_n, idx], pts[rows_n, idx]


def scatter_rows(num: int, index: I64, values: F64) -> F64:
    """``out[j] = sum of values[n] over rows n with index[n] == j``, shape ``(num, D)``."""
    out = np.zeros((num, values.shape[-1]))
    np.add.at(out, index, values)
    return out
