"""The JAX EMA-codebook layer: a frozen config whose ``apply`` is a pure function of an
:class:`~diveq.EMAState`; the call and the update are the core's (:mod:`diveq.core._ema_layer`)."""

from __future__ import annotations

import functools
from collections.abc import Hashable
from dataclasses import KW_ONLY, dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from diveq._ema_spec import EMASpec
from diveq._types import EMALayerOutput, EMAState
from diveq.core import _layer_rows as rows_
from diveq.core._ema import ema_init, ema_update
from diveq.core._ema_layer import ema_call, ema_output
from diveq.core._state import perplexity_from_counts

__all__ = ["EMAVQ"]


@functools.partial(jax.jit, static_argnums=(0, 4))
def _apply(layer: EMAVQ, state: EMAState, z: jax.Array, mask: Any, train: bool) -> Any:
    return layer._call(state, z, mask, train)


class _Options:
    spec: EMASpec  # built from the fields (not a field: set once in __post_init__)


@dataclass(frozen=True)
class EMAVQ(_Options):
    """Vector quantisation with an EMA codebook (VQ-VAE appendix; Razavi et al. 2019).

    Values are straight-through (``z + sg(c_k - z)``); the codebook is moved by exponential
    moving averages in train-mode calls, never by gradients, and ``output.loss`` is the
    commitment term to add to the training loss. Semantics: :class:`diveq.reference.EMAVQ`.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    decay : float, default 0.99
        EMA decay in ``[0, 1]``.
    eps : float, default 1e-5
        Laplace smoothing of the cluster sizes.
    beta : float, default 0.25
        Weight of the commitment term.
    feature_axis : int, default -1
        Axis of ``z`` holding the features.
    codebook_init : {"symmetric", "positive"}, default "symmetric"
        Codebook init: ``U(-1/K, 1/K)`` or ``U[0, 1/K)`` elementwise.
    axis_name : hashable, optional
        Device axis over which the per-code counts and sums are summed (data parallelism).
    dtype : dtype, default float32
        dtype of the state.

    Notes
    -----
    State: :class:`~diveq.EMAState` (a pytree; no leaf is trainable: give the optimiser none
    of it). Masked and non-finite rows pass through unchanged, get index ``-1`` and are
    neither counted nor part of the loss. ``train=False`` changes nothing.

    Examples
    --------
    >>> import jax
    >>> import diveq.backends.jax as dq
    >>> layer = dq.EMAVQ(16, 4)
    >>> state = layer.init(jax.random.key(0))
    >>> out, state = layer.apply(state, jax.random.normal(jax.random.key(1), (8, 4)))
    >>> out.values.shape, out.indices.shape, out.loss.shape
    ((8, 4), (8,), ())
    """

    num_codes: int
    dim: int
    _: KW_ONLY
    decay: float = 0.99
    eps: float = 1e-5
    beta: float = 0.25
    feature_axis: int = -1
    codebook_init: str = "symmetric"
    axis_name: Hashable | None = None
    dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        spec = EMASpec(
            self.num_codes,
            self.dim,
            self.decay,
            self.eps,
            self.beta,
            self.feature_axis,
            self.codebook_init,
        )
        object.__setattr__(self, "spec", spec)

    def init(self, key: jax.Array) -> EMAState:
        """A fresh state: a codebook drawn from ``codebook_init``, ``cluster_size = 1`` and
        ``embed_sum = codebook``.

        Parameters
        ----------
        key : jax.Array
            A :func:`jax.random.key` for the codebook draw.

        Returns
        -------
        EMAState
            The layer state (a pytree).
        """
        low, high = self.spec.init_bounds
        shape = (self.num_codes, self.dim)
        return ema_init(jax.random.uniform(key, shape, self.dtype, minval=low, maxval=high))

    def apply(
        self,
        state: EMAState,
        z: jax.Array,
        *,
        key: jax.Array | None = None,
        mask: jax.Array | None = None,
        train: bool = True,
    ) -> tuple[EMALayerOutput, EMAState]:
        """Quantise ``z``; in training also the EMA step of the codebook (pure).

        Parameters
        ----------
        state : EMAState
            From :meth:`init` or a previous call.
        z : jax.Array
            Latents with ``dim`` features on ``feature_axis``, real floating.
        key : jax.Array, optional
            Unused (the layer draws nothing); accepted so that it drops in where the other
            layers are called.
        mask : jax.Array of bool, optional
            Shape of ``z`` without the feature axis; ``False`` rows are left out.
        train : bool, default True
            Python bool (static under jit). ``False``: no state change (the same object).

        Returns
        -------
        output : EMALayerOutput
            ``(values, indices, perplexity, loss)``.
        new_state : EMAState
            The state after the EMA step (``state`` itself when ``train`` is False).

        Raises
        ------
        ValueError
            On a feature size or mask shape mismatch.
        TypeError
            If ``z`` is not real floating, ``mask`` not boolean or ``train`` not a bool.
        """
        del key
        if not isinstance(train, bool):
            raise TypeError(f"`train` must be a Python bool (static under jit); got {train!r}")
        out, new = _apply(self, state, z, mask, train)
        return out, (new if train else state)

    def _call(
        self, state: EMAState, z: jax.Array, mask: jax.Array | None, train: bool
    ) -> tuple[EMALayerOutput, EMAState]:
        spec = self.spec
        rows, valid, lead = rows_.to_rows(spec.rows, jnp, z, mask)
        call = ema_call(spec, jnp, state.codebook, rows, valid, stop_gradient=lax.stop_gradient)
        counts, sums = call.counts, call.sums
        if self.axis_name is not None:
            counts, sums = lax.psum((counts, sums), self.axis_name)
        values, indices = ema_output(spec, jnp, rows, valid, lead, call)
        out = EMALayerOutput(values, indices, perplexity_from_counts(counts), call.loss)
        if not train:
            return out, state
        new = ema_update(state, counts, sums, decay=spec.decay, eps=spec.eps)
        return out, EMAState(*(lax.stop_gradient(x) for x in new))
