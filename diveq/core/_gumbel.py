"""The Gumbel-softmax quantiser, given explicit Gumbel draws."""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from diveq._checks import check_codebook, check_draw, check_hard, check_tau
from diveq._types import Quantized
from diveq.core._common import (
    Array,
    StopGradient,
    cast,
    identity,
    matmul,
    namespace,
    rows,
    unrows,
    work_dtype,
)
from diveq.core._search import overflow_scale

__all__ = ["gumbel_from_uniform", "gumbel_softmax", "gumbel_scores"]


def gumbel_from_uniform(xp: Any, u: Array) -> Array:
    """Standard Gumbel draws ``-log(-log u)`` from uniform ``u`` in ``[0, 1)``; ``u`` is
    clipped to the smallest normal number first, so every draw is finite."""
    tiny = xp.finfo(u.dtype).smallest_normal
    return -xp.log(-xp.log(xp.clip(u, tiny, None)))


def gumbel_scores(xp: Any, zr: Array, cb: Array, g: Array, tau: Any, sg: StopGradient) -> Array:
    """``(l + g) / tau`` minus its row maximum, ``l_k = -||z - c_k||^2`` up to a per-row
    constant (which the softmax and the argmax ignore), for rows ``zr`` ``(N, D)``.

    The logits come from the ``z C^T`` product with every term scaled by ``1 / s^2``
    (:func:`~diveq.core._search.overflow_scale`, a power of two), shifted to a row maximum of
    0 and only then scaled back: differences too large for the dtype become ``-inf`` (weight 0)
    instead of ``inf - inf = NaN``, so a large ``||z||`` or ``||c||`` never gives NaN.
    """
    inv = overflow_scale(xp, sg(cb))
    s = 1.0 / inv
    q = cb * inv
    t = 2.0 * matmul(xp, zr * inv, xp.permute_dims(q, (1, 0))) - xp.sum(q * q, axis=-1)
    t = t - sg(xp.max(t, axis=-1, keepdims=True))
    # Floor the logits at -max/4 * min(tau, 1), far below any weight that survives `exp`, so
    # neither `t s^2` nor the division by `tau` overflows (NumPy would warn about it).
    if not isinstance(tau, (int, float)):  # an array, maybe of another library (NumPy)
        tau = xp.asarray(tau, dtype=t.dtype, device=device(t))
    cap = xp.finfo(t.dtype).max / 4
    cap = cap * (min(tau, 1.0) if isinstance(tau, (int, float)) else xp.clip(tau, None, 1.0))
    m = xp.clip(inv, None, 1.0)
    t = xp.maximum(t, -(cap * m) * m)
    a = ((t * s) * s + g) / tau
    return a - sg(xp.max(a, axis=-1, keepdims=True))


def gumbel_softmax(
    z: Array,
    codebook: Array,
    *,
    tau: Any = 1.0,
    hard: bool = False,
    gumbel: Array | None = None,
    stop_gradient: StopGradient = identity,
) -> Quantized:
    """Gumbel-softmax with explicit draws ``gumbel`` (``z.shape[:-1] + (K,)``).

    Semantics: :func:`diveq.reference.gumbel_softmax`.
    """
    check_codebook(z, codebook)
    check_tau(tau)
    check_hard(hard)
    k_codes = int(codebook.shape[0])
    shape = (*z.shape[:-1], k_codes)
    if gumbel is None:
        raise ValueError(
            f"`gumbel` of shape {tuple(shape)} is required: diveq.core takes explicit draws "
            "(the backends sample them for you)"
        )
    check_draw("gumbel", gumbel, shape, z)
    sg = stop_gradient
    xp = namespace(z, codebook)
    dt = work_dtype(xp, z, codebook)
    zr, cb = cast(xp, rows(xp, z), dt), cast(xp, codebook, dt)
    g = cast(xp, xp.reshape(gumbel, (-1, k_codes)), dt)
    a = gumbel_scores(xp, zr, cb, g, tau, sg)
    e = xp.exp(a)
    y = e / xp.sum(e, axis=-1, keepdims=True)
    k = xp.argmax(a, axis=-1)
    if hard:  # onehot(k) + y - sg(y), times C: c_k forward, the soft sample's gradient
        values = xp.take(cb, k, axis=0) + matmul(xp, y - sg(y), sg(cb))
    else:
        values = matmul(xp, y, cb)
    lead = z.shape[:-1]
    return Quantized(unrows(xp, cast(xp, values, z.dtype), lead), unrows(xp, k, lead))
