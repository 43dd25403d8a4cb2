"""The pytrees of the JAX layers: their state, their output, and the params/rest split.

A layer's state is a NamedTuple, so it is a pytree: jit it, vmap it, checkpoint it by
flattening its leaves (``jax.tree_util.tree_flatten``) and saving them with any array format.
The codebook(s) are the only leaf to optimise; everything else is bookkeeping that the layer
updates itself and that must never receive an optimiser update. :func:`split_params` and
:func:`merge_params` separate the two, as ``equinox.partition`` / ``combine`` do.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

import jax

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
    buffer : jax.Array, shape (R, D)
        SF warm-up rows, ``R = avg_iters * rows_per_call`` (0 for layers without warm-up);
        zeroed after the init.
    buffer_valid : jax.Array of bool, shape (R,)
        Which buffer rows hold collected latents.
    """

    codebook: jax.Array
    calls: jax.Array
    hits: jax.Array
    calls_used: jax.Array
    buffer: jax.Array
    buffer_valid: jax.Array


class CompositeState(NamedTuple):
    """Training state of a composite layer (:class:`ProductDiVeQ`, :class:`ResidualDiVeQ`).

    As :class:`State`, with ``codebooks`` of shape ``(M, K, D')``, ``hits`` / ``calls_used``
    of shape ``(M, K)`` and ``buffer`` of shape ``(R, M, D')``: what each codebook quantised
    (its block of the latents for product layers, its stage residuals for residual layers).
    """

    codebooks: jax.Array
    calls: jax.Array
    hits: jax.Array
    calls_used: jax.Array
    buffer: jax.Array
    buffer_valid: jax.Array


AnyState = TypeVar("AnyState", State, CompositeState)


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
