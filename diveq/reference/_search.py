"""Hard inference: nearest codeword and exact polyline projection."""

from __future__ import annotations

from typing import Any

from numpy.typing import ArrayLike

from diveq._types import Quantized, SFQuantized
from diveq.reference import _validate as v
from diveq.reference._geometry import argmin_first, as_rows, project_on_segments, sq_dists

__all__ = ["nearest", "quantize", "sf_quantize"]


def nearest(z: ArrayLike, codebook: ArrayLike, *, chunk_size: Any = None) -> v.I64:
    """Index of the nearest codeword of every row of ``z``.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords ``c_j``, ``K >= 1``.
    chunk_size : int, optional
        Accepted for API compatibility with the backends (which search in chunks of rows);
        it must be ``None`` or a positive int and does not change the result.

    Returns
    -------
    ndarray of int64, shape z.shape[:-1]
        ``k = argmin_j ||z - c_j||^2``, the first index on ties.

    Raises
    ------
    TypeError
        If ``z`` or ``codebook`` is not real floating, or ``chunk_size`` is not an int.
    ValueError
        On a shape mismatch, non-finite input or ``chunk_size <= 0``.

    Notes
    -----
    The distances are the exact ``||z - c_j||^2`` in float64 (not the expanded form).

    Examples
    --------
    >>> nearest([[0.9, 0.0], [0.0, -0.2]], [[0.0, 0.0], [1.0, 0.0]])
    array([1, 0])
    """
    zf, cf = v.codebook_args(z, codebook)
    v.check_chunk_size(chunk_size)
    idx = argmin_first(sq_dists(as_rows(zf), cf))
    return idx.reshape(zf.shape[:-1])


def quantize(z: ArrayLike, codebook: ArrayLike) -> Quantized:
    """Hard vector quantisation: replace every row by its nearest codeword.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords, ``K >= 1``.

    Returns
    -------
    Quantized
        ``values = c_k`` (float64, shape ``z.shape``) and ``indices = k`` (int64).

    Raises
    ------
    TypeError
        If ``z`` or ``codebook`` is not real floating.
    ValueError
        On a shape mismatch or non-finite input.

    Examples
    --------
    >>> quantize([[0.9, 0.0]], [[0.0, 0.0], [1.0, 0.0]]).values
    array([[1., 0.]])
    """
    zf, cf = v.codebook_args(z, codebook)
    idx = argmin_first(sq_dists(as_rows(zf), cf))
    return Quantized(cf[idx].reshape(zf.shape), idx.reshape(zf.shape[:-1]))


def sf_quantize(z: ArrayLike, codebook: ArrayLike) -> SFQuantized:
    """Space-filling inference: the exact nearest point of the polyline of the codewords.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Polyline vertices in storage order, ``K >= 2``.

    Returns
    -------
    SFQuantized
        ``values`` (float64, shape ``z.shape``): the projection ``c_i + t (c_{i+1} - c_i)``;
        ``indices`` (int64, shape ``z.shape[:-1]``): the segment ``i``; ``weights``
        (float64): ``t``.

    Raises
    ------
    TypeError
        If ``z`` or ``codebook`` is not real floating.
    ValueError
        On a shape mismatch, ``K < 2`` or non-finite input.

    Notes
    -----
    For every segment ``j`` with ``a = c_j``, ``e = c_{j+1} - c_j``:
    ``t_j = clip(((z - a) . e) / ||e||^2, 0, 1)`` (``t_j = 0`` when ``e = 0``) and the point
    ``a + t_j e``; the segment of smallest distance is chosen, the first on ties.

    Examples
    --------
    >>> c = [[-10.0, 0.1], [10.0, 0.1], [0.0, -1.0], [0.0, -5.0]]
    >>> out = sf_quantize([[0.0, 0.0]], c)
    >>> out.values, out.indices, out.weights
    (array([[0. , 0.1]]), array([0]), array([0.5]))
    """
    zf, cf = v.codebook_args(z, codebook, min_codes=2)
    idx, t, points = project_on_segments(as_rows(zf), cf)
    lead = zf.shape[:-1]
    return SFQuantized(points.reshape(zf.shape), idx.reshape(lead), t.reshape(lead))
