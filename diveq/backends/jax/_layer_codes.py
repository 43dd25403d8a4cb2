"""Codes to vectors and back for every layer: ``encode`` (hard inference with weights) and
``decode``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diveq._types import Quantized, SFQuantized
from diveq.backends.jax._layer_base import AnyState, LayerBase

__all__ = ["Layer"]


class Layer(LayerBase):
    """A layer: :class:`LayerBase` plus the conversions between codes and vectors."""

    def encode(
        self, state: AnyState, z: jax.Array, *, mask: jax.Array | None = None
    ) -> Quantized | SFQuantized:
        """Hard inference with the full result (SF layers: segment ``weights`` too).

        Parameters
        ----------
        state : State or CompositeState
            The layer state.
        z : jax.Array
            Latents, as for :meth:`apply`.
        mask : jax.Array of bool, optional
            As for :meth:`apply`.

        Returns
        -------
        Quantized or SFQuantized
            As ``apply(..., train=False)``, plus the segment positions ``weights`` for
            space-filling layers. Masked and non-finite rows get index ``-1``, weight 0 and
            their input as value.
        """
        books = self._unpack(state)[0]
        zr, valid, lead = self._rows(z, mask)
        zsafe = jnp.where(valid[:, None], zr, jnp.zeros((), zr.dtype))
        values, idx, out = self._infer(books, zsafe)
        base = self._output(z, zr, values, idx, valid, lead)
        if not self._sf:
            return Quantized(base.values, base.indices)
        w = out.weights if self.layout != "single" else out.weights[:, None]
        w = jnp.where(valid[:, None], w, jnp.zeros((), w.dtype))
        return SFQuantized(base.values, base.indices, self._user_indices(w, lead))

    def decode(
        self, state: AnyState, indices: jax.Array, weights: jax.Array | None = None
    ) -> jax.Array:
        """Vectors from codes: ``c_k`` (SF: ``(1 - w) c_i + w c_{i+1}``), ``0`` for ``-1``.

        Parameters
        ----------
        state : State or CompositeState
            The layer state.
        indices : jax.Array of int
            As returned by :meth:`apply` or :meth:`encode`.
        weights : jax.Array, optional
            Segment positions (same shape as ``indices``); required for SF layers.

        Returns
        -------
        jax.Array
            Shape ``indices.shape`` (without the trailing ``M`` of composites) with ``dim``
            features inserted at ``feature_axis``, in the codebook dtype.
        """
        books = self._unpack(state)[0]
        m = self.num_books
        idx = indices[..., None] if self.layout == "single" else indices
        ok = idx >= 0
        safe = jnp.where(ok, idx, 0)
        picked = books[jnp.arange(m), safe]  # (..., M, D')
        if self._sf:
            if weights is None:
                raise ValueError("`weights` are required to decode space-filling codes")
            w = weights[..., None] if self.layout == "single" else weights
            nxt = books[jnp.arange(m), jnp.minimum(safe + 1, self.num_codes - 1)]
            w = w[..., None].astype(books.dtype)
            picked = (1 - w) * picked + w * nxt
        picked = jnp.where(ok[..., None], picked, jnp.zeros((), picked.dtype))
        if self.layout == "residual":
            vectors = jnp.sum(picked, axis=-2)
        else:
            vectors = jnp.reshape(picked, (*picked.shape[:-2], self.dim))
        return jnp.moveaxis(vectors, -1, self.feature_axis)
