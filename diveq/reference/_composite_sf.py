"""Product and residual SF-DiVeQ and their VJPs.

Per codebook (block or stage) ``m``, with its own dither ``lam^(m)``: the nearest dithered
point ``i_m``, ``l_m = lam^(m)_{i_m}`` and ``q_m = (1 - l_m) C_m[i_m] + l_m C_m[i_m + 1]``
(differentiable in both vertices). Then **one** DiVeQ step on ``q = concat/sum_m q_m``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from diveq._types import SFQuantized
from diveq.reference import _validate as v
from diveq.reference._diveq import step, step_vjp
from diveq.reference._geometry import (
    argmin_first,
    as_rows,
    dithered_points,
    scatter_rows,
    sq_dists,
)

__all__ = [
    "product_sf_diveq",
    "product_sf_diveq_vjp",
    "residual_sf_diveq",
    "residual_sf_diveq_vjp",
]


def select_sf(zr: v.F64, cs: v.F64, lam: v.F64, *, product: bool) -> tuple[v.I64, v.F64, v.F64]:
    """Rows in; ``(i, l, q)`` out with ``i``, ``l`` of shape ``(N, M)`` and ``q`` ``(N, D)``.

    Product: ``q_m`` quantises block ``m`` of ``z``. Residual: ``x_0 = z``, ``q_m`` quantises
    ``x_m`` and ``x_{m+1} = x_m - q_m``.
    """
    m_books, _, dm = cs.shape
    i = np.zeros((zr.shape[0], m_books), dtype=np.int64)
    lam_i = np.zeros((zr.shape[0], m_books))
    q = np.zeros(zr.shape)
    x = zr
    for m in range(m_books):
        cols = slice(m * dm, (m + 1) * dm)
        target = zr[:, cols] if product else x
        i[:, m] = argmin_first(sq_dists(target, dithered_points(cs[m], lam[m])))
        lam_i[:, m] = lam[m][i[:, m]]
        w = lam_i[:, m][:, None]
        q_m = (1 - w) * cs[m][i[:, m]] + w * cs[m][i[:, m] + 1]
        if product:
            q[:, cols] = q_m
        else:
            x = x - q_m
            q = q + q_m
    return i, lam_i, q


def _forward(
    z: Any, codebooks: Any, noise_std: Any, dither: Any, noise: Any, rng: Any, product: bool
) -> SFQuantized:
    zf, cf = v.codebooks_args(z, codebooks, product=product, min_codes=2)
    s = v.noise_std_value(noise_std)
    lam_shape = (cf.shape[0], cf.shape[1] - 1)
    lam = v.optional_draw("dither", dither, lam_shape, unit_interval=True)
    xi = v.optional_draw("noise", noise, zf.shape)
    draws = v.Draws(rng)
    lam = draws.dither(lam, lam_shape)
    xi = draws.noise(xi, zf.shape, needed=s > 0)
    zr = as_rows(zf)
    i, lam_i, q = select_sf(zr, cf, lam, product=product)
    values, _ = step(zr, q, s, None if xi is None else as_rows(xi))
    lead = (*zf.shape[:-1], cf.shape[0])
    return SFQuantized(values.reshape(zf.shape), i.reshape(lead), lam_i.reshape(lead))


def _vjp(
    z: Any, codebooks: Any, cotangent: Any, noise_std: Any, dither: Any, noise: Any, product: bool
) -> tuple[v.F64, v.F64]:
    name = "product_sf_diveq_vjp" if product else "residual_sf_diveq_vjp"
    zf, cf = v.codebooks_args(z, codebooks, product=product, min_codes=2)
    s = v.noise_std_value(noise_std)
    g = v.cotangent_arg(cotangent, zf.shape)
    lam_shape = (cf.shape[0], cf.shape[1] - 1)
    lam = v.required_draw("dither", dither, lam_shape, why=f"by {name}", unit_interval=True)
    xi = (
        v.required_draw("noise", noise, zf.shape, why=f"by {name} when noise_std > 0")
        if s > 0
        else v.optional_draw("noise", noise, zf.shape)
    )
    zr = as_rows(zf)
    i, lam_i, q = select_sf(zr, cf, lam, product=product)
    _, u = step(zr, q, s, None if xi is None else as_rows(xi))
    dz, a_e = step_vjp(zr, q, u, as_rows(g))
    m_books, num, dm = cf.shape
    dcodebooks = np.zeros(cf.shape)
    for m in range(m_books):
        part = a_e[:, m * dm : (m + 1) * dm] if product else a_e
        w = lam_i[:, m][:, None]
        dcodebooks[m] = scatter_rows(num, i[:, m], (1 - w) * part)
        dcodebooks[m] += scatter_rows(num, i[:, m] + 1, w * part)
    return dz.reshape(zf.shape), dcodebooks


def product_sf_diveq(
    z: ArrayLike,
    codebooks: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    dither: ArrayLike | None = None,
    noise: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
) -> SFQuantized:
    """Product SF-DiVeQ: a dithered polyline point per block, then one DiVeQ step.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D / M)
        One polyline per contiguous block of ``D / M`` columns, ``K >= 2``.
    noise_std : float, default 1e-3
        Standard deviation ``s >= 0`` of the directional noise.
    dither : array_like, shape (M, K - 1), optional
        ``lam^(m)`` in ``[0, 1)``, shared by all rows. Sampled from ``rng`` if not given
        (before ``noise``).
    noise : array_like, shape z.shape, optional
        Standard-normal draws ``xi``. Sampled from ``rng`` when needed and not given.
    rng : numpy.random.Generator, optional
        Source of the missing draws (``np.random.default_rng(rng)``).

    Returns
    -------
    SFQuantized
        ``values`` (float64, shape ``z.shape``); ``indices = i_m`` (int64) and
        ``weights = l_m`` (float64), both of shape ``z.shape[:-1] + (M,)``.

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch, ``K < 2``, ``D % M != 0``, bad ``noise_std``, non-finite input or
        a dither outside ``[0, 1)``.

    Notes
    -----
    ``q = concat_m q_m``, ``q_m = (1 - l_m) C_m[i_m] + l_m C_m[i_m + 1]`` with ``i_m`` the
    dithered point nearest to block ``m``; ``values = z + ||q - z|| sg(unit(q - z + s xi))``.
    """
    return _forward(z, codebooks, noise_std, dither, noise, rng, product=True)


def product_sf_diveq_vjp(
    z: ArrayLike,
    codebooks: ArrayLike,
    cotangent: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    dither: ArrayLike | None = None,
    noise: ArrayLike | None = None,
) -> tuple[v.F64, v.F64]:
    """Vector-Jacobian product of :func:`product_sf_diveq`.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D / M)
        The codebooks, ``K >= 2``.
    cotangent : array_like, shape z.shape
        Upstream gradient ``g`` of ``values``.
    noise_std : float, default 1e-3
        As in :func:`product_sf_diveq`.
    dither : array_like, shape (M, K - 1)
        The dither of the forward pass (required).
    noise : array_like, shape z.shape
        The draws of the forward pass; required when ``noise_std > 0``.

    Returns
    -------
    dz : ndarray of float64, shape z.shape
        ``g - a ê``.
    dcodebooks : ndarray of float64, shape (M, K, D / M)
        ``C_m[i_m] += (1 - l_m) a ê_m`` and ``C_m[i_m + 1] += l_m a ê_m``, ``ê_m`` block ``m``.

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch, a missing draw, bad ``noise_std``, non-finite input or a dither
        outside ``[0, 1)``.

    Notes
    -----
    ``ê = unit(q - z)``, ``a = g . u``. Per row, ``dz`` plus the codeword parts (block by
    block) equals ``g``.
    """
    return _vjp(z, codebooks, cotangent, noise_std, dither, noise, product=True)


def residual_sf_diveq(
    z: ArrayLike,
    codebooks: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    dither: ArrayLike | None = None,
    noise: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
) -> SFQuantized:
    """Residual SF-DiVeQ: a dithered polyline point per stage, then one DiVeQ step.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D)
        One polyline per stage, ``K >= 2``.
    noise_std : float, default 1e-3
        Standard deviation ``s >= 0`` of the directional noise.
    dither : array_like, shape (M, K - 1), optional
        ``lam^(m)`` in ``[0, 1)``, shared by all rows. Sampled from ``rng`` if not given
        (before ``noise``).
    noise : array_like, shape z.shape, optional
        Standard-normal draws ``xi``. Sampled from ``rng`` when needed and not given.
    rng : numpy.random.Generator, optional
        Source of the missing draws (``np.random.default_rng(rng)``).

    Returns
    -------
    SFQuantized
        ``values`` (float64, shape ``z.shape``); ``indices = i_m`` (int64) and
        ``weights = l_m`` (float64), both of shape ``z.shape[:-1] + (M,)``.

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch, ``K < 2``, bad ``noise_std``, non-finite input or a dither
        outside ``[0, 1)``.

    Notes
    -----
    ``x_0 = z``; ``q_m`` is the dithered point of ``C_m`` nearest to ``x_m``,
    ``x_{m+1} = x_m - q_m``, ``q = sum_m q_m`` and
    ``values = z + ||q - z|| sg(unit(q - z + s xi))``.
    """
    return _forward(z, codebooks, noise_std, dither, noise, rng, product=False)


def residual_sf_diveq_vjp(
    z: ArrayLike,
    codebooks: ArrayLike,
    cotangent: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    dither: ArrayLike | None = None,
    noise: ArrayLike | None = None,
) -> tuple[v.F64, v.F64]:
    """Vector-Jacobian product of :func:`residual_sf_diveq`.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D)
        The codebooks, ``K >= 2``.
    cotangent : array_like, shape z.shape
        Upstream gradient ``g`` of ``values``.
    noise_std : float, default 1e-3
        As in :func:`residual_sf_diveq`.
    dither : array_like, shape (M, K - 1)
        The dither of the forward pass (required).
    noise : array_like, shape z.shape
        The draws of the forward pass; required when ``noise_std > 0``.

    Returns
    -------
    dz : ndarray of float64, shape z.shape
        ``g - a ê``.
    dcodebooks : ndarray of float64, shape (M, K, D)
        ``C_m[i_m] += (1 - l_m) a ê`` and ``C_m[i_m + 1] += l_m a ê`` (the whole ``ê``).

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch, a missing draw, bad ``noise_std``, non-finite input or a dither
        outside ``[0, 1)``.

    Notes
    -----
    ``ê = unit(q - z)``, ``a = g . u``.
    """
    return _vjp(z, codebooks, cotangent, noise_std, dither, noise, product=False)
