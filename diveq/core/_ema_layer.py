"""One call of an EMA-codebook layer, written once for every backend: straight-through values,
the commitment loss, and the call's codebook statistics.

A backend keeps its storage and collectives: it sums the returned ``counts`` and ``sums`` over
its data-parallel workers and then applies :func:`diveq.core.ema_update` (train mode only).
Semantics: :class:`diveq.reference.EMAVQ`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from diveq._ema_spec import EMASpec
from diveq.core._baselines import ste
from diveq.core._common import Array, StopGradient, cast, work_dtype
from diveq.core._ema import ema_statistics
from diveq.core._layer_rows import finish

__all__ = ["EMACall", "ema_call", "ema_output"]


class EMACall(NamedTuple):
    """A call's per-row results and statistics (rows ``(N, D)``, features last)."""

    values: Array  # (N, D): z + sg(c_k - z) on valid rows, z elsewhere
    indices: Array  # (N,): -1 on invalid rows
    loss: Array  # (): beta * mean over the valid entries of (z - sg c_k)^2
    counts: Array  # (K,): valid rows per code (this worker's)
    sums: Array  # (K, D): their sums


def ema_call(
    spec: EMASpec,
    xp: Any,
    codebook: Array,
    rows: Array,
    valid: Array,
    *,
    stop_gradient: StopGradient,
    chunk_size: int | None = None,
) -> EMACall:
    """Quantise the valid rows with the straight-through estimator; the statistics are
    computed from the detached rows (index ``-1`` elsewhere)."""
    sg = stop_gradient
    safe = xp.where(valid[:, None], rows, xp.zeros_like(rows))
    out = ste(safe, codebook, stop_gradient=sg, chunk_size=chunk_size)
    idx = xp.where(valid, out.indices, xp.full_like(out.indices, -1))
    values = xp.where(valid[:, None], out.values, rows)
    dt = work_dtype(xp, rows, codebook)
    picked = xp.take(cast(xp, sg(codebook), dt), xp.clip(idx, 0, None), axis=0)
    diff = xp.where(valid[:, None], cast(xp, safe, dt) - picked, xp.zeros_like(picked))
    entries = xp.sum(cast(xp, valid, dt)) * spec.dim
    loss = spec.beta * xp.sum(diff * diff) / xp.clip(entries, 1.0, None)
    counts, sums = ema_statistics(sg(safe), idx, spec.num_codes)
    return EMACall(values, idx, loss, counts, sums)


def ema_output(
    spec: EMASpec, xp: Any, rows: Array, valid: Array, lead: tuple[int, ...], call: EMACall
) -> tuple[Array, Array]:
    """``(values, indices)`` in the shape of the call's ``z`` (features on ``feature_axis``)."""
    weights = xp.zeros((rows.shape[0], 1), dtype=rows.dtype)
    values, indices, _ = finish(
        spec.rows, xp, rows, valid, lead, call.values, call.indices[:, None], weights
    )
    return values, indices
