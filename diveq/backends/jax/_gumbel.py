"""The JAX Gumbel-softmax layer: a frozen config whose ``apply`` is a pure function."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any

import jax
import jax.numpy as jnp

from diveq._checks import check_hard, check_tau
from diveq._layer_spec import LayerSpec
from diveq._types import GumbelState, LayerDraws, LayerOutput
from diveq.backends.jax._functions import FUNCTIONS, sample
from diveq.core._gumbel_layer import gumbel_layer_call, gumbel_spec

__all__ = ["GumbelVQ", "gumbel_output"]


@dataclass(frozen=True)
class GumbelVQ:
    """Gumbel-softmax quantiser layer (Jang et al. 2017), a baseline of the DiVeQ paper.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    tau : float, default 1.0
        Default temperature; ``apply(..., tau=...)`` overrides it per call.
    hard : bool, default False
        Straight-through: values are the sampled codewords, gradients those of the soft
        sample.
    feature_axis : int, default -1
        Axis of ``z`` holding the features.
    codebook_init : {"symmetric", "positive"}, default "symmetric"
        Codebook init ``U(-1/K, 1/K)`` or ``U[0, 1/K)``, elementwise.
    dtype : dtype, default float32
        dtype of the codebook.

    Notes
    -----
    Semantics: :class:`diveq.reference.GumbelVQ`. State: :class:`diveq.GumbelState`, the
    codebook alone; ``apply`` returns it unchanged (the optimiser trains it). The layer is
    hashable (safe to close over in ``jax.jit``); to anneal the temperature without
    recompiling, pass it to ``apply`` as an array argument of the jitted step, e.g.
    ``jnp.asarray(diveq.gumbel_temperature(step))``: as a layer field it would be a compile-time
    constant.

    Examples
    --------
    >>> import jax, diveq
    >>> import diveq.backends.jax as dq
    >>> vq = dq.GumbelVQ(16, 4)
    >>> state = vq.init(jax.random.key(0))
    >>> z = jax.random.normal(jax.random.key(1), (8, 4))
    >>> tau = jax.numpy.asarray(diveq.gumbel_temperature(1000, rate=1e-4))
    >>> out, state = vq.apply(state, z, key=jax.random.key(2), tau=tau)
    >>> out.values.shape
    (8, 4)
    """

    num_codes: int
    dim: int
    _: KW_ONLY
    tau: float = 1.0
    hard: bool = False
    feature_axis: int = -1
    codebook_init: str = "symmetric"
    dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        spec = gumbel_spec(self.num_codes, self.dim, self.feature_axis, self.codebook_init)
        check_tau(self.tau)
        check_hard(self.hard)
        object.__setattr__(self, "_spec", spec)

    @property
    def spec(self) -> LayerSpec:
        """The validated shared options."""
        spec: LayerSpec = self.__dict__["_spec"]
        return spec

    def init(self, key: jax.Array) -> GumbelState:
        """A fresh state: the codebook drawn from ``codebook_init`` with ``key``."""
        low, high = self.spec.init_bounds
        shape = self.spec.book_shape
        return GumbelState(
            jax.random.uniform(key, shape, dtype=self.dtype, minval=low, maxval=high)
        )

    def apply(
        self,
        state: GumbelState,
        z: jax.Array,
        *,
        key: jax.Array | None = None,
        mask: jax.Array | None = None,
        train: bool = True,
        draws: LayerDraws | None = None,
        tau: float | jax.Array | None = None,
    ) -> tuple[LayerOutput, GumbelState]:
        """Quantise ``z``: the Gumbel-softmax in training, the nearest codeword otherwise.

        Parameters
        ----------
        state : GumbelState
            The layer state.
        z : jax.Array
            Latents with the features on ``feature_axis``, real floating.
        key : jax.Array, optional
            Samples the Gumbel draws in training (required there unless ``draws.gumbel``).
        mask : jax.Array of bool, optional
            Shape of ``z`` without the feature axis; ``False`` rows pass through unchanged.
        train : bool, default True
            Training call (Gumbel-softmax) or inference (nearest codeword).
        draws : diveq.LayerDraws, optional
            ``draws.gumbel`` ``(N, K)``: explicit draws for this call.
        tau : float or jax.Array, optional
            Temperature of this call (default: the layer's); an array is traced, not static.

        Returns
        -------
        tuple
            ``(LayerOutput(values, indices, perplexity), state)``; the state is unchanged.

        Raises
        ------
        ValueError
            On a feature size or mask shape mismatch, a bad ``tau``, or a training call with
            neither ``key`` nor ``draws.gumbel``.
        """
        t = self.tau if tau is None else tau
        check_tau(t)

        def gumbel(rows: jax.Array) -> jax.Array:
            if draws is not None and draws.gumbel is not None:
                return jnp.asarray(draws.gumbel)
            return sample(key, [("gumbel", (rows.shape[0], self.spec.num_codes))], rows)[0]

        out = gumbel_layer_call(
            self.spec,
            jnp,
            FUNCTIONS.__getitem__,
            state.codebook,
            z,
            mask,
            train=train,
            tau=jnp.asarray(t),
            hard=self.hard,
            gumbel=gumbel,
        )
        return out, state


def gumbel_output(
    layer: GumbelVQ,
    codebook: jax.Array,
    z: jax.Array,
    *,
    key: jax.Array | None,
    mask: jax.Array | None,
    train: bool,
    tau: float | jax.Array | None,
) -> LayerOutput:
    """One call of ``layer`` on the codebook a framework module holds (Flax NNX, Flax Linen,
    Equinox): the layer has no other state, so the module keeps only its output."""
    state = GumbelState(codebook)
    return layer.apply(state, z, key=key, mask=mask, train=train, tau=tau)[0]
