"""Space-filling DiVeQ (SF-DiVeQ) and its VJP."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from diveq._types import SFQuantized
from diveq.reference import _validate as v
from diveq.reference._geometry import (
    argmin_first,
    as_rows,
    dithered_points,
    norm,
    scatter_rows,
    sq_dists,
    unit,
)

__all__ = ["sf_diveq", "sf_diveq_vjp"]


def _directions(d: v.F64, s: float, xi: v.F64 | None) -> v.F64:
    return unit(d) if s == 0 or xi is None else unit(d + s * xi)


def _forward(
    zr: v.F64, cf: v.F64, lam: v.F64, s: float, xi: v.F64 | None
) -> tuple[v.I64, v.F64, v.F64, v.F64, v.F64]:
    """Rows in, ``(i, lam_i, u1, u2, values)`` out; ``xi`` has shape ``(2, N, D)`` or is None."""
    i = argmin_first(sq_dists(zr, dithered_points(cf, lam)))
    lam_i = lam[i][:, None]
    d1, d2 = cf[i] - zr, cf[i + 1] - zr
    u1 = _directions(d1, s, None if xi is None else xi[0])
    u2 = _directions(d2, s, None if xi is None else xi[1])
    values = zr + (1 - lam_i) * norm(d1) * u1 + lam_i * norm(d2) * u2
    return i, lam_i, u1, u2, values


def _noise_rows(xi: v.F64 | None, zf: v.F64) -> v.F64 | None:
    return None if xi is None else xi.reshape(2, *as_rows(zf).shape)


def sf_diveq(
    z: ArrayLike,
    codebook: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    dither: ArrayLike | None = None,
    noise: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
) -> SFQuantized:
    """SF-DiVeQ: DiVeQ towards a dithered point of the polyline of the codewords.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Polyline vertices in storage order, ``K >= 2``.
    noise_std : float, default 1e-3
        Standard deviation ``s >= 0`` of the directional noise; ``0`` is deterministic.
    dither : array_like, shape (K - 1,), optional
        ``lam`` in ``[0, 1)``, one per segment, shared by all rows. Sampled uniformly from
        ``rng`` when not given (before ``noise``).
    noise : array_like, shape ``(2, *z.shape)``, optional
        Standard-normal draws ``xi``. Sampled from ``rng`` when needed and not given.
    rng : numpy.random.Generator, optional
        Source of the missing draws (``np.random.default_rng(rng)``).

    Returns
    -------
    SFQuantized
        ``values`` (float64, shape ``z.shape``), segment ``indices = i`` (int64) and
        ``weights = lam_i`` (float64).

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch, ``K < 2``, bad ``noise_std``, non-finite input or a dither
        outside ``[0, 1)``.

    See Also
    --------
    sf_diveq_vjp : The gradient of this estimator.

    Notes
    -----
    ``p_j = (1 - lam_j) c_j + lam_j c_{j+1}`` (no gradient through ``p``),
    ``i = argmin_j ||z - p_j||^2``, ``l = lam_i``, ``d1 = c_i - z``, ``d2 = c_{i+1} - z``,
    ``u1 = sg(unit(d1 + s xi[0]))``, ``u2 = sg(unit(d2 + s xi[1]))`` and
    ``values = z + (1 - l) ||d1|| u1 + l ||d2|| u2``, which tends to ``p_i`` as ``s -> 0``.

    Examples
    --------
    >>> z, codebook = [[0.25, 0.5]], [[0.0, 0.0], [1.0, 0.0]]
    >>> out = sf_diveq(z, codebook, noise_std=0.0, dither=[0.25])
    >>> out.values, out.indices, out.weights
    (array([[0.25, 0.  ]]), array([0]), array([0.25]))
    """
    zf, cf = v.codebook_args(z, codebook, min_codes=2)
    s = v.noise_std_value(noise_std)
    lam_shape, xi_shape = (cf.shape[0] - 1,), (2, *zf.shape)
    lam = v.optional_draw("dither", dither, lam_shape, unit_interval=True)
    xi = v.optional_draw("noise", noise, xi_shape)
    draws = v.Draws(rng)
    lam = draws.dither(lam, lam_shape)
    xi = draws.noise(xi, xi_shape, needed=s > 0)
    i, lam_i, _, _, values = _forward(as_rows(zf), cf, lam, s, _noise_rows(xi, zf))
    lead = zf.shape[:-1]
    return SFQuantized(values.reshape(zf.shape), i.reshape(lead), lam_i.reshape(lead))


def sf_diveq_vjp(
    z: ArrayLike,
    codebook: ArrayLike,
    cotangent: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    dither: ArrayLike | None = None,
    noise: ArrayLike | None = None,
) -> tuple[v.F64, v.F64]:
    """Vector-Jacobian product of :func:`sf_diveq` with respect to ``z`` and ``codebook``.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Polyline vertices, ``K >= 2``.
    cotangent : array_like, shape z.shape
        Upstream gradient ``g`` of ``values``.
    noise_std : float, default 1e-3
        As in :func:`sf_diveq`.
    dither : array_like, shape (K - 1,)
        The dither ``lam`` of the forward pass (required).
    noise : array_like, shape ``(2, *z.shape)``
        The draws ``xi`` of the forward pass; required when ``noise_std > 0``.

    Returns
    -------
    dz : ndarray of float64, shape z.shape
        ``g - a1 ê1 - a2 ê2``.
    dcodebook : ndarray of float64, shape (K, D)
        ``c_i`` receives ``a1 ê1`` and ``c_{i+1}`` receives ``a2 ê2``, summed over rows.

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch, ``K < 2``, a missing draw, bad ``noise_std``, non-finite input
        or a dither outside ``[0, 1)``.

    Notes
    -----
    ``ê1 = unit(c_i - z)``, ``ê2 = unit(c_{i+1} - z)``, ``a1 = (1 - l)(g . u1)`` and
    ``a2 = l (g . u2)``. Per row, the three parts sum to ``g``.
    """
    zf, cf = v.codebook_args(z, codebook, min_codes=2)
    s = v.noise_std_value(noise_std)
    g = v.cotangent_arg(cotangent, zf.shape)
    lam_shape, xi_shape = (cf.shape[0] - 1,), (2, *zf.shape)
    lam = v.required_draw("dither", dither, lam_shape, why="by sf_diveq_vjp", unit_interval=True)
    xi = (
        v.required_draw("noise", noise, xi_shape, why="by sf_diveq_vjp when noise_std > 0")
        if s > 0
        else v.optional_draw("noise", noise, xi_shape)
    )
    zr, gr = as_rows(zf), as_rows(g)
    i, lam_i, u1, u2, _ = _forward(zr, cf, lam, s, _noise_rows(xi, zf))
    a1 = (1 - lam_i) * np.sum(gr * u1, axis=-1, keepdims=True)
    a2 = lam_i * np.sum(gr * u2, axis=-1, keepdims=True)
    part1 = a1 * unit(cf[i] - zr)
    part2 = a2 * unit(cf[i + 1] - zr)
    k = cf.shape[0]
    dcodebook = scatter_rows(k, i, part1) + scatter_rows(k, i + 1, part2)
    return (gr - part1 - part2).reshape(zf.shape), dcodebook
