"""Hard inference with composite codebooks.

Per block (product) or stage (residual) ``m``: hard nearest-codeword quantisation, or the exact
polyline projection of :func:`~diveq.reference.sf_quantize`. Product concatenates the parts;
residual sums them, with ``x_0 = z`` and ``x_{m+1} = x_m - value_m``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from diveq._types import Quantized, SFQuantized
from diveq.reference import _validate as v
from diveq.reference._geometry import argmin_first, as_rows, project_on_segments, sq_dists

__all__ = [
    "product_quantize",
    "product_sf_quantize",
    "residual_quantize",
    "residual_sf_quantize",
]


def _run(
    z: ArrayLike, codebooks: ArrayLike, *, product: bool, sf: bool
) -> tuple[v.F64, v.I64, v.F64]:
    """Returns ``(values, indices, weights)`` with the leading axes of ``z`` restored."""
    zf, cf = v.codebooks_args(z, codebooks, product=product, min_codes=2 if sf else 1)
    zr = as_rows(zf)
    m_books, _, dm = cf.shape
    idx = np.zeros((zr.shape[0], m_books), dtype=np.int64)
    weights = np.zeros((zr.shape[0], m_books))
    values = np.zeros(zr.shape)
    x = zr
    for m in range(m_books):
        cols = slice(m * dm, (m + 1) * dm)
        target = zr[:, cols] if product else x
        if sf:
            idx[:, m], weights[:, m], part = project_on_segments(target, cf[m])
        else:
            idx[:, m] = argmin_first(sq_dists(target, cf[m]))
            part = cf[m][idx[:, m]]
        if product:
            values[:, cols] = part
        else:
            x = x - part
            values = values + part
    lead = (*zf.shape[:-1], m_books)
    return values.reshape(zf.shape), idx.reshape(lead), weights.reshape(lead)


def product_quantize(z: ArrayLike, codebooks: ArrayLike) -> Quantized:
    """Product quantisation: each block of ``z`` replaced by its nearest codeword.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D / M)
        One codebook per contiguous block of ``D / M`` columns.

    Returns
    -------
    Quantized
        ``values = concat_m C_m[k_m]`` (float64) and ``indices`` (int64, shape
        ``z.shape[:-1] + (M,)``).

    Raises
    ------
    TypeError
        If ``z`` or ``codebooks`` is not real floating.
    ValueError
        On a shape mismatch (including ``D % M != 0``) or non-finite input.

    Examples
    --------
    >>> product_quantize([[0.9, 0.1]], [[[0.0], [1.0]], [[0.0], [2.0]]])
    Quantized(values=array([[1., 0.]]), indices=array([[1, 0]]))
    """
    values, idx, _ = _run(z, codebooks, product=True, sf=False)
    return Quantized(values, idx)


def residual_quantize(z: ArrayLike, codebooks: ArrayLike) -> Quantized:
    """Residual quantisation: greedy stage-by-stage nearest codewords, summed.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D)
        One codebook per stage.

    Returns
    -------
    Quantized
        ``values = sum_m C_m[k_m]`` (float64) and ``indices`` (int64, shape
        ``z.shape[:-1] + (M,)``).

    Raises
    ------
    TypeError
        If ``z`` or ``codebooks`` is not real floating.
    ValueError
        On a shape mismatch or non-finite input.

    Notes
    -----
    ``x_0 = z``, ``k_m = nearest(x_m, C_m)``, ``x_{m+1} = x_m - C_m[k_m]``.

    Examples
    --------
    >>> residual_quantize([[1.4]], [[[0.0], [1.0]], [[0.0], [0.5]]])
    Quantized(values=array([[1.5]]), indices=array([[1, 1]]))
    """
    values, idx, _ = _run(z, codebooks, product=False, sf=False)
    return Quantized(values, idx)


def product_sf_quantize(z: ArrayLike, codebooks: ArrayLike) -> SFQuantized:
    """Product space-filling inference: each block projected exactly onto its polyline.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D / M)
        One polyline per contiguous block of ``D / M`` columns, ``K >= 2``.

    Returns
    -------
    SFQuantized
        ``values`` (float64, concatenated projections), segment ``indices`` (int64) and
        ``weights = t`` (float64), both of shape ``z.shape[:-1] + (M,)``.

    Raises
    ------
    TypeError
        If ``z`` or ``codebooks`` is not real floating.
    ValueError
        On a shape mismatch, ``K < 2``, ``D % M != 0`` or non-finite input.

    Notes
    -----
    Block ``m`` is ``sf_quantize(z_m, C_m)``.
    """
    return SFQuantized(*_run(z, codebooks, product=True, sf=True))


def residual_sf_quantize(z: ArrayLike, codebooks: ArrayLike) -> SFQuantized:
    """Residual space-filling inference: stage-by-stage exact polyline projections, summed.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebooks : array_like, shape (M, K, D)
        One polyline per stage, ``K >= 2``.

    Returns
    -------
    SFQuantized
        ``values`` (float64, summed projections), segment ``indices`` (int64) and
        ``weights = t`` (float64), both of shape ``z.shape[:-1] + (M,)``.

    Raises
    ------
    TypeError
        If ``z`` or ``codebooks`` is not real floating.
    ValueError
        On a shape mismatch, ``K < 2`` or non-finite input.

    Notes
    -----
    ``x_0 = z``, ``value_m = sf_quantize(x_m, C_m).values``, ``x_{m+1} = x_m - value_m``.
    """
    return SFQuantized(*_run(z, codebooks, product=False, sf=True))
