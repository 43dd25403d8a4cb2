"""Code usage counters and perplexity."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from diveq.reference import _validate as v

__all__ = ["code_usage", "perplexity", "update_usage"]


def code_usage(indices: ArrayLike, num_codes: int) -> v.I64:
    """Number of entries of ``indices`` on each code; entries ``< 0`` (``-1``) are ignored.

    Parameters
    ----------
    indices : array_like of int, any shape
        Code indices in ``[-1, K)``; negative entries mark rows without a code.
    num_codes : int
        ``K >= 1``.

    Returns
    -------
    ndarray of int64, shape (K,)
        ``counts[k]`` = number of entries equal to ``k``.

    Raises
    ------
    TypeError
        If ``indices`` is not integer or ``num_codes`` is not an int.
    ValueError
        If ``num_codes < 1`` or an entry is ``>= K``.

    Examples
    --------
    >>> code_usage([[0, 2], [2, -1]], 3)
    array([1, 0, 2])
    """
    idx = v.indices(indices, num_codes).reshape(-1)
    k = int(num_codes)
    if np.any(idx >= k):
        raise ValueError(f"`indices` must be < num_codes = {k}; got max {idx.max()}")
    return np.bincount(idx[idx >= 0], minlength=k).astype(np.int64)


def perplexity(indices: ArrayLike, num_codes: int) -> v.F64:
    """Codebook perplexity ``exp(-sum_k p_k log(p_k + 1e-10))``.

    Parameters
    ----------
    indices : array_like of int, any shape
        Code indices; entries ``< 0`` are not rows of the distribution.
    num_codes : int
        ``K >= 1``.

    Returns
    -------
    ndarray of float64, shape ()
        ``K`` for uniform usage (up to the ``1e-10``), ``1`` for a single code, and ``1``
        when there is no valid row.

    Raises
    ------
    TypeError
        If ``indices`` is not integer or ``num_codes`` is not an int.
    ValueError
        If ``num_codes < 1`` or an entry is ``>= K``.

    Notes
    -----
    ``p_k`` is the share of the valid rows (index ``>= 0``) on code ``k``.

    Examples
    --------
    >>> perplexity([0, 0, 0], 4)
    array(1.)
    """
    counts = code_usage(indices, num_codes)
    total = counts.sum()
    if total == 0:
        return np.asarray(1.0)
    p = counts / total
    return np.asarray(np.exp(-np.sum(p * np.log(p + 1e-10))))


def update_usage(
    hits: ArrayLike, calls_used: ArrayLike, indices: ArrayLike, num_codes: int
) -> tuple[v.I64, v.I64]:
    """Add one call's assignments to the usage counters.

    Parameters
    ----------
    hits : array_like of int, shape (K,)
        Rows assigned to each code so far.
    calls_used : array_like of int, shape (K,)
        Calls in which each code was assigned at least once.
    indices : array_like of int, any shape
        This call's indices; entries ``< 0`` are ignored.
    num_codes : int
        ``K``.

    Returns
    -------
    hits : ndarray of int64, shape (K,)
        ``hits + counts``, with ``counts = code_usage(indices, num_codes)``.
    calls_used : ndarray of int64, shape (K,)
        ``calls_used + (counts > 0)``.

    Raises
    ------
    TypeError
        If an argument is not integer.
    ValueError
        On a shape mismatch, a negative counter or an index ``>= K``.
    """
    counts = code_usage(indices, num_codes)
    h = v.counters("hits", hits, counts.shape[0])
    c = v.counters("calls_used", calls_used, counts.shape[0])
    return h + counts, c + (counts > 0).astype(np.int64)
