"""The JAX layers' warm-up store: a static-size buffer ``(R, M, D')`` with a validity mask,
``R = slots * rows_per_call``, written with ``lax.dynamic_update_slice`` so a whole training
step jits, and gathered over devices with ``axis_name``. The rows are stored as their bit
patterns (:func:`~diveq.backends.jax._state.to_bits`): converted once per call for the new
rows and once at the init, never for the whole buffer on every call."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from diveq._layer_spec import LayerSpec
from diveq.backends.jax._state import to_bits

__all__ = ["collect", "gather"]

Store = tuple[jax.Array, jax.Array]


def collect(
    spec: LayerSpec,
    per_call: int,
    store: Store,
    call: jax.Array,
    latents: jax.Array,
    valid: jax.Array,
    dtype: Any,
) -> Store:
    """Write the call's latents ``(N, M, D')`` (padded to ``per_call`` rows) into its slot.

    Invalid rows are stored as zeros and marked invalid, so they never reach the init. ``dtype``
    is the float type whose bits the buffer holds.
    """
    buffer, buffer_valid = store
    pad = per_call - latents.shape[0]
    rows = jnp.pad(latents, ((0, pad), (0, 0), (0, 0)))
    ok = jnp.pad(valid, (0, pad))
    slots = spec.warmup_slots
    slot = jnp.clip(call - (spec.skip_iters - slots), 0, slots - 1)
    clean = to_bits(jnp.where(ok[:, None, None], lax.stop_gradient(rows), 0).astype(dtype))
    start = slot * per_call
    zero = jnp.zeros_like(start)
    return (
        lax.dynamic_update_slice(buffer, clean, (start, zero, zero)),
        lax.dynamic_update_slice(buffer_valid, ok, (start,)),
    )


def gather(rows: jax.Array, valid: jax.Array, slots: int, axis_name: Hashable | None) -> Store:
    """All devices' buffers in call order (call-major, then device, then row) with
    ``axis_name``: the rows a single device would have seen with the global batch."""
    if axis_name is None:
        return rows, valid
    r = lax.all_gather(jnp.reshape(rows, (slots, -1, *rows.shape[1:])), axis_name, axis=1)
    v = lax.all_gather(jnp.reshape(valid, (slots, -1)), axis_name, axis=1)
    return jnp.reshape(r, (-1, *rows.shape[1:])), jnp.reshape(v, (-1,))
