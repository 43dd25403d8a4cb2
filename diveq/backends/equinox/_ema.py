"""The Equinox EMA-codebook layer (see :mod:`diveq.backends.equinox`)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax

import diveq.backends.jax as dq
from diveq._types import EMALayerOutput

__all__ = ["EMAVQ"]


class EMAVQ(eqx.nn.StatefulLayer):
    """:class:`diveq.backends.jax.EMAVQ` (an EMA codebook) as an ``eqx.nn.StatefulLayer``.

    The whole layer state (codebook, cluster sizes, embedding sums: an :class:`~diveq.EMAState`)
    lives in the ``eqx.nn.State``: the model has no trainable leaf here and needs no
    :func:`write_back`; add ``output.loss`` (the commitment term) to the training loss.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    key : jax.Array
        Draws the initial codebook.
    inference : bool, default False
        Hard inference, no state change (``eqx.nn.inference_mode`` sets it).
    **options
        The options of :class:`diveq.backends.jax.EMAVQ` (``decay``, ``eps``, ``beta``,
        ``feature_axis``, ``codebook_init``, ``axis_name``, ``dtype``).
    """

    layer: dq.EMAVQ = eqx.field(static=True)
    index: eqx.nn.StateIndex
    inference: bool

    def __init__(
        self, num_codes: int, dim: int, *, key: jax.Array, inference: bool = False, **options: Any
    ) -> None:
        self.layer = dq.EMAVQ(num_codes, dim, **options)
        self.index = eqx.nn.StateIndex(self.layer.init(key))
        self.inference = inference

    def __call__(
        self,
        z: jax.Array,
        state: eqx.nn.State,
        *,
        key: jax.Array | None = None,
        mask: jax.Array | None = None,
        inference: bool | None = None,
    ) -> tuple[EMALayerOutput, eqx.nn.State]:
        """Quantise ``z``; in training also the EMA step of this layer's part of ``state``.

        Parameters
        ----------
        z : jax.Array
            Latents (the whole batch) with ``dim`` features on ``feature_axis``.
        state : eqx.nn.State
            The model state.
        key : jax.Array, optional
            Unused (the layer draws nothing).
        mask : jax.Array of bool, optional
            As for :meth:`diveq.backends.jax.EMAVQ.apply`.
        inference : bool, optional
            Overrides the ``inference`` field.

        Returns
        -------
        output : EMALayerOutput
            ``(values, indices, perplexity, loss)``.
        state : eqx.nn.State
            The updated model state.
        """
        del key
        own = state.get(self.index)
        if self.inference if inference is None else inference:
            return self.layer.apply(own, z, mask=mask, train=False)[0], state
        out, new = self.layer.apply(own, z, mask=mask)
        return out, state.set(self.index, new)
