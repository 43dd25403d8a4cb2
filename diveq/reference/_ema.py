"""The EMA codebook (van den Oord et al. 2017, appendix A.1; Razavi et al. 2019): its state, the
per-code statistics of one call, and the moving-average update."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from diveq import _checks
from diveq._ema_spec import check_ema_options, check_ema_update
from diveq._types import EMAState
from diveq.reference import _validate as v

__all__ = ["ema_init", "ema_statistics", "ema_update"]


def ema_init(codebook: ArrayLike) -> EMAState:
    """The EMA state of a fresh codebook: every code as if hit once, at its own position.

    Parameters
    ----------
    codebook : array_like, shape (K, D)
        The initial codewords (real floating, finite; copied).

    Returns
    -------
    EMAState
        ``codebook`` (float64), ``cluster_size = 1`` and ``embed_sum = codebook``.

    Raises
    ------
    TypeError
        If ``codebook`` is not real floating.
    ValueError
        If ``codebook`` is not ``(K, D)`` or not finite.

    Notes
    -----
    With ``N = 1`` and ``m = c`` the state is a fixed point of the smoothing (``m / N~ = c``
    for ``eps = 0``) and a code no row ever hits decays smoothly: after ``t`` updates
    ``m_k = decay^t c_k`` and ``N_k = decay^t``, so ``c_k`` stays put until ``decay^t`` nears
    ``eps`` and then shrinks towards 0, never NaN or infinite. vector-quantize-pytorch starts
    the same way. A zero ``cluster_size`` with ``embed_sum = codebook`` would instead divide an
    unused code's sum by about ``eps`` at the first update (magnifying it ``1 / eps`` times),
    and Sonnet's zero-debiased averages move every unused code to 0 at the first update.

    Examples
    --------
    >>> ema_init([[0.0], [1.0]]).cluster_size
    array([1., 1.])
    """
    c = np.asarray(codebook)
    if c.ndim != 2:
        raise ValueError(f"`codebook` must have shape (K, D); got shape {c.shape}")
    arr = v.finite("codebook", v.floating_matrix("codebook", c))
    return EMAState(arr.copy(), np.ones(arr.shape[0]), arr.copy())


def ema_statistics(z: ArrayLike, indices: ArrayLike, num_codes: int) -> tuple[v.F64, v.F64]:
    """Per-code row counts ``n_k`` and row sums ``s_k`` of one call (rows with index -1 left out).

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating; rows with index ``-1`` may hold anything (even NaN).
    indices : array_like of int, shape z.shape[:-1]
        The code of each row in ``[-1, K)``; ``-1`` marks rows without a code.
    num_codes : int
        ``K >= 1``.

    Returns
    -------
    counts : ndarray of float64, shape (K,)
        ``n_k``: the number of rows with index ``k``.
    sums : ndarray of float64, shape (K, D)
        ``s_k``: the sum of those rows.

    Raises
    ------
    TypeError
        If ``z`` is not real floating, ``indices`` not integer or ``num_codes`` not an int.
    ValueError
        On a shape mismatch, an index outside ``[-1, K)`` or a non-finite row with a code.

    Notes
    -----
    In data-parallel training ``counts`` and ``sums`` are summed over the workers before
    :func:`ema_update`, so that every worker writes the same codebook.

    Examples
    --------
    >>> counts, sums = ema_statistics([[1.0], [3.0], [5.0]], [1, 1, -1], 2)
    >>> counts, sums
    (array([0., 2.]), array([[0.], [4.]]))
    """
    za = np.asarray(z)
    _checks.check_latents(za)
    idx = v.indices(indices, num_codes, z=za)
    k = int(num_codes)
    if np.any((idx < -1) | (idx >= k)):
        raise ValueError(
            f"`indices` must lie in [-1, K) with K = {k}; got values in [{idx.min()}, {idx.max()}]"
        )
    d = za.shape[-1]
    rows, codes = za.reshape(-1, d), idx.reshape(-1)
    counts, sums = np.zeros(k), np.zeros((k, d))
    for row, code in zip(rows, codes, strict=True):
        if code < 0:
            continue
        counts[code] += 1.0
        sums[code] += v.finite("z", row)
    return counts, sums


def ema_update(
    state: EMAState,
    counts: ArrayLike,
    sums: ArrayLike,
    *,
    decay: float = 0.99,
    eps: float = 1e-5,
) -> EMAState:
    """One EMA step of the codebook from a call's statistics.

    Parameters
    ----------
    state : EMAState
        ``(codebook (K, D), cluster_size N (K,), embed_sum m (K, D))`` before the step.
    counts : array_like, shape (K,)
        ``n``: rows per code of the call (see :func:`ema_statistics`), summed over workers.
    sums : array_like, shape (K, D)
        ``s``: the sum of those rows per code.
    decay : float, default 0.99
        ``d`` in ``[0, 1]``.
    eps : float, default 1e-5
        Laplace smoothing ``>= 0`` of the cluster sizes.

    Returns
    -------
    EMAState
        The new state, float64::

            N_k  <- d N_k + (1 - d) n_k
            m_k  <- d m_k + (1 - d) s_k
            N~_k  = (N_k + eps) / (sum_j N_j + K eps) * sum_j N_j
            c_k   = m_k / N~_k          (c_k unchanged where N~_k = 0)

    Raises
    ------
    TypeError
        If an array is not real floating or ``decay`` / ``eps`` not a real number.
    ValueError
        On a shape mismatch, non-finite values, a negative count, ``decay`` outside
        ``[0, 1]`` or a negative ``eps``.

    Notes
    -----
    The smoothing keeps ``sum_k N~_k = sum_k N_k`` and lifts every ``N~_k`` above 0 whenever
    some code has mass, so a code no row hits never divides by 0. ``N~_k = 0`` happens only when
    the whole ``cluster_size`` is 0 (or ``eps = 0`` and ``N_k = 0``); that code keeps its
    codeword instead of becoming NaN.

    Examples
    --------
    >>> state = ema_init([[0.0], [1.0]])
    >>> ema_update(state, [3.0, 0.0], [[3.0], [0.0]], decay=0.5, eps=0.0).codebook
    array([[0.75], [1.  ]])
    """
    if isinstance(state, tuple):
        state = EMAState(*(np.asarray(a) for a in state)) if len(state) == 3 else state
    check_ema_update(state, np.asarray(counts), np.asarray(sums))
    arrays = [np.asarray(a) for a in (*state, counts, sums)]
    check_ema_options(decay, eps)
    names = ("state.codebook", "state.cluster_size", "state.embed_sum", "counts", "sums")
    codebook, size, embed, n, s = (v.finite(a, b) for a, b in zip(names, arrays, strict=True))
    for name, x in (("state.cluster_size", size), ("counts", n)):
        if np.any(x < 0):
            raise ValueError(f"`{name}` must be >= 0; got min {x.min()}")
    k = codebook.shape[0]
    size = decay * size + (1 - decay) * n
    embed = decay * embed + (1 - decay) * s
    total = float(np.sum(size))
    new = codebook.copy()
    for j in range(k):
        smoothed = (size[j] + eps) / (total + k * eps) * total if total > 0 else 0.0
        if smoothed > 0:
            new[j] = embed[j] / smoothed
    return EMAState(new, size, embed)
