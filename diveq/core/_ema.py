"""The EMA codebook as pure functions: its state, a call's per-code statistics and the update.

Semantics and formulas: :func:`diveq.reference.ema_update`. The statistics and the update are
separate steps so that data-parallel layers can sum the statistics over workers in between.
"""

from __future__ import annotations

from array_api_compat import device

from diveq._checks import check_indices, check_latents
from diveq._ema_spec import check_ema_options, check_ema_update
from diveq._types import EMAState
from diveq.core._common import Array, cast, default_chunk, matmul, namespace, rows, work_dtype

__all__ = ["ema_init", "ema_statistics", "ema_update"]


def ema_init(codebook: Array) -> EMAState:
    """``EMAState(codebook, ones(K), copy of codebook)``; see :func:`diveq.reference.ema_init`."""
    if getattr(codebook, "ndim", None) != 2:
        raise ValueError(
            f"`codebook` must have shape (K, D); got shape {getattr(codebook, 'shape', None)}"
        )
    check_latents(codebook, "codebook")
    xp = namespace(codebook)
    ones = xp.ones((codebook.shape[0],), dtype=codebook.dtype, device=device(codebook))
    return EMAState(codebook, ones, xp.asarray(codebook, copy=True))


def ema_statistics(z: Array, indices: Array, num_codes: int) -> tuple[Array, Array]:
    """Rows per code ``(K,)`` and their sums ``(K, D)`` in the work dtype of ``z``; rows with a
    negative index are left out (whatever they hold). Semantics:
    :func:`diveq.reference.ema_statistics`."""
    check_latents(z)
    check_indices(indices, num_codes, z=z)
    xp = namespace(z, indices)
    dt = work_dtype(xp, z)
    zr, idx = cast(xp, rows(xp, z), dt), xp.reshape(indices, (-1,))
    zr = xp.where((idx >= 0)[:, None], zr, xp.zeros_like(zr))  # a NaN row times 0 is NaN
    dev = device(zr)
    codes = xp.arange(num_codes, dtype=idx.dtype, device=dev)
    counts = xp.zeros((num_codes,), dtype=dt, device=dev)
    sums = xp.zeros((num_codes, zr.shape[1]), dtype=dt, device=dev)
    n, step = zr.shape[0], default_chunk(num_codes, None, zr)
    for start in range(0, n, step):
        stop = min(start + step, n)
        member = cast(xp, codes[:, None] == idx[None, start:stop], dt)  # (K, rows)
        counts = counts + xp.sum(member, axis=1)
        sums = sums + matmul(xp, member, zr[start:stop, ...])
    return counts, sums


def ema_update(
    state: EMAState, counts: Array, sums: Array, *, decay: float = 0.99, eps: float = 1e-5
) -> EMAState:
    """One EMA step (moving averages, Laplace smoothing, ``c = m / N~``), in the state's dtype;
    codes whose smoothed size is 0 keep their codeword. Formulas:
    :func:`diveq.reference.ema_update`."""
    check_ema_update(state, counts, sums)
    check_ema_options(decay, eps)
    codebook, size, embed = state
    xp = namespace(codebook, size, embed, counts, sums)
    size = decay * size + (1 - decay) * cast(xp, counts, size.dtype)
    embed = decay * embed + (1 - decay) * cast(xp, sums, embed.dtype)
    total = xp.sum(size)
    denom = total + codebook.shape[0] * eps
    smoothed = (size + eps) / xp.where(denom > 0, denom, xp.ones_like(denom)) * total
    ok = smoothed > 0
    safe = xp.where(ok, smoothed, xp.ones_like(smoothed))
    new = xp.where(ok[:, None], embed / safe[:, None], cast(xp, codebook, embed.dtype))
    return EMAState(cast(xp, new, codebook.dtype), size, embed)
