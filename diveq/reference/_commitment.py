"""The VQ-VAE codebook + commitment loss and its VJP."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from diveq.reference import _validate as v
from diveq.reference._geometry import as_rows, scatter_rows

__all__ = ["commitment_loss", "commitment_loss_vjp"]


def _args(z: Any, codebook: Any, indices: Any, beta: Any) -> tuple[v.F64, v.F64, v.I64, float]:
    zf, cf = v.codebook_args(z, codebook)
    idx = v.indices(indices, z=zf)
    if np.any((idx < 0) | (idx >= cf.shape[0])):
        raise ValueError(
            f"`indices` must lie in [0, K) with K = {cf.shape[0]}; "
            f"got values in [{idx.min()}, {idx.max()}]"
        )
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)):
        raise TypeError(f"`beta` must be a real number; got {beta!r}")
    if not math.isfinite(beta):
        raise ValueError(f"`beta` must be finite; got {beta!r}")
    return zf, cf, idx.reshape(-1), float(beta)


def commitment_loss(
    z: ArrayLike, codebook: ArrayLike, indices: ArrayLike, *, beta: float = 0.25
) -> v.F64:
    """VQ-VAE codebook + commitment loss, for the straight-through and rotation-trick baselines.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords.
    indices : array_like of int, shape z.shape[:-1]
        The selected codewords ``k``, in ``[0, K)`` (e.g. ``ste(z, codebook).indices``).
    beta : float, default 0.25
        Weight of the commitment term.

    Returns
    -------
    ndarray of float64, shape ()
        ``mean((sg z - c_k)^2) + beta mean((z - sg c_k)^2)``; ``0`` when ``z`` has no rows.

    Raises
    ------
    TypeError
        If ``z`` or ``codebook`` is not real floating, or ``indices`` is not integer.
    ValueError
        On a shape mismatch, an index out of range, non-finite input or ``beta``.

    Notes
    -----
    The means run over all ``N D`` entries. In value the loss is
    ``(1 + beta) mean((z - c_k)^2)``; the stop-gradients only decide who receives which term.

    Examples
    --------
    >>> commitment_loss([[0.5, 0.0]], [[0.0, 0.0]], [0], beta=0.25)
    array(0.15625)
    """
    zf, cf, idx, b = _args(z, codebook, indices, beta)
    diff = as_rows(zf) - cf[idx]
    count = diff.size
    if count == 0:
        return np.asarray(0.0)
    mse = np.sum(diff * diff) / count
    return np.asarray(mse + b * mse)


def commitment_loss_vjp(
    z: ArrayLike,
    codebook: ArrayLike,
    indices: ArrayLike,
    cotangent: ArrayLike,
    *,
    beta: float = 0.25,
) -> tuple[v.F64, v.F64]:
    """Vector-Jacobian product of :func:`commitment_loss`.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords.
    indices : array_like of int, shape z.shape[:-1]
        The selected codewords ``k``.
    cotangent : array_like, shape ()
        Upstream gradient ``g`` of the scalar loss.
    beta : float, default 0.25
        Weight of the commitment term.

    Returns
    -------
    dz : ndarray of float64, shape z.shape
        ``g beta 2 (z - c_k) / (N D)`` (the commitment term).
    dcodebook : ndarray of float64, shape (K, D)
        Row ``j`` sums ``g 2 (c_j - z) / (N D)`` over the rows with ``k = j`` (the codebook
        term).

    Raises
    ------
    TypeError
        If an array argument has the wrong dtype.
    ValueError
        On a shape mismatch, an index out of range, non-finite input or ``beta``.
    """
    zf, cf, idx, b = _args(z, codebook, indices, beta)
    g = float(v.cotangent_arg(cotangent, ()))
    diff = as_rows(zf) - cf[idx]
    count = max(diff.size, 1)
    dz = g * b * 2 * diff / count
    dcodebook = scatter_rows(cf.shape[0], idx, -g * 2 * diff / count)
    return dz.reshape(zf.shape), dcodebook
