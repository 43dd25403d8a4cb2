"""The layers' training-state updates on stacked codebooks ``(M, K, D')``, traceable.

Thin JAX wrappers around the pure functions of :mod:`diveq.core` (``update_usage``,
``replace_dead_codes``, ``warmup_codebook``, ``perplexity``): they map them over the ``M``
codebooks with :func:`jax.vmap`, sum the per-call counts over devices when an ``axis_name`` is
given, and gate the window / warm-up events with :func:`jax.lax.cond` so that a whole training
step jits. A one-codebook layer is the case ``M = 1``.
"""

from __future__ import annotations

from collections.abc import Hashable

import jax
import jax.numpy as jnp
from jax import lax

from diveq.core import _state as core

__all__ = [
    "collect_rows",
    "count_usage",
    "gather_rows",
    "init_from_rows",
    "layer_perplexity",
    "maybe_replace",
]


def _by_book(indices: jax.Array) -> jax.Array:
    """``(N, M)`` indices as ``(M, N)``: one row of indices per codebook."""
    return jnp.transpose(indices)


def count_usage(
    hits: jax.Array,
    calls_used: jax.Array,
    indices: jax.Array,
    num_codes: int,
    axis_name: Hashable | None,
) -> tuple[jax.Array, jax.Array]:
    """Add one train-mode call to the ``(M, K)`` counters; ``-1`` indices are not counted.

    With ``axis_name`` the call's counts are summed over the devices first (SPEC section 7),
    so every device keeps the same counters.
    """
    return core.accumulate_usage(hits, calls_used, _counts(indices, num_codes, axis_name))


def _counts(indices: jax.Array, num_codes: int, axis_name: Hashable | None) -> jax.Array:
    """Rows per code ``(M, K)`` of this call, summed over the devices with ``axis_name``."""
    counts = jax.vmap(lambda i: core.code_usage(i, num_codes))(_by_book(indices))
    return counts if axis_name is None else lax.psum(counts, axis_name)


def layer_perplexity(indices: jax.Array, num_codes: int, axis_name: Hashable | None) -> jax.Array:
    """Perplexity of the call's valid rows, averaged over the codebooks (all devices' rows
    with ``axis_name``)."""
    return jnp.mean(core.perplexity_from_counts(_counts(indices, num_codes, axis_name)))


def maybe_replace(
    due: jax.Array,
    books: jax.Array,
    hits: jax.Array,
    calls_used: jax.Array,
    key: jax.Array,
    *,
    replacement_iters: int,
    discard_threshold: float,
    perturb_eps: float,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """At the end of a window (``due``): replace dead codes, then reset the counters.

    The donors and perturbations come from ``key``; pass the same key on every device so
    that all devices write the same rows.
    """

    def replace(operands: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        books, hits, used = operands
        k_uniform, k_noise = jax.random.split(key)
        uniform = jax.random.uniform(k_uniform, hits.shape, dtype=jnp.float32)
        noise = jax.random.normal(k_noise, books.shape, dtype=books.dtype)

        def one(c: jax.Array, h: jax.Array, used: jax.Array, u: jax.Array, xi: jax.Array):
            return core.replace_dead_codes(
                c,
                h,
                used,
                replacement_iters=replacement_iters,
                discard_threshold=discard_threshold,
                perturb_eps=perturb_eps,
                uniform=u,
                noise=xi,
            )[0]

        new = jax.vmap(one)(books, hits, used, uniform, noise)
        return new, jnp.zeros_like(hits), jnp.zeros_like(used)

    return lax.cond(due, replace, lambda operands: operands, (books, hits, calls_used))


def collect_rows(
    collects: jax.Array,
    slot: jax.Array,
    buffer: jax.Array,
    buffer_valid: jax.Array,
    latents: jax.Array,
    valid: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Write the call's latents ``(P, M, D')`` (padded to ``P = rows_per_call``) into slot
    ``slot`` of the buffer ``(R, M, D')`` if ``collects``.

    Invalid rows are stored as zeros and marked invalid, so they never reach the init.
    """
    return lax.cond(
        collects,
        lambda b: _write(b, slot, latents, valid),
        lambda b: b,
        (buffer, buffer_valid),
    )


def _write(
    operands: tuple[jax.Array, jax.Array], slot: jax.Array, latents: jax.Array, valid: jax.Array
) -> tuple[jax.Array, jax.Array]:
    buffer, buffer_valid = operands
    clean = jnp.where(valid[:, None, None], lax.stop_gradient(latents), 0).astype(buffer.dtype)
    start = slot * latents.shape[0]
    zero = jnp.zeros_like(start)
    return (
        lax.dynamic_update_slice(buffer, clean, (start, zero, zero)),
        lax.dynamic_update_slice(buffer_valid, valid, (start,)),
    )


def init_from_rows(
    books: jax.Array, rows: jax.Array, valid: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The SF warm-up initialisation: codebook ``m`` from slice ``m`` of the rows ``(R, M, D')``.

    :func:`diveq.core.warmup_codebook` per codebook (its own block of the latents for product
    layers, its stage residuals for residual layers, as the torch layers do). Returns the new
    codebooks and whether there were enough valid rows (``>= K``); the caller keeps the old
    codebooks otherwise.
    """
    num_codes = books.shape[1]
    enough = jnp.sum(valid) >= num_codes
    new = jax.vmap(
        lambda r: core.warmup_codebook(r, num_codes, valid=valid), in_axes=1, out_axes=0
    )(rows)
    return new.astype(books.dtype), enough


def gather_rows(
    rows: jax.Array, valid: jax.Array, slots: int, axis_name: Hashable | None
) -> tuple[jax.Array, jax.Array]:
    """All devices' buffers in call order (call-major, then device, then row) with
    ``axis_name``: the rows a single device would have seen with the global batch."""
    if axis_name is None:
        return rows, valid
    r = lax.all_gather(jnp.reshape(rows, (slots, -1, *rows.shape[1:])), axis_name, axis=1)
    v = lax.all_gather(jnp.reshape(valid, (slots, -1)), axis_name, axis=1)
    return jnp.reshape(r, (-1, *rows.shape[1:])), jnp.reshape(v, (-1,))
