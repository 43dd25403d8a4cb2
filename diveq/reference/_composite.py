"""Product and residual DiVeQ and their VJPs.

Both select one codeword per codebook, form the composite quantisation ``q`` and then take
**one** DiVeQ step on the whole vector: ``z + ||q - z|| sg(unit(q - z + s xi))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from diveq._types import Quantized
from diveq.reference import _validate as v
from diveq.reference._diveq import step, step_vjp
from diveq.reference._geometry import argmin_first, as_rows, scatter_rows, sq_dists

__all__ = ["product_diveq", "product_diveq_vjp", "residual_diveq", "residual_diveq_vjp"]


def select(zr: v.F64, cs: v.F64, *, product: bool) -> tuple[v.I64, v.F64]:
    """Rows in; ``(k, q)`` out with ``k`` of shape ``(N, M)`` and ``q`` of shape ``(N, D)``.

    Product: block ``m`` (columns ``m D' .. (m+1) D' - 1``) of ``q`` is ``C_m[k_m]``, the
    codeword nearest to block ``m`` of ``z``. Residual: ``x_0 = z``,
    ``k_m = nearest(x_m, C_m)``, ``x_{m+1} = x_m - C_m[k_m]`` and ``q = sum_m C_m[k_m]``.
    """
    m_books, _, dm = cs.shape
    k = np.zeros((zr.shape[0], m_books), dtype=np.int64)
    q = np.zeros(zr.shape)
    x = zr
    for m in range(m_books):
        if product:
            cols = slice(m * dm, (m + 1) * dm)
            k[:, m] = argmin_first(sq_dists(zr[:, cols], cs[m]))
            q[:, cols] = cs[m][k[:, m]]
        else:
            k[:, m] = argmin_first(sq_dists(x, cs[m]))
            x = x - cs[m][k[:, m]]
            q = q + cs[m][k[:, m]]
    return k, q


def _forward(
    z: Any, codebooks: Any, noise_std: Any, noise: Any, rng: Any, product: bool
) -> Quantized:
    zf, cf = v.codebooks_args(z, codebooks, product=product)
    s = v.noise_std_value(noise_std)
    xi = v.optional_draw("noise", noise, zf.shape)
    xi = v.Draws(rng).noise(xi, zf.shape, needed=s > 0)
    zr = as_rows(zf)
    k, q = select(zr, cf, product=product)
    values, _ = step(zr, q, s, None if xi is None else as_rows(xi))
    return Quantized(values.reshape(zf.shape), k.reshape(*zf.shape[:-1], cf.shape[0]))


def _vjp(
    z: Any, codebooks: Any, cotangent: Any, noise_std: Any, noise: Any, product: bool
) -> tuple[v.F64, v.F64]:
    name = "product_diveq_vjp" if product else "residual_diveq_vjp"
    zf, cf = v.codebooks_args(z, codebooks, product=product)
    s = v.noise_std_value(noise_std)
    g = v.cotangent_arg(cotangent, zf.shape)
    xi = (
        v.required_draw("noise", noise, zf.shape, why=f"by {name} when noise_std > 0")
        if s > 0
        else v.optional_draw("noise", noise, zf.shape)
    )
    zr = as_rows(zf)
    k, q = select(zr, cf, product=product)
    _, u = step(zr, q, s, None if xi is None else as_rows(xi))
    dz, a_e = step_vjp(zr, q, u, as_rows(g))
    m_books, num, dm = cf.shape
    dcodebooks = np.zeros(cf.shape)
    for m in range(m_books):
        part = a_e[:, m * dm : (m + 1) * dm] if product else a_e
        dcodebooks[m] = scatter_rows(num, k[:, m], part)
    return dz.reshape(zf.shape), dcodebooks


def product_diveq(
    z: ArrayLike,
    codebooks: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    noise: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
) -> Quantized:
    """Product DiVeQ: per-block nearest codewords, then one DiVeQ step on the whole vector.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D / M)
        One codebook per contiguous block of ``D / M`` columns (``D % M == 0``).
    noise_std : float, default 1e-3
        Standard deviation ``s >= 0`` of the directional noise.
    noise : array_like, shape z.shape, optional
        Standard-normal draws ``xi``. Sampled from ``rng`` when needed and not given.
    rng : numpy.random.Generator, optional
        Source of the missing draws (``np.random.default_rng(rng)``).

    Returns
    -------
    Quantized
        ``values`` (float64, shape ``z.shape``) and ``indices`` (int64, shape
        ``z.shape[:-1] + (M,)``).

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch (including ``D % M != 0``), bad ``noise_std`` or non-finite input.

    Notes
    -----
    ``q = concat_m C_m[k_m]`` with ``k_m`` nearest to block ``m`` of ``z``; then
    ``values = z + ||q - z|| sg(unit(q - z + s xi))``.

    Examples
    --------
    >>> cbs = [[[0.0], [1.0]], [[0.0], [2.0]]]
    >>> product_diveq([[0.9, 0.1]], cbs, noise_std=0.0).indices
    array([[1, 0]])
    """
    return _forward(z, codebooks, noise_std, noise, rng, product=True)


def product_diveq_vjp(
    z: ArrayLike,
    codebooks: ArrayLike,
    cotangent: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    noise: ArrayLike | None = None,
) -> tuple[v.F64, v.F64]:
    """Vector-Jacobian product of :func:`product_diveq`.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D / M)
        The codebooks.
    cotangent : array_like, shape z.shape
        Upstream gradient ``g`` of ``values``.
    noise_std : float, default 1e-3
        As in :func:`product_diveq`.
    noise : array_like, shape z.shape
        The draws of the forward pass; required when ``noise_std > 0``.

    Returns
    -------
    dz : ndarray of float64, shape z.shape
        ``g - a ê``.
    dcodebooks : ndarray of float64, shape (M, K, D / M)
        ``C_m[k_m]`` receives block ``m`` of ``a ê``, summed over rows.

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch, a missing ``noise``, bad ``noise_std`` or non-finite input.

    Notes
    -----
    ``ê = unit(q - z)``, ``a = g . u``. Per row, ``dz`` plus the concatenated codeword parts
    equals ``g``.
    """
    return _vjp(z, codebooks, cotangent, noise_std, noise, product=True)


def residual_diveq(
    z: ArrayLike,
    codebooks: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    noise: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
) -> Quantized:
    """Residual DiVeQ: greedy residual codewords, then one DiVeQ step on their sum.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D)
        One codebook per stage.
    noise_std : float, default 1e-3
        Standard deviation ``s >= 0`` of the directional noise.
    noise : array_like, shape z.shape, optional
        Standard-normal draws ``xi``. Sampled from ``rng`` when needed and not given.
    rng : numpy.random.Generator, optional
        Source of the missing draws (``np.random.default_rng(rng)``).

    Returns
    -------
    Quantized
        ``values`` (float64, shape ``z.shape``) and ``indices`` (int64, shape
        ``z.shape[:-1] + (M,)``).

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch, bad ``noise_std`` or non-finite input.

    Notes
    -----
    ``x_0 = z``, ``k_m = nearest(x_m, C_m)``, ``x_{m+1} = x_m - C_m[k_m]``,
    ``q = sum_m C_m[k_m]``; then ``values = z + ||q - z|| sg(unit(q - z + s xi))``.

    Examples
    --------
    >>> cbs = [[[0.0], [1.0]], [[0.0], [0.5]]]
    >>> residual_diveq([[1.4]], cbs, noise_std=0.0)
    Quantized(values=array([[1.5]]), indices=array([[1, 1]]))
    """
    return _forward(z, codebooks, noise_std, noise, rng, product=False)


def residual_diveq_vjp(
    z: ArrayLike,
    codebooks: ArrayLike,
    cotangent: ArrayLike,
    *,
    noise_std: Any = 1e-3,
    noise: ArrayLike | None = None,
) -> tuple[v.F64, v.F64]:
    """Vector-Jacobian product of :func:`residual_diveq`.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D)
        The codebooks.
    cotangent : array_like, shape z.shape
        Upstream gradient ``g`` of ``values``.
    noise_std : float, default 1e-3
        As in :func:`residual_diveq`.
    noise : array_like, shape z.shape
        The draws of the forward pass; required when ``noise_std > 0``.

    Returns
    -------
    dz : ndarray of float64, shape z.shape
        ``g - a ê``.
    dcodebooks : ndarray of float64, shape (M, K, D)
        Every selected codeword ``C_m[k_m]`` receives the full ``a ê``, summed over rows.

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch, a missing ``noise``, bad ``noise_std`` or non-finite input.

    Notes
    -----
    ``ê = unit(q - z)``, ``a = g . u``. As in the official code, the total is not conserved
    for ``M > 1``: each stage's codeword gets all of ``a ê``.
    """
    return _vjp(z, codebooks, cotangent, noise_std, noise, product=False)
