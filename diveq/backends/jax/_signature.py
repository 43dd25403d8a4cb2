"""The layer signature a JAX state carries, and the check that a state fits the layer using it.

A JAX state is all arrays, so whatever writes it (orbax, ``np.savez``, a pytree of leaves)
keeps its ``signature`` leaf: the layer kind, the codebook shapes and the schedule options
(:func:`diveq._checkpoint.signature`), the same description a torch checkpoint carries. A state
restored into a layer built differently is then refused with the torch layers' messages instead
of silently changing meaning (an SF state run as DiVeQ, a warm-up resumed under another
schedule).

On concrete states (eager calls, :meth:`~diveq.backends.jax.DiVeQ.check_state`) the check reads
the leaf on the host; a signature already seen to fit a layer is remembered by identity, so an
eager training loop reads it once. Inside ``jax.jit`` the comparison runs on the device and only
a mismatch calls back to the host, which raises the same message (as the write-back check of
:mod:`._rewrites` does).
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from diveq._checkpoint import check_checkpoint, from_signature, signature
from diveq._layer_spec import LayerSpec

__all__ = ["check", "fresh"]

_FIX = (
    "build the layer with the state's values (to change `{name}` to {new} on purpose, give the "
    "state this layer's signature: `state._replace(signature=layer.init(key).signature)`)"
)

#: ``(id(leaf), spec signature) -> weakref(leaf)`` for signature leaves known to fit.
_FITS: dict[tuple[int, tuple[int, ...]], weakref.ref] = {}


def fresh(spec: LayerSpec) -> jax.Array:
    """The ``signature`` leaf of a new state of a layer built as ``spec``."""
    return jnp.asarray(signature(spec), dtype=jnp.int32)


def _remember(leaf: jax.Array, own: tuple[int, ...]) -> None:
    key = (id(leaf), own)
    _FITS[key] = weakref.ref(leaf, lambda _: _FITS.pop(key, None))


def _known(leaf: Any, own: tuple[int, ...]) -> bool:
    ref = _FITS.get((id(leaf), own))
    return ref is not None and ref() is leaf


def _read(leaf: Any) -> np.ndarray:
    """A leaf on the host (a device-to-host copy)."""
    return np.asarray(leaf)


def _verify(spec: LayerSpec, leaf: Any, calls: Any) -> bool:
    """Raise unless a state with signature ``leaf`` after ``calls`` train calls fits ``spec``;
    True when it fits with another (not yet started, or finished) schedule."""
    own = signature(spec)
    codes, counts = _read(leaf).reshape(-1, len(own)), _read(calls).reshape(-1)
    if len(np.unique(codes, axis=0)) > 1:
        raise ValueError(f"the batched states carry different layer signatures: {codes.tolist()}")
    if tuple(int(c) for c in codes[0]) == own:
        return False
    saved = from_signature(codes[0])
    for count in np.unique(counts):
        check_checkpoint(spec, saved, int(count), _FIX)
    return True


def _refuse(spec: LayerSpec, leaf: Any, calls: Any) -> None:
    """The host callback of a traced mismatch (it raises unless the state fits)."""
    _verify(spec, leaf, calls)


def check(spec: LayerSpec, state: Any) -> Any:
    """``state`` if it fits a layer built as ``spec`` (raise ``ValueError`` if not).

    A state whose schedule differs but has not started it (or has finished it under both
    schedules) fits, as in torch; it is returned with this layer's signature, so that what is
    saved next describes the schedule that actually ran. A traced state is checked on the
    device: only a mismatch calls back to the host, which raises the same message (under
    ``jax.jit`` as a ``JaxRuntimeError``).
    """
    leaf, own = state.signature, signature(spec)
    if isinstance(leaf, jax.core.Tracer) or isinstance(state.calls, jax.core.Tracer):
        mine = fresh(spec)
        differs = jnp.any(leaf != mine)
        refuse = functools.partial(_refuse, spec)
        lax.cond(
            differs, lambda a: jax.debug.callback(refuse, *a), lambda a: None, (leaf, state.calls)
        )
        return state._replace(signature=jnp.broadcast_to(mine, jnp.shape(leaf)))
    if _known(leaf, own):
        return state
    if not _verify(spec, leaf, state.calls):
        _remember(leaf, own)
        return state
    relabelled = state._replace(signature=jnp.broadcast_to(fresh(spec), np.shape(leaf)))
    _remember(relabelled.signature, own)
    return relabelled
