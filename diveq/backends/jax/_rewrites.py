"""Codebook rewrites for frameworks whose parameters a layer cannot write (Flax Linen, Equinox).

A train-mode call may rewrite codebook rows itself (dead-code replacement, the SF warm-up
init). The plain JAX layer returns them in the new state's codebook; a Linen or Equinox module
keeps that new state (its ``replaced`` mask and the rewritten codebook) beside the parameters,
and one helper per framework folds the rows into the parameters after the step. Until it has,
every call of the module raises, so a forgotten write-back is never a silent loss: eagerly a
``ValueError``; under ``jax.jit`` the same message from a host callback that runs only when a
rewrite is pending.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["check_written_back", "fold_rows"]


def fold_rows(params: jax.Array, rewritten: jax.Array, replaced: jax.Array) -> jax.Array:
    """``params`` with the rows marked in ``replaced`` taken from ``rewritten``.

    Parameters
    ----------
    params : jax.Array, shape (..., K, D)
        The codebook(s) as the optimiser holds them.
    rewritten : jax.Array, shape (..., K, D)
        The codebook(s) of the layer's new state.
    replaced : jax.Array of bool, shape (..., K)
        The rows the call rewrote.

    Returns
    -------
    jax.Array
        The codebook(s) to optimise from now on.
    """
    return jnp.where(replaced[..., None], rewritten.astype(params.dtype), params)


def _message(helper: str, rows: int | None = None) -> str:
    what = "codebook rows" if rows is None else f"{rows} codebook row(s)"
    return (
        f"the previous train-mode call rewrote {what} (dead-code replacement or the SF "
        "warm-up init) and they were never written back to the parameters, so the layer "
        f"would run with stale codewords: call `{helper}` after every training step, before "
        "the optimiser update"
    )


def _raise_if(helper: str, pending: np.ndarray) -> None:
    count = int(np.sum(pending))
    if count:
        raise ValueError(_message(helper, count))


def check_written_back(replaced: jax.Array, helper: str) -> None:
    """Raise if rows rewritten by the previous call are still pending (see the module doc).

    Parameters
    ----------
    replaced : jax.Array of bool
        The ``replaced`` mask the module keeps (cleared by the write-back helper).
    helper : str
        How the user calls the write-back helper, for the message.

    Raises
    ------
    ValueError
        Eagerly, if any row is pending. Under ``jax.jit`` the error comes from a host callback
        (``JaxRuntimeError`` carrying the same message).
    """
    if not isinstance(replaced, jax.core.Tracer):
        _raise_if(helper, np.asarray(replaced))
        return
    pending = jnp.sum(replaced.astype(jnp.int32))
    callback = functools.partial(_raise_if, helper)
    # Under vmap the cond becomes a select and the callback runs with the (batched) count.
    lax.cond(pending > 0, lambda p: jax.debug.callback(callback, p), lambda p: None, pending)
