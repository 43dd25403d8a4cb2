"""The Gumbel-softmax quantiser (Jang et al. 2017), a baseline of the DiVeQ paper."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from diveq._checks import check_hard
from diveq._types import Quantized
from diveq.reference import _validate as v
from diveq.reference._geometry import as_rows, sq_dists

__all__ = ["gumbel_softmax", "gumbel_softmax_vjp"]


def _sample(zf: v.F64, cf: v.F64, g: v.F64, tau: float) -> tuple[v.F64, v.I64]:
    """The soft sample ``y = softmax((l + g) / tau)`` ``(N, K)`` and ``k = argmax(l + g)``."""
    scores = -sq_dists(as_rows(zf), cf) + g.reshape(-1, cf.shape[0])
    a = scores / tau
    e = np.exp(a - a.max(axis=1, keepdims=True, initial=-np.inf))
    y = e / e.sum(axis=1, keepdims=True)
    return y, np.argmax(scores, axis=1).astype(np.int64)


def _args(z: ArrayLike, codebook: ArrayLike, tau: float, hard: bool) -> tuple[v.F64, v.F64, float]:
    zf, cf = v.codebook_args(z, codebook)
    check_hard(hard)
    return zf, cf, v.tau_value(tau)


def gumbel_softmax(
    z: ArrayLike,
    codebook: ArrayLike,
    *,
    tau: float = 1.0,
    hard: bool = False,
    gumbel: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
) -> Quantized:
    """Gumbel-softmax quantiser: a relaxed sample of the codeword, logits ``-||z - c_k||^2``.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords, ``K >= 1``.
    tau : float, default 1.0
        Temperature ``> 0``; the soft sample tends to the one-hot ``k`` as ``tau -> 0``.
    hard : bool, default False
        Straight-through: the value is the codeword ``c_k`` itself, the gradient that of the
        soft sample (see :func:`gumbel_softmax_vjp`).
    gumbel : array_like, shape z.shape[:-1] + (K,), optional
        Standard Gumbel draws ``g = -log(-log U)``; sampled from ``rng`` if not given.
    rng : numpy.random.Generator, optional
        Source of the missing draws (``np.random.default_rng(rng)``).

    Returns
    -------
    Quantized
        ``values`` (float64, shape ``z.shape``) and ``indices = k`` (int64).

    Raises
    ------
    TypeError
        If an array argument is not real floating, ``tau`` is not a real number or ``hard``
        is not a bool.
    ValueError
        On a shape mismatch, non-finite input, or ``tau`` not finite and ``> 0``.

    See Also
    --------
    gumbel_softmax_vjp : The gradient of this estimator.
    quantize : The hard inference path: ``argmax_k l_k`` is the nearest codeword.

    Notes
    -----
    With logits ``l_k = -||z - c_k||^2`` and draws ``g_k``:

    - soft sample ``y = softmax((l + g) / tau)`` (computed max-subtracted);
    - ``hard=False``: ``values = y @ C``;
    - ``hard=True``: ``values = c_k`` (the straight-through ``onehot(k) + y - sg(y)`` times
      ``C``);
    - ``indices = k = argmax_j (l_j + g_j)``, a sample of ``softmax(l)``; without the draws,
      ``argmax_j l_j`` is :func:`nearest` (the first index on ties), the inference path.

    Examples
    --------
    >>> gumbel_softmax([[0.25]], [[0.0], [1.0]], hard=True, gumbel=[[0.0, 0.0]])
    Quantized(values=array([[0.]]), indices=array([0]))
    """
    zf, cf, t = _args(z, codebook, tau, hard)
    shape = (*zf.shape[:-1], cf.shape[0])
    g = v.Draws(rng).gumbel(v.optional_draw("gumbel", gumbel, shape), shape)
    y, k = _sample(zf, cf, g, t)
    values = cf[k] if hard else y @ cf
    return Quantized(values.reshape(zf.shape), k.reshape(zf.shape[:-1]))


def gumbel_softmax_vjp(
    z: ArrayLike,
    codebook: ArrayLike,
    cotangent: ArrayLike,
    *,
    tau: float = 1.0,
    hard: bool = False,
    gumbel: ArrayLike | None = None,
) -> tuple[v.F64, v.F64]:
    """Vector-Jacobian product of :func:`gumbel_softmax`.

    Parameters
    ----------
    z : array_like, shape (..., D)
        Latents, real floating dtype.
    codebook : array_like, shape (K, D)
        Codewords.
    cotangent : array_like, shape z.shape
        Upstream gradient ``g`` (here ``G``, to keep ``g`` for the draws).
    tau : float, default 1.0
        Temperature of the forward pass.
    hard : bool, default False
        Whether the forward pass was straight-through.
    gumbel : array_like, shape z.shape[:-1] + (K,)
        The draws of the forward pass (required).

    Returns
    -------
    dz : ndarray of float64, shape z.shape
        ``sum_k b_k 2 (c_k - z)``.
    dcodebook : ndarray of float64, shape (K, D)
        ``c_k`` receives ``sum_n b_nk 2 (z_n - c_k)`` plus the direct term ``sum_n w_nk G_n``
        with ``w = y`` (soft) or ``w = onehot(k)`` (hard).

    Raises
    ------
    TypeError
        If an array argument is not real floating or ``hard`` is not a bool.
    ValueError
        On a shape mismatch, a missing ``gumbel``, non-finite input or a bad ``tau``.

    Notes
    -----
    Per row, with ``q_k = G . c_k`` (the gradient reaching the sample, the same in both
    modes), ``b = y * (q - sum_j y_j q_j) / tau`` is the gradient w.r.t. the logits.
    """
    zf, cf, t = _args(z, codebook, tau, hard)
    cot = as_rows(v.cotangent_arg(cotangent, zf.shape))
    shape = (*zf.shape[:-1], cf.shape[0])
    g = v.required_draw("gumbel", gumbel, shape, why="by gumbel_softmax_vjp")
    zr = as_rows(zf)
    y, k = _sample(zf, cf, g, t)
    q = cot @ cf.T
    b = y * (q - np.sum(y * q, axis=1, keepdims=True)) / t
    dz = 2 * (b @ cf - b.sum(axis=1, keepdims=True) * zr)
    direct = np.eye(cf.shape[0])[k] if hard else y
    dc = 2 * (b.T @ zr - b.sum(axis=0)[:, None] * cf) + direct.T @ cot
    return dz.reshape(zf.shape), dc
