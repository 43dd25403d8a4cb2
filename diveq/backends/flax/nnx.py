"""Flax NNX modules: the diveq layers as ``nnx.Module``\\ s.

Each module holds a JAX layer of :mod:`diveq.backends.jax` (``module.layer``, a frozen config)
and that layer's state: the codebook(s) as an ``nnx.Param``, the counters and warm-up rows as
:class:`VQState` variables. A train-mode call runs ``layer.apply`` and writes the new state
back in place, including the codebook rows that dead-code replacement or the SF warm-up init
rewrote, so a standard ``nnx.Optimizer`` step needs no diveq-specific code::

    import optax
    from flax import nnx
    import diveq.backends.flax.nnx as dqn

    class AutoEncoder(nnx.Module):
        def __init__(self, rngs):
            self.encoder = nnx.Linear(64, 8, rngs=rngs)
            self.vq = dqn.DiVeQ(512, 8, rngs=rngs)  # (num_codes, dim), as dq.DiVeQ
            self.decoder = nnx.Linear(8, 64, rngs=rngs)

        def __call__(self, x):
            return self.decoder(self.vq(self.encoder(x)).values)

    model = AutoEncoder(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x):
        def loss_fn(model):
            return jnp.mean((model(x) - x) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

``model.eval()`` switches every quantiser to the hard inference (no state change),
``model.train()`` back. The training draws come from the ``rng_collection`` stream (default
``"diveq"``, or the ``default`` stream of the ``nnx.Rngs`` when it has no such stream).
:class:`GumbelVQ` has no state but its codebook (an ``nnx.Param``) and takes its temperature
per call; :class:`EMAVQ` holds its codebook as :class:`VQState`, moved by the EMA step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
from flax import nnx

import diveq.backends.jax as dq
from diveq._types import EMALayerOutput, EMAState, GumbelState, LayerOutput, Quantized, SFQuantized
from diveq.backends.jax._gumbel import gumbel_output
from diveq.backends.jax._layer import AnyState, Layer, Output

__all__ = ["EMAVQ", "DiVeQ", "GumbelVQ", "ProductDiVeQ", "ResidualDiVeQ", "SFDiVeQ", "VQState"]


class VQState(nnx.Variable):
    """The non-trainable state of a diveq layer: call and usage counters, the ``replaced``
    mask and the SF warm-up rows (see :class:`diveq.backends.jax.State`).

    Its own variable type, so that ``nnx.Optimizer(..., wrt=nnx.Param)`` never updates it and
    ``nnx.state(model, dqn.VQState)`` selects it.
    """


class _Quantizer(nnx.Module):
    """The NNX module around one JAX layer (the concrete classes only name the layer)."""

    jax_layer: ClassVar[type[Layer]]

    def __init__(
        self,
        *args: Any,
        rngs: nnx.Rngs,
        rng_collection: str = "diveq",
        deterministic: bool = False,
        **options: Any,
    ) -> None:
        self.layer = self.jax_layer(*args, **options)
        state = self.layer.init(rngs.params())
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        self.rngs = rngs[rng_collection].fork()
        self._state_type, self._fields = type(state), state._fields
        setattr(self, state._fields[0], nnx.Param(state[0]))
        for name, value in zip(state._fields[1:], state[1:], strict=True):
            setattr(self, name, None if value is None else VQState(value))

    def layer_state(self) -> AnyState:
        """The module's state as the JAX layer's state pytree (codebook(s) included)."""
        values: list[Any] = []
        for name in self._fields:
            var = getattr(self, name)
            values.append(None if var is None else var[...])
        return self._state_type(*values)

    def __call__(
        self,
        z: jax.Array,
        *,
        mask: jax.Array | None = None,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> Output:
        """Quantise ``z``; in training also advance the state in place.

        Parameters
        ----------
        z : jax.Array
            Latents with ``dim`` features on ``feature_axis``.
        mask : jax.Array of bool, optional
            As for :meth:`diveq.backends.jax.DiVeQ.apply`.
        deterministic : bool, optional
            Overrides the module's ``deterministic`` (set by ``model.eval()`` /
            ``model.train()``): True is the hard inference and changes no state.
        rngs : nnx.Rngs, nnx.RngStream or jax.Array, optional
            Overrides the module's stream for this call's draws.

        Returns
        -------
        LayerOutput or SFLayerOutput
            ``(values, indices, perplexity)`` (space-filling layers add ``weights``).
        """
        state = self.layer_state()
        if self.deterministic if deterministic is None else deterministic:
            return self.layer.apply(state, z, mask=mask, train=False)[0]
        out, new = self.layer.apply(state, z, key=self._key(rngs), mask=mask)
        for name, value in zip(self._fields, new, strict=True):
            if value is not None:
                getattr(self, name)[...] = value
        return out

    def _key(self, rngs: nnx.Rngs | nnx.RngStream | jax.Array | None) -> jax.Array:
        return _call_key(self.rngs, self.rng_collection, rngs)

    def encode(self, z: jax.Array, *, mask: jax.Array | None = None) -> Quantized | SFQuantized:
        """Hard inference with the full result; see :meth:`diveq.backends.jax.DiVeQ.encode`.

        Parameters
        ----------
        z : jax.Array
            Latents.
        mask : jax.Array of bool, optional
            Rows to quantise.

        Returns
        -------
        Quantized or SFQuantized
            Values and codes (SF layers: segment weights too).
        """
        return self.layer.encode(self.layer_state(), z, mask=mask)

    def decode(self, indices: jax.Array, weights: jax.Array | None = None) -> jax.Array:
        """Vectors from codes; see :meth:`diveq.backends.jax.DiVeQ.decode`.

        Parameters
        ----------
        indices : jax.Array of int
            Codes from :meth:`encode` or a call.
        weights : jax.Array, optional
            Segment positions (SF layers).

        Returns
        -------
        jax.Array
            The decoded vectors.
        """
        return self.layer.decode(self.layer_state(), indices, weights)

    def release_warmup(self) -> None:
        """Drop the SF warm-up buffer after the warm-up init (frees its memory; a jitted
        step retraces once). See :meth:`diveq.backends.jax.SFDiVeQ.release_warmup`."""
        released = self.layer.release_warmup(self.layer_state())
        if released.buffer is None:
            self.buffer = None
            self.buffer_valid = None


def _call_key(
    own: nnx.RngStream, collection: str, rngs: nnx.Rngs | nnx.RngStream | jax.Array | None
) -> jax.Array:
    """The key of one training call: from ``rngs`` when given, else from the module's stream."""
    if rngs is None:
        return own()
    if isinstance(rngs, nnx.Rngs):
        return rngs[collection]()
    if isinstance(rngs, nnx.RngStream):
        return rngs()
    return rngs


_PARAMETERS = """rngs : nnx.Rngs
        Its ``params`` stream draws the codebook; a fork of its ``rng_collection`` stream
        gives the training draws (noise, SF dither, replacement donors), one key per call.
    rng_collection : str, default "diveq"
        Stream name (``nnx.Rngs`` falls back to its ``default`` stream).
    deterministic : bool, default False
        Hard inference, no state change (``model.eval()`` sets it, ``model.train()`` clears
        it).
    **options
        The options of :class:`diveq.backends.jax.{name}` (``noise_std``, {more}
        ``feature_axis``, ``codebook_init``, ``axis_name``, ``dtype``), same names and
        defaults.

    Attributes
    ----------
    {book} : nnx.Param
        The codebook{s}, ``{shape}``.
    calls, hits, calls_used, replaced, buffer, buffer_valid : VQState or None
        The rest of the layer state (:class:`diveq.backends.jax.{state}`); ``buffer`` and
        ``buffer_valid`` are ``None`` without a warm-up buffer.
    layer : diveq.backends.jax.{name}
        The JAX layer (a frozen config) that does the work.
"""
_REPLACE = "``replacement_iters``, ``discard_threshold``, ``perturb_eps``,"
_WARMUP = "``skip_iters``, ``avg_iters``, ``rows_per_call``,"


def _doc(name: str, more: str, composite: bool) -> str:
    return _PARAMETERS.format(
        name=name,
        more=more,
        book="codebooks" if composite else "codebook",
        s="s" if composite else "",
        shape="(M, K, D')" if composite else "(K, D)",
        state="CompositeState" if composite else "State",
    )


class DiVeQ(_Quantizer):
    jax_layer = dq.DiVeQ
    __doc__ = """DiVeQ with one codebook (:class:`diveq.backends.jax.DiVeQ`) as an NNX module.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    """ + _doc("DiVeQ", _REPLACE, False)

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        rngs: nnx.Rngs,
        rng_collection: str = "diveq",
        deterministic: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(
            num_codes,
            dim,
            rngs=rngs,
            rng_collection=rng_collection,
            deterministic=deterministic,
            **options,
        )


class SFDiVeQ(_Quantizer):
    jax_layer = dq.SFDiVeQ
    __doc__ = """Space-filling DiVeQ with the SF warm-up (:class:`diveq.backends.jax.SFDiVeQ`) as
    an NNX module.

    Parameters
    ----------
    num_codes : int
        ``K >= 2``, number of codewords (polyline vertices).
    dim : int
        ``D``, feature size.
    """ + _doc("SFDiVeQ", _WARMUP, False)

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        rngs: nnx.Rngs,
        rng_collection: str = "diveq",
        deterministic: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(
            num_codes,
            dim,
            rngs=rngs,
            rng_collection=rng_collection,
            deterministic=deterministic,
            **options,
        )


_COMPOSITE = """
    Parameters
    ----------
    num_codebooks : int
        ``M``, number of codebooks.
    num_codes : int
        ``K``, codewords per codebook.
    dim : int
        ``D``, feature size of ``z``.
    space_filling : bool, default False
        The SF estimator per codebook, after a composite-DiVeQ warm-up.
    """


class ProductDiVeQ(_Quantizer):
    jax_layer = dq.ProductDiVeQ
    __doc__ = (
        "Product DiVeQ (:class:`diveq.backends.jax.ProductDiVeQ`) as an NNX module.\n"
        + _COMPOSITE
        + _doc("ProductDiVeQ", _REPLACE + " " + _WARMUP, True)
    )

    def __init__(
        self,
        num_codebooks: int,
        num_codes: int,
        dim: int,
        *,
        rngs: nnx.Rngs,
        space_filling: bool = False,
        rng_collection: str = "diveq",
        deterministic: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(
            num_codebooks,
            num_codes,
            dim,
            rngs=rngs,
            space_filling=space_filling,
            rng_collection=rng_collection,
            deterministic=deterministic,
            **options,
        )


class ResidualDiVeQ(_Quantizer):
    jax_layer = dq.ResidualDiVeQ
    __doc__ = (
        "Residual DiVeQ (:class:`diveq.backends.jax.ResidualDiVeQ`) as an NNX module.\n"
        + _COMPOSITE
        + _doc("ResidualDiVeQ", _REPLACE + " " + _WARMUP, True)
    )

    def __init__(
        self,
        num_codebooks: int,
        num_codes: int,
        dim: int,
        *,
        rngs: nnx.Rngs,
        space_filling: bool = False,
        rng_collection: str = "diveq",
        deterministic: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(
            num_codebooks,
            num_codes,
            dim,
            rngs=rngs,
            space_filling=space_filling,
            rng_collection=rng_collection,
            deterministic=deterministic,
            **options,
        )


class EMAVQ(nnx.Module):
    """:class:`diveq.backends.jax.EMAVQ` (an EMA codebook) as an ``nnx.Module``.

    The codebook, cluster sizes and embedding sums are :class:`VQState` variables, none an
    ``nnx.Param``: an ``nnx.Optimizer(..., wrt=nnx.Param)`` leaves them alone, and every
    train-mode call writes the EMA step back in place. Add ``output.loss`` (the commitment
    term) to the training loss.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    rngs : nnx.Rngs
        Its ``params`` stream draws the initial codebook.
    deterministic : bool, default False
        No state change (``model.eval()`` sets it, ``model.train()`` clears it).
    **options
        The options of :class:`diveq.backends.jax.EMAVQ` (``decay``, ``eps``, ``beta``,
        ``feature_axis``, ``codebook_init``, ``axis_name``, ``dtype``).
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        rngs: nnx.Rngs,
        deterministic: bool = False,
        **options: Any,
    ) -> None:
        self.layer = dq.EMAVQ(num_codes, dim, **options)
        state = self.layer.init(rngs.params())
        self.codebook, self.cluster_size, self.embed_sum = (VQState(x) for x in state)
        self.deterministic = deterministic

    def layer_state(self) -> EMAState:
        """The module's state as the JAX layer's :class:`~diveq.EMAState`."""
        return EMAState(self.codebook[...], self.cluster_size[...], self.embed_sum[...])

    def __call__(
        self, z: jax.Array, *, mask: jax.Array | None = None, deterministic: bool | None = None
    ) -> EMALayerOutput:
        """Quantise ``z``; in training also the EMA step, written back in place.

        Parameters
        ----------
        z : jax.Array
            Latents with ``dim`` features on ``feature_axis``.
        mask : jax.Array of bool, optional
            As for :meth:`diveq.backends.jax.EMAVQ.apply`.
        deterministic : bool, optional
            Overrides the module's ``deterministic``.

        Returns
        -------
        EMALayerOutput
            ``(values, indices, perplexity, loss)``.
        """
        hard = self.deterministic if deterministic is None else deterministic
        out, new = self.layer.apply(self.layer_state(), z, mask=mask, train=not hard)
        if not hard:
            self.codebook[...], self.cluster_size[...], self.embed_sum[...] = new
        return out


class GumbelVQ(nnx.Module):
    """:class:`diveq.backends.jax.GumbelVQ` (the Gumbel-softmax baseline) as an ``nnx.Module``.

    The codebook is an ``nnx.Param``, the layer's only state: a call changes nothing, the
    optimiser trains it. Anneal the temperature by passing ``tau`` to each call, as an array
    argument of the jitted step (``jnp.asarray(diveq.gumbel_temperature(step))``), so that it
    is traced, not compiled in. No ``encode`` / ``decode``: ``indices`` are those of the sampled
    (training) or nearest (eval) codewords.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    rngs : nnx.Rngs
        Its ``params`` stream draws the codebook; a fork of its ``rng_collection`` stream
        gives the Gumbel draws, one key per training call.
    rng_collection : str, default "diveq"
        Stream name (``nnx.Rngs`` falls back to its ``default`` stream).
    deterministic : bool, default False
        The nearest codeword, no draws (``model.eval()`` sets it, ``model.train()`` clears it).
    **options
        The options of :class:`diveq.backends.jax.GumbelVQ` (``tau``, the default temperature;
        ``hard``, ``feature_axis``, ``codebook_init``, ``dtype``), same names and defaults.

    Attributes
    ----------
    codebook : nnx.Param
        The codebook, ``(K, D)``.
    layer : diveq.backends.jax.GumbelVQ
        The JAX layer (a frozen config) that does the work.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        rngs: nnx.Rngs,
        rng_collection: str = "diveq",
        deterministic: bool = False,
        **options: Any,
    ) -> None:
        self.layer = dq.GumbelVQ(num_codes, dim, **options)
        self.codebook = nnx.Param(self.layer.init(rngs.params()).codebook)
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        self.rngs = rngs[rng_collection].fork()

    def layer_state(self) -> GumbelState:
        """The module's state as the JAX layer's :class:`~diveq.GumbelState`."""
        return GumbelState(self.codebook[...])

    def __call__(
        self,
        z: jax.Array,
        *,
        mask: jax.Array | None = None,
        tau: float | jax.Array | None = None,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> LayerOutput:
        """Quantise ``z``: a Gumbel-softmax sample in training, the nearest codeword otherwise.

        Parameters
        ----------
        z : jax.Array
            Latents with ``dim`` features on ``feature_axis``.
        mask : jax.Array of bool, optional
            As for :meth:`diveq.backends.jax.GumbelVQ.apply`.
        tau : float or jax.Array, optional
            Temperature of this call (default: the ``tau`` option); an array is traced.
        deterministic : bool, optional
            Overrides the module's ``deterministic``.
        rngs : nnx.Rngs, nnx.RngStream or jax.Array, optional
            Overrides the module's stream for this call's draws.

        Returns
        -------
        LayerOutput
            ``(values, indices, perplexity)``.

        Raises
        ------
        ValueError
            As :meth:`diveq.backends.jax.GumbelVQ.apply` raises (feature size, mask, ``tau``).
        """
        book = self.codebook[...]
        if self.deterministic if deterministic is None else deterministic:
            return gumbel_output(self.layer, book, z, key=None, mask=mask, train=False, tau=tau)
        key = _call_key(self.rngs, self.rng_collection, rngs)
        return gumbel_output(self.layer, book, z, key=key, mask=mask, train=True, tau=tau)
