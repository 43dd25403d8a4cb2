"""DiVeQ with one codebook and its VJP, plus the shared DiVeQ step.

The DiVeQ step maps a row ``z`` and its target ``q`` (a codeword, or the composite
quantisation of section 5) to ``z + ||q - z|| sg(unit(q - z + s xi))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from diveq._types import Quantized
from diveq.reference import _validate as v
from diveq.reference._geometry import argmin_first, as_rows, norm, scatter_rows, sq_dists, unit

__all__ = ["diveq", "diveq_vjp", "step", "step_vjp"]


def step(z: v.F64, q: v.F64, s: float, xi: v.F64 | None) -> tuple[v.F64, v.F64]:
    """DiVeQ step on rows: ``(z + r u, u)`` with ``r = ||q - z||``, ``u = unit(q - z + s xi)``.

    ``u = unit(q - z)`` exactly when ``s == 0`` (``xi`` may then be ``None``).
    """
    d = q - z
    r = norm(d)
    u = unit(d) if s == 0 or xi is None else unit(d + s * xi)
    return z + r * u, u


def step_vjp(z: v.F64, q: v.F64, u: v.F64, g: v.F64) -> tuple[v.F64, v.F64]:
    """VJP of the DiVeQ step on rows: ``(dz, a ê)`` with ``a = g . u`` and ``ê = unit(q - z)``.

    ``dz = g - a ê``; ``a ê`` is what the target ``q`` receives.
    """
    a = np.sum(g * u, axis=-1, keepdims=True)
    a_e = a * unit(q - z)
    return g - a_e, a_e


def _rows_or_none(x: v.F64 | None, n: int, d: int) -> v.F64 | None:
    return None if x is None else x.reshape(n, d)


def diveq(
    z: ArrayLike,
    codebook: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    noise: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
) -> Quantized:
    """DiVeQ: differentiable vector quantisation by a directional reparameterisation.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords, ``K >= 1``.
    noise_std : float, default 1e-3
        Standard deviation ``s >= 0`` of the directional noise; ``0`` is the deterministic
        variant (``values = c_k`` up to rounding).
    noise : array_like, shape z.shape, optional
        Standard-normal draws ``xi``. Sampled from ``rng`` when needed and not given.
    rng : numpy.random.Generator, optional
        Source of the missing draws (``np.random.default_rng(rng)``).

    Returns
    -------
    Quantized
        ``values`` (float64, shape ``z.shape``) and ``indices = k`` (int64).

    Raises
    ------
    TypeError
        If ``z``, ``codebook`` or ``noise`` is not real floating.
    ValueError
        On a shape mismatch, negative or non-finite ``noise_std``, or non-finite input.

    See Also
    --------
    diveq_vjp : The gradient of this estimator.

    Notes
    -----
    ``k = argmin_j ||z - c_j||^2``, ``d = c_k - z``, ``r = ||d||``,
    ``u = sg(unit(d + s xi))`` and ``values = z + r u``: on the sphere of radius ``r``
    around ``z``, close to ``c_k`` for small ``s``.

    Examples
    --------
    >>> diveq([[0.5, 0.0]], [[0.0, 0.0], [1.0, 0.0]], noise_std=0.0)
    Quantized(values=array([[0., 0.]]), indices=array([0]))
    """
    zf, cf = v.codebook_args(z, codebook)
    s = v.noise_std_value(noise_std)
    xi = v.optional_draw("noise", noise, zf.shape)
    xi = v.Draws(rng).noise(xi, zf.shape, needed=s > 0)
    zr = as_rows(zf)
    k = argmin_first(sq_dists(zr, cf))
    values, _ = step(zr, cf[k], s, _rows_or_none(xi, *zr.shape))
    return Quantized(values.reshape(zf.shape), k.reshape(zf.shape[:-1]))


def diveq_vjp(
    z: ArrayLike,
    codebook: ArrayLike,
    cotangent: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    noise: ArrayLike | None = None,
) -> tuple[v.F64, v.F64]:
    """Vector-Jacobian product of :func:`diveq` with respect to ``z`` and ``codebook``.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords, ``K >= 1``.
    cotangent : array_like, shape z.shape
        Upstream gradient ``g`` of ``values``.
    noise_std : float, default 1e-3
        As in :func:`diveq`.
    noise : array_like, shape z.shape
        The draws ``xi`` of the forward pass; required when ``noise_std > 0``.

    Returns
    -------
    dz : ndarray of float64, shape z.shape
        ``g - a ê``.
    dcodebook : ndarray of float64, shape (K, D)
        Row ``j`` sums ``a ê`` over the rows with ``k = j``; zero for unselected codewords.

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch, a missing ``noise``, bad ``noise_std`` or non-finite input.

    Notes
    -----
    With ``ê = unit(c_k - z)`` and ``a = g . u`` per row. Per row, the ``z`` part plus the
    codeword part equals ``g``; at ``z == c_k``, ``ê = 0``, so ``dz = g``.
    """
    zf, cf = v.codebook_args(z, codebook)
    s = v.noise_std_value(noise_std)
    g = v.cotangent_arg(cotangent, zf.shape)
    xi = (
        v.required_draw("noise", noise, zf.shape, why="by diveq_vjp when noise_std > 0")
        if s > 0
        else v.optional_draw("noise", noise, zf.shape)
    )
    zr = as_rows(zf)
    k = argmin_first(sq_dists(zr, cf))
    _, u = step(zr, cf[k], s, _rows_or_none(xi, *zr.shape))
    dz, a_e = step_vjp(zr, cf[k], u, as_rows(g))
    return dz.reshape(zf.shape), scatter_rows(cf.shape[0], k, a_e)
