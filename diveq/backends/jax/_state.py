"""The pytrees of the JAX layers: their state, their output, and the params/rest split.

A layer's state is a NamedTuple, so it is a pytree: jit it, vmap it, checkpoint it with any
pytree tool (orbax ``StandardCheckpointer``, or its leaves saved with any array format); its
``signature`` leaf says which layer it belongs to, so a restored state cannot load wrongly. Every
leaf is a non-empty array: a layer without a warm-up buffer (DiVeQ, ``skip_iters <= 1``, after
``release_warmup``) has ``None`` there, not a zero-size array.

The codebook(s) are the only floating leaf and the only leaf to optimise; everything else is
bookkeeping that the layer updates itself and that must never receive an optimiser update. The
warm-up rows are kept as their bit patterns (unsigned integers of the codebook's width), so a
filter such as ``equinox.is_inexact_array`` never takes them for trainable parameters (weight
decay would shrink them). :func:`split_params` and :func:`merge_params` separate the codebook
from the rest, as ``equinox.partition`` / ``combine`` do.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["CompositeState", "State", "merge_params", "split_params"]


class State(NamedTuple):
    """Training state of a one-codebook layer (:class:`DiVeQ`, :class:`SFDiVeQ`).

    Attributes
    ----------
    codebook : jax.Array, shape (K, D)
        The codewords: the only leaf to optimise.
    calls : jax.Array of int, shape ()
        Train-mode calls so far.
    hits : jax.Array of int, shape (K,)
        Rows assigned to each code in the current replacement window.
    calls_used : jax.Array of int, shape (K,)
        Train-mode calls of the window in which each code was assigned at least once.
    replaced : jax.Array of bool, shape (K,)
        The codewords the last train-mode call rewrote (dead-code replacement or the SF
        warm-up init): the rows whose optimiser moments still belong to the old codeword.
    buffer : jax.Array of unsigned int, shape (R, D), or None
        SF warm-up rows as the bit patterns of the codebook dtype (``uint32`` for
        ``float32``), ``R = avg_iters * rows_per_call``; zeroed after the init. ``None`` for
        layers without a warm-up and after ``release_warmup``.
    buffer_valid : jax.Array of bool, shape (R,), or None
        Which buffer rows hold collected latents (``None`` with ``buffer``).
    signature : jax.Array of int32, shape (8,)
        The layer that owns the state: its kind, codebook shapes and schedule options, so
        a restored state that does not fit the layer is refused (see ``check_state``).
    """

    codebook: jax.Array
    calls: jax.Array
    hits: jax.Array
    calls_used: jax.Array
    replaced: jax.Array
    buffer: jax.Array | None
    buffer_valid: jax.Array | None
    signature: jax.Array


class CompositeState(NamedTuple):
    """Training state of a composite layer (:class:`ProductDiVeQ`, :class:`ResidualDiVeQ`).

    As :class:`State`, with ``codebooks`` of shape ``(M, K, D')``, ``hits`` / ``calls_used`` /
    ``replaced`` of shape ``(M, K)`` and ``buffer`` of shape ``(R, M, D')``: what each codebook
    quantised (its block of the latents for product layers, its stage residuals for residual
    layers); ``buffer`` is ``None`` for composite DiVeQ.
    """

    codebooks: jax.Array
    calls: jax.Array
    hits: jax.Array
    calls_used: jax.Array
    replaced: jax.Array
    buffer: jax.Array | None
    buffer_valid: jax.Array | None
    signature: jax.Array


AnyState = TypeVar("AnyState", State, CompositeState)

_BITS = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}


def to_bits(x: jax.Array) -> jax.Array:
    """Floats as unsigned integers of the same width (the warm-up buffer's storage)."""
    return lax.bitcast_convert_type(x, _BITS[jnp.dtype(x.dtype).itemsize])


def from_bits(bits: jax.Array, dtype: Any) -> jax.Array:
    """Inverse of :func:`to_bits` for floats of ``dtype``."""
    return lax.bitcast_convert_type(bits, dtype)


def split_params(state: AnyState) -> tuple[jax.Array, AnyState]:
    """Split a layer state into its trainable codebook(s) and the rest.

    Parameters
    ----------
    state : State or CompositeState
        A layer state.

    Returns
    -------
    params : jax.Array
        ``state.codebook`` (or ``state.codebooks``): give this to the optimiser.
    rest : State or CompositeState
        ``state`` with the codebook leaf set to ``None``: counters and warm-up buffer, which
        the layer updates itself and which must get no gradient update.

    Examples
    --------
    >>> import jax, diveq.backends.jax as dq
    >>> layer = dq.DiVeQ(4, 2)
    >>> params, rest = dq.split_params(layer.init(jax.random.key(0)))
    >>> params.shape, rest.codebook is None
    ((4, 2), True)
    """
    empty: dict[str, Any] = {state._fields[0]: None}
    return state[0], state._replace(**empty)


def merge_params(params: jax.Array, rest: AnyState) -> AnyState:
    """Inverse of :func:`split_params`: put the codebook(s) back into the state.

    Parameters
    ----------
    params : jax.Array
        The codebook(s), e.g. as updated by an optimiser.
    rest : State or CompositeState
        The other leaves, from :func:`split_params` or from a layer's ``apply``.

    Returns
    -------
    State or CompositeState
        The full state.
    """
    return rest._replace(**{rest._fields[0]: params})
