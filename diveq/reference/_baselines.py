"""Baseline estimators: straight-through, NSVQ, rotation trick."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from diveq._types import Quantized
from diveq.reference import _validate as v
from diveq.reference._geometry import (
    TINY,
    argmin_first,
    as_rows,
    norm,
    scatter_rows,
    sq_dists,
    unit,
)

__all__ = ["nsvq", "nsvq_vjp", "rotation_trick", "rotation_trick_vjp", "ste", "ste_vjp"]


def _nearest_rows(zf: v.F64, cf: v.F64) -> tuple[v.F64, v.I64, v.F64]:
    """``(z rows, k, c_k rows)``."""
    zr = as_rows(zf)
    k = argmin_first(sq_dists(zr, cf))
    return zr, k, cf[k]


def _dot(a: v.F64, b: v.F64) -> v.F64:
    return np.sum(a * b, axis=-1, keepdims=True)


def ste(z: ArrayLike, codebook: ArrayLike) -> Quantized:
    """Straight-through estimator: ``values = z + sg(c_k - z)``.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords, ``K >= 1``.

    Returns
    -------
    Quantized
        ``values`` (float64, ``c_k`` up to rounding) and ``indices = k`` (int64).

    Raises
    ------
    TypeError
        If ``z`` or ``codebook`` is not real floating.
    ValueError
        On a shape mismatch or non-finite input.

    See Also
    --------
    ste_vjp : The gradient of this estimator.
    commitment_loss : The loss that trains the codebook alongside it.

    Examples
    --------
    >>> ste([[0.75]], [[0.0], [1.0]])
    Quantized(values=array([[1.]]), indices=array([1]))
    """
    zf, cf = v.codebook_args(z, codebook)
    zr, k, ck = _nearest_rows(zf, cf)
    return Quantized((zr + (ck - zr)).reshape(zf.shape), k.reshape(zf.shape[:-1]))


def ste_vjp(z: ArrayLike, codebook: ArrayLike, cotangent: ArrayLike) -> tuple[v.F64, v.F64]:
    """Vector-Jacobian product of :func:`ste`: ``dz = g``, ``dcodebook = 0``.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords.
    cotangent : array_like, shape z.shape
        Upstream gradient ``g``.

    Returns
    -------
    dz : ndarray of float64, shape z.shape
        ``g``.
    dcodebook : ndarray of float64, shape (K, D)
        Zeros: the codebook is trained by :func:`commitment_loss` instead.

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch or non-finite input.
    """
    zf, cf = v.codebook_args(z, codebook)
    g = v.cotangent_arg(cotangent, zf.shape)
    return g.copy(), np.zeros(cf.shape)


def nsvq(
    z: ArrayLike,
    codebook: ArrayLike,
    *,
    noise: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
) -> Quantized:
    """NSVQ (Vali & Bäckström 2022): ``values = z + ||c_k - z|| unit(xi)``.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords, ``K >= 1``.
    noise : array_like, shape z.shape, optional
        Standard-normal draws ``xi`` (a random direction per row); sampled from ``rng`` if
        not given.
    rng : numpy.random.Generator, optional
        Source of the missing draws (``np.random.default_rng(rng)``).

    Returns
    -------
    Quantized
        ``values`` (float64, shape ``z.shape``) and ``indices = k`` (int64).

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch or non-finite input.

    See Also
    --------
    nsvq_vjp : The gradient of this estimator.
    """
    zf, cf = v.codebook_args(z, codebook)
    xi = v.Draws(rng).normal(v.optional_draw("noise", noise, zf.shape), zf.shape)
    zr, k, ck = _nearest_rows(zf, cf)
    r = norm(ck - zr)
    values = zr + r * unit(as_rows(xi))
    return Quantized(values.reshape(zf.shape), k.reshape(zf.shape[:-1]))


def nsvq_vjp(
    z: ArrayLike, codebook: ArrayLike, cotangent: ArrayLike, *, noise: ArrayLike | None = None
) -> tuple[v.F64, v.F64]:
    """Vector-Jacobian product of :func:`nsvq`.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords.
    cotangent : array_like, shape z.shape
        Upstream gradient ``g``.
    noise : array_like, shape z.shape
        The draws ``xi`` of the forward pass (required).

    Returns
    -------
    dz : ndarray of float64, shape z.shape
        ``g - (g . unit(xi)) ê``.
    dcodebook : ndarray of float64, shape (K, D)
        ``c_k`` receives ``(g . unit(xi)) ê``, summed over rows.

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch, a missing ``noise`` or non-finite input.

    Notes
    -----
    ``ê = unit(c_k - z)``.
    """
    zf, cf = v.codebook_args(z, codebook)
    g = v.cotangent_arg(cotangent, zf.shape)
    xi = v.required_draw("noise", noise, zf.shape, why="by nsvq_vjp")
    zr, k, ck = _nearest_rows(zf, cf)
    gr = as_rows(g)
    a_e = _dot(gr, unit(as_rows(xi))) * unit(ck - zr)
    return (gr - a_e).reshape(zf.shape), scatter_rows(cf.shape[0], k, a_e)


def _rotation(zr: v.F64, ck: v.F64) -> tuple[v.F64, v.F64, v.F64, v.F64]:
    """The stopped quantities ``(zh, ch, w, s)`` of the rotation trick, per row."""
    zh, ch = unit(zr), unit(ck)
    w = unit(zh + ch)
    s = norm(ck) / np.maximum(norm(zr), TINY)
    return zh, ch, w, s


def rotation_trick(z: ArrayLike, codebook: ArrayLike) -> Quantized:
    """Rotation trick (Fifty et al. 2024): ``z`` rotated and rescaled onto ``c_k``.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords, ``K >= 1``.

    Returns
    -------
    Quantized
        ``values`` (float64, ``c_k`` up to rounding for ``z != 0``) and ``indices = k``.

    Raises
    ------
    TypeError
        If ``z`` or ``codebook`` is not real floating.
    ValueError
        On a shape mismatch or non-finite input.

    See Also
    --------
    rotation_trick_vjp : The gradient of this estimator.
    commitment_loss : The loss that trains the codebook alongside it.

    Notes
    -----
    With ``zh = unit(z)``, ``ch = unit(c_k)``, ``w = unit(zh + ch)`` and
    ``s = ||c_k|| / max(||z||, 1e-12)``, all stopped:
    ``values = s (z - 2 (z . w) w + 2 (z . zh) ch)``. For ``z = 0`` the value is ``0``.

    Examples
    --------
    >>> rotation_trick([[2.0, 0.0]], [[0.0, 1.0]]).values.round(12)
    array([[0., 1.]])
    """
    zf, cf = v.codebook_args(z, codebook)
    zr, k, ck = _nearest_rows(zf, cf)
    zh, ch, w, s = _rotation(zr, ck)
    values = s * (zr - 2 * _dot(zr, w) * w + 2 * _dot(zr, zh) * ch)
    return Quantized(values.reshape(zf.shape), k.reshape(zf.shape[:-1]))


def rotation_trick_vjp(
    z: ArrayLike, codebook: ArrayLike, cotangent: ArrayLike
) -> tuple[v.F64, v.F64]:
    """Vector-Jacobian product of :func:`rotation_trick`.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords.
    cotangent : array_like, shape z.shape
        Upstream gradient ``g``.

    Returns
    -------
    dz : ndarray of float64, shape z.shape
        ``s R^T g = s (g - 2 (w . g) w + 2 (ch . g) zh)``.
    dcodebook : ndarray of float64, shape (K, D)
        Zeros: no gradient reaches the codebook through the values.

    Raises
    ------
    TypeError
        If an array argument is not real floating.
    ValueError
        On a shape mismatch or non-finite input.

    Notes
    -----
    ``R = I - 2 w w^T + 2 ch zh^T`` with ``zh``, ``ch``, ``w``, ``s`` as in
    :func:`rotation_trick`.
    """
    zf, cf = v.codebook_args(z, codebook)
    g = v.cotangent_arg(cotangent, zf.shape)
    zr, _, ck = _nearest_rows(zf, cf)
    zh, ch, w, s = _rotation(zr, ck)
    gr = as_rows(g)
    dz = s * (gr - 2 * _dot(w, gr) * w + 2 * _dot(ch, gr) * zh)
    return dz.reshape(zf.shape), np.zeros(cf.shape)
