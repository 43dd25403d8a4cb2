"""The Equinox Gumbel-softmax layer (see :mod:`diveq.backends.equinox`)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax

import diveq.backends.jax as dq
from diveq._types import LayerOutput
from diveq.backends.jax._gumbel import gumbel_output

__all__ = ["GumbelVQ"]


class GumbelVQ(eqx.Module):
    """:class:`diveq.backends.jax.GumbelVQ` (the Gumbel-softmax baseline) as an Equinox layer.

    The codebook, the layer's only state, is the trainable field ``codebook``: the layer is
    stateless (no ``eqx.nn.State``, no :func:`write_back`) and is called like
    ``eqx.nn.Dropout``, ``out = layer(z, key=key, tau=tau)``. Anneal the temperature by
    passing ``tau`` to each call, as an array argument of the jitted step
    (``jnp.asarray(diveq.gumbel_temperature(step))``).

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    key : jax.Array
        Draws the initial codebook.
    inference : bool, default False
        The nearest codeword, no draws (``eqx.nn.inference_mode`` sets it).
    **options
        The options of :class:`diveq.backends.jax.GumbelVQ` (``tau``, the default temperature;
        ``hard``, ``feature_axis``, ``codebook_init``, ``dtype``), same names and defaults.

    Attributes
    ----------
    codebook : jax.Array
        The codebook, ``(K, D)``: the only trainable leaf.
    layer : diveq.backends.jax.GumbelVQ
        The JAX layer (a frozen config) that does the work.
    """

    layer: dq.GumbelVQ = eqx.field(static=True)
    codebook: jax.Array
    inference: bool

    def __init__(
        self, num_codes: int, dim: int, *, key: jax.Array, inference: bool = False, **options: Any
    ) -> None:
        self.layer = dq.GumbelVQ(num_codes, dim, **options)
        self.codebook = self.layer.init(key).codebook
        self.inference = inference

    def __call__(
        self,
        z: jax.Array,
        *,
        key: jax.Array | None = None,
        mask: jax.Array | None = None,
        tau: float | jax.Array | None = None,
        inference: bool | None = None,
    ) -> LayerOutput:
        """Quantise ``z``: a Gumbel-softmax sample in training, the nearest codeword otherwise.

        Parameters
        ----------
        z : jax.Array
            Latents (the whole batch) with ``dim`` features on ``feature_axis``.
        key : jax.Array, optional
            The Gumbel draws of a training call (required there).
        mask : jax.Array of bool, optional
            As for :meth:`diveq.backends.jax.GumbelVQ.apply`.
        tau : float or jax.Array, optional
            Temperature of this call (default: the ``tau`` option); an array is traced.
        inference : bool, optional
            Overrides the ``inference`` field.

        Returns
        -------
        LayerOutput
            ``(values, indices, perplexity)``.

        Raises
        ------
        ValueError
            As :meth:`diveq.backends.jax.GumbelVQ.apply` raises (feature size, mask, ``tau``,
            a training call without ``key``).
        """
        train = not (self.inference if inference is None else inference)
        return gumbel_output(self.layer, self.codebook, z, key=key, mask=mask, train=train, tau=tau)
