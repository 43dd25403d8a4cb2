"""Training state as pure functions: code usage, perplexity, dead-code replacement and the
SF warm-up initialisation. The layers of every backend call these."""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from diveq._checks import check_indices
from diveq.core._common import Array, cast, default_chunk, matmul, namespace

__all__ = [
    "accumulate_usage",
    "code_usage",
    "dead_codes",
    "perplexity",
    "replace_dead_codes",
    "update_usage",
    "warmup_codebook",
]


def code_usage(indices: Array, num_codes: int, *, chunk_size: int | None = None) -> Array:
    """Rows per code ``(K,)``; negative indices (``-1``: masked or skipped) are ignored."""
    check_indices(indices, num_codes)
    xp = namespace(indices)
    flat = xp.reshape(indices, (-1,))
    dev = device(flat)
    codes = xp.arange(num_codes, dtype=flat.dtype, device=dev)
    step = default_chunk(num_codes, chunk_size)
    counts = xp.zeros((num_codes,), dtype=_default_int(xp), device=dev)
    n = flat.shape[0]
    for start in range(0, n, step):
        hit = flat[start : min(start + step, n), None] == codes[None, :]
        counts = counts + xp.sum(cast(xp, hit, counts.dtype), axis=0)
    return counts


def _default_int(xp: Any) -> Any:
    """The namespace's default integer dtype (int64; JAX without x64: int32)."""
    return xp.asarray(0).dtype


def _default_float(xp: Any) -> Any:
    """The namespace's default floating dtype (float32 for torch and JAX, float64 for NumPy)."""
    return xp.asarray(0.0).dtype


def perplexity(indices: Array, num_codes: int) -> Array:
    """``exp(-sum_k p_k log(p_k + 1e-10))`` over the valid rows, as a 0-d array."""
    return perplexity_from_counts(code_usage(indices, num_codes))


def perplexity_from_counts(counts: Array) -> Array:
    """Perplexity of rows-per-code ``counts`` ``(..., K)`` over the last axis (for callers
    that combine the counts first, e.g. summed over data-parallel workers)."""
    xp = namespace(counts)
    c = cast(xp, counts, _default_float(xp))
    p = c / xp.clip(xp.sum(c, axis=-1, keepdims=True), 1.0, None)
    return xp.exp(-xp.sum(p * xp.log(p + 1e-10), axis=-1))


def update_usage(
    hits: Array, calls_used: Array, indices: Array, num_codes: int
) -> tuple[Array, Array]:
    """Add one train-mode call: ``hits += rows per code``, ``calls_used += (rows > 0)``."""
    counts = code_usage(indices, num_codes)
    return accumulate_usage(hits, calls_used, counts)


def accumulate_usage(hits: Array, calls_used: Array, counts: Array) -> tuple[Array, Array]:
    """Add one call's rows per code ``counts``: ``hits += counts``, ``calls_used += counts > 0``.

    The second half of :func:`update_usage`, for callers that combine the counts first (e.g.
    summed over data-parallel workers, so ``calls_used`` counts a code used on any worker).
    """
    xp = namespace(hits, calls_used, counts)
    return hits + cast(xp, counts, hits.dtype), calls_used + cast(xp, counts > 0, calls_used.dtype)


def dead_codes(calls_used: Array, *, replacement_iters: int, discard_threshold: float) -> Array:
    """``calls_used / replacement_iters < discard_threshold`` per code."""
    xp = namespace(calls_used)
    return cast(xp, calls_used, _default_float(xp)) / replacement_iters < discard_threshold


def replace_dead_codes(
    codebook: Array,
    hits: Array,
    calls_used: Array,
    *,
    replacement_iters: int,
    discard_threshold: float,
    perturb_eps: float,
    uniform: Array,
    noise: Array,
) -> tuple[Array, Array]:
    """Replace every dead code by a live donor drawn with probability proportional to ``hits``.

    ``uniform`` ``(K,)`` in ``[0, 1)`` picks each dead code's donor by inverse-CDF sampling,
    ``noise`` ``(K, D)`` perturbs it by ``perturb_eps``. Returns the new codebook and the mask of
    replaced codes; nothing changes when no code is dead or none is alive. Written with
    ``where`` only, so it runs unchanged under ``jax.jit`` and on any device.
    """
    xp = namespace(codebook, hits, calls_used, uniform, noise)
    dead = dead_codes(
        calls_used, replacement_iters=replacement_iters, discard_threshold=discard_threshold
    )
    dt = _default_float(xp)
    live = cast(xp, hits, dt)
    weight = xp.where(dead, xp.zeros_like(live), live)
    cdf = xp.cumulative_sum(weight)
    total = cdf[-1]
    donor = xp.searchsorted(cdf, cast(xp, uniform, dt) * total, side="right")
    donor = xp.clip(donor, 0, codebook.shape[0] - 1)
    fresh = xp.take(codebook, donor, axis=0) + perturb_eps * cast(xp, noise, codebook.dtype)
    replaced = dead & (total > 0)
    return xp.where(replaced[:, None], fresh, codebook), replaced


def warmup_codebook(rows: Array, num_codes: int, *, valid: Array | None = None) -> Array:
    """Codeword ``j`` = mean of the valid rows ``[j h, (j+1) h)``, ``h = floor(R_valid / K)``.

    With ``valid=None`` the row count is known and too few rows raise ``ValueError``. With a
    mask the count is data: the result is meaningful only when ``sum(valid) >= num_codes``,
    which the caller checks (a jitted layer keeps its codebook otherwise).
    """
    xp = namespace(rows, valid)
    r, d = int(rows.shape[0]), int(rows.shape[1])
    if valid is None:
        if r < num_codes:
            raise ValueError(
                f"SF warm-up needs at least K = {num_codes} rows to initialise the codebook; "
                f"got rows.shape = {(r, d)}"
            )
        h = r // num_codes
        return xp.mean(xp.reshape(rows[: h * num_codes, ...], (num_codes, h, d)), axis=1)
    # Valid rows first, in call order; then segment sums by a one-hot matmul over row tiles.
    order = xp.argsort(cast(xp, ~valid, xp.int8), stable=True)
    count = xp.sum(cast(xp, valid, _default_int(xp)))
    h = xp.clip(count // num_codes, 1, None)
    dev = device(rows)
    codes = xp.arange(num_codes, dtype=count.dtype, device=dev)
    sums = xp.zeros((num_codes, d), dtype=rows.dtype, device=dev)
    step = default_chunk(num_codes, None)
    for start in range(0, r, step):
        idx = order[start : min(start + step, r)]
        pos = xp.arange(start, start + idx.shape[0], dtype=count.dtype, device=dev)
        member = cast(xp, (pos // h)[None, :] == codes[:, None], rows.dtype)
        sums = sums + matmul(xp, member, xp.take(rows, idx, axis=0))
    return sums / cast(xp, h, rows.dtype)
