"""Dead-code detection and replacement, as pure functions.

A code is dead when it was used in too few calls of the replacement window; each dead code is
replaced by a live code drawn with probability proportional to its ``hits``, plus a small
perturbation. The draws are explicit arguments.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from diveq.reference import _validate as v

__all__ = ["dead_codes", "replace_dead_codes"]


def dead_codes(
    calls_used: ArrayLike, *, replacement_iters: int, discard_threshold: float
) -> np.ndarray:
    """Which codes are dead: ``calls_used / replacement_iters < discard_threshold``.

    Parameters
    ----------
    calls_used : array_like of int, shape (K,)
        Calls in the window in which each code was used.
    replacement_iters : int
        Length of the window, ``>= 1``.
    discard_threshold : float
        Minimum share of calls in which a live code is used.

    Returns
    -------
    ndarray of bool, shape (K,)
        ``True`` for dead codes.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``calls_used`` is not 1-d and ``>= 0``, ``replacement_iters < 1`` or
        ``discard_threshold`` is not finite.

    Examples
    --------
    >>> dead_codes([0, 3, 1], replacement_iters=100, discard_threshold=0.01)
    array([ True, False, False])
    """
    c = v.counters("calls_used", calls_used)
    iters = v.positive_int("replacement_iters", replacement_iters)
    threshold = v.real_number("discard_threshold", discard_threshold)
    return c / iters < threshold


def replace_dead_codes(
    codebook: ArrayLike,
    hits: ArrayLike,
    calls_used: ArrayLike,
    *,
    replacement_iters: int,
    discard_threshold: float,
    perturb_eps: float,
    uniform: ArrayLike,
    noise: ArrayLike,
) -> tuple[v.F64, np.ndarray]:
    """Replace every dead code by a live code drawn with probability ``∝ hits``, perturbed.

    Parameters
    ----------
    codebook : array_like, shape (K, D)
        Current codewords, real floating dtype.
    hits : array_like of int, shape (K,)
        Rows assigned to each code in the window.
    calls_used : array_like of int, shape (K,)
        Calls in the window in which each code was used.
    replacement_iters : int
        Length of the window, ``>= 1``.
    discard_threshold : float
        See :func:`dead_codes`.
    perturb_eps : float
        Scale ``>= 0`` of the perturbation.
    uniform : array_like, shape (K,)
        Uniform draws in ``[0, 1)``, one per code (used for the dead ones).
    noise : array_like, shape (K, D)
        Standard-normal draws, one row per code (used for the dead ones).

    Returns
    -------
    new_codebook : ndarray of float64, shape (K, D)
        A new array; live rows unchanged.
    replaced : ndarray of bool, shape (K,)
        The rows that were replaced.

    Raises
    ------
    TypeError
        If an argument has the wrong dtype or type.
    ValueError
        On a shape mismatch, non-finite input, negative counters or ``uniform`` outside
        ``[0, 1)``.

    Notes
    -----
    ``w = hits * alive``. If no code is dead or ``sum(w) == 0`` (e.g. all dead), nothing
    changes. Otherwise dead code ``j`` takes donor ``d``, the smallest index with
    ``cumsum(w)[d] > uniform[j] * sum(w)`` (inverse-CDF sampling, always a live code with
    ``hits > 0``), and becomes ``codebook[d] + perturb_eps * noise[j]``.
    """
    cb = v.finite("codebook", v.floating_matrix("codebook", codebook))
    num = cb.shape[0]
    h = v.counters("hits", hits, num)
    dead = dead_codes(
        v.counters("calls_used", calls_used, num),
        replacement_iters=replacement_iters,
        discard_threshold=discard_threshold,
    )
    eps = v.real_number("perturb_eps", perturb_eps, nonnegative=True)
    u = v.required_draw("uniform", uniform, (num,), why="by replace_dead_codes", unit_interval=True)
    xi = v.required_draw("noise", noise, cb.shape, why="by replace_dead_codes")
    w = (h * ~dead).astype(np.float64)
    total = w.sum()
    new = cb.copy()
    if not dead.any() or total == 0:
        return new, np.zeros(num, dtype=bool)
    cdf = np.cumsum(w)
    last_live = int(np.flatnonzero(w > 0)[-1])
    for j in np.flatnonzero(dead):
        # smallest d with cdf[d] > target; the min guards against u[j] * total rounding up
        donor = int(np.searchsorted(cdf, u[j] * total, side="right"))
        donor = min(donor, last_live)
        new[j] = cb[donor] + eps * xi[j]
    return new, dead.copy()
