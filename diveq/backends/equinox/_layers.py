"""The Equinox modules and their write-back helper (see :mod:`diveq.backends.equinox`)."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp

import diveq.backends.jax as dq
from diveq._types import Quantized, SFQuantized
from diveq.backends.jax._layer import AnyState, Layer, Output
from diveq.backends.jax._rewrites import check_written_back, fold_rows

__all__ = ["DiVeQ", "ProductDiVeQ", "ResidualDiVeQ", "SFDiVeQ", "write_back"]

_HELPER = "model, state = diveq.backends.equinox.write_back(model, state)"

Model = TypeVar("Model")


class _Quantizer(eqx.nn.StatefulLayer):
    """The Equinox layer around one JAX layer; the concrete classes name the layer and
    declare the codebook field (``codebook`` or ``codebooks``)."""

    jax_layer: ClassVar[type[Layer]]
    layer: Layer = eqx.field(static=True)
    index: eqx.nn.StateIndex
    inference: bool

    def __init__(self, *args: Any, key: jax.Array, inference: bool = False, **options: Any):
        self.layer = self.jax_layer(*args, **options)
        state = self.layer.init(key)
        setattr(self, state._fields[0], state[0])
        # The state keeps the whole layer state; its codebook is the last call's (rewrites).
        self.index = eqx.nn.StateIndex(state)
        self.inference = inference

    @property
    def params(self) -> jax.Array:
        """The trainable codebook(s)."""
        return getattr(self, "codebooks" if self.layer.spec.composite else "codebook")

    def layer_state(self, state: eqx.nn.State) -> AnyState:
        """This layer's state as the JAX layer's state pytree, with the model's codebook(s).

        Parameters
        ----------
        state : eqx.nn.State
            The model state.

        Returns
        -------
        State or CompositeState
            Ready for ``module.layer.apply`` / ``encode`` / ``decode``.
        """
        own = state.get(self.index)
        return own._replace(**{own._fields[0]: self.params})

    def __call__(
        self,
        z: jax.Array,
        state: eqx.nn.State,
        *,
        key: jax.Array | None = None,
        mask: jax.Array | None = None,
        inference: bool | None = None,
    ) -> tuple[Output, eqx.nn.State]:
        """Quantise ``z``; in training also advance this layer's part of ``state``.

        Parameters
        ----------
        z : jax.Array
            Latents with ``dim`` features on ``feature_axis``; the whole batch (any leading
            axes), not one example inside a ``vmap``.
        state : eqx.nn.State
            The model state (``eqx.nn.make_with_state``).
        key : jax.Array, optional
            The call's training draws (noise, SF dither, replacement donors).
        mask : jax.Array of bool, optional
            As for :meth:`diveq.backends.jax.DiVeQ.apply`.
        inference : bool, optional
            Overrides the ``inference`` field: True is the hard inference, ``state`` returned
            unchanged.

        Returns
        -------
        output : LayerOutput or SFLayerOutput
            ``(values, indices, perplexity)`` (space-filling layers add ``weights``).
        state : eqx.nn.State
            The updated model state.

        Raises
        ------
        ValueError
            If the rows rewritten by the previous call were not written back with
            :func:`write_back` (under JIT: a runtime error with this message), or as
            :meth:`diveq.backends.jax.DiVeQ.apply` raises.
        """
        own = self.layer_state(state)
        check_written_back(own.replaced, _HELPER)
        if self.inference if inference is None else inference:
            return self.layer.apply(own, z, mask=mask, train=False)[0], state
        out, new = self.layer.apply(own, z, key=key, mask=mask)
        return out, state.set(self.index, new)

    def encode(
        self, z: jax.Array, state: eqx.nn.State, *, mask: jax.Array | None = None
    ) -> Quantized | SFQuantized:
        """Hard inference with the full result; see :meth:`diveq.backends.jax.DiVeQ.encode`.

        Parameters
        ----------
        z : jax.Array
            Latents.
        state : eqx.nn.State
            The model state.
        mask : jax.Array of bool, optional
            Rows to quantise.

        Returns
        -------
        Quantized or SFQuantized
            Values and codes (SF layers: segment weights too).
        """
        own = self.layer_state(state)
        check_written_back(own.replaced, _HELPER)
        return self.layer.encode(own, z, mask=mask)

    def decode(
        self, indices: jax.Array, state: eqx.nn.State, weights: jax.Array | None = None
    ) -> jax.Array:
        """Vectors from codes; see :meth:`diveq.backends.jax.DiVeQ.decode`.

        Parameters
        ----------
        indices : jax.Array of int
            Codes from :meth:`encode` or a call.
        state : eqx.nn.State
            The model state.
        weights : jax.Array, optional
            Segment positions (SF layers).

        Returns
        -------
        jax.Array
            The decoded vectors.
        """
        own = self.layer_state(state)
        check_written_back(own.replaced, _HELPER)
        return self.layer.decode(own, indices, weights)


def _quantizers(model: Any) -> list[_Quantizer]:
    leaves = jax.tree.leaves(model, is_leaf=lambda x: isinstance(x, _Quantizer))
    return [x for x in leaves if isinstance(x, _Quantizer)]


def write_back(model: Model, state: eqx.nn.State) -> tuple[Model, eqx.nn.State]:
    """Fold the codebook rows that the last train-mode calls rewrote into ``model``.

    Call it once per training step, after the forward / backward pass and before the
    optimiser update (as the plain JAX layers apply the update to the codebook of the new
    state). It finds every diveq layer in ``model``, so one call serves a whole model. Pure:
    fine under ``eqx.filter_jit`` and ``eqx.filter_vmap``.

    Parameters
    ----------
    model : PyTree
        A model containing diveq Equinox layers.
    state : eqx.nn.State
        The model state after the training step.

    Returns
    -------
    model : PyTree
        With the rewritten codebook rows.
    state : eqx.nn.State
        With the ``replaced`` masks cleared (nothing pending).
    """
    layers = _quantizers(model)
    books = []
    for layer in layers:
        own = state.get(layer.index)
        books.append(fold_rows(layer.params, own[0], own.replaced))
        state = state.set(layer.index, own._replace(replaced=jnp.zeros_like(own.replaced)))
    if layers:
        model = eqx.tree_at(lambda m: [x.params for x in _quantizers(m)], model, books)
    return model, state


_OPTIONS = """key : jax.Array
        Draws the initial codebook.
    inference : bool, default False
        Hard inference, no state change (``eqx.nn.inference_mode`` sets it).
    **options
        The options of :class:`diveq.backends.jax.{name}` (``noise_std``, {more}
        ``feature_axis``, ``codebook_init``, ``axis_name``, ``dtype``), same names and
        defaults.

    Attributes
    ----------
    {book} : jax.Array
        The codebook{s}, ``{shape}``: the only trainable leaf.
    index : eqx.nn.StateIndex
        This layer's entry in the model state: the :class:`diveq.backends.jax.{state}` of the
        last call (its codebook holds that call's rewrites until :func:`write_back`).
    layer : diveq.backends.jax.{name}
        The JAX layer (a frozen config) that does the work.
"""
_REPLACE = "``replacement_iters``, ``discard_threshold``, ``perturb_eps``,"
_WARMUP = "``skip_iters``, ``avg_iters``, ``rows_per_call``,"


def _doc(head: str, name: str, more: str, composite: bool) -> str:
    return head + _OPTIONS.format(
        name=name,
        more=more,
        book="codebooks" if composite else "codebook",
        s="s" if composite else "",
        shape="(M, K, D')" if composite else "(K, D)",
        state="CompositeState" if composite else "State",
    )


_SINGLE = """{title}

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords{k2}.
    dim : int
        ``D``, feature size.
    """
_COMPOSITE = """{title}

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


class DiVeQ(_Quantizer):
    __doc__ = _doc(
        _SINGLE.format(
            title="DiVeQ with one codebook (:class:`diveq.backends.jax.DiVeQ`) as an Equinox "
            "layer.",
            k2="",
        ),
        "DiVeQ",
        _REPLACE,
        False,
    )
    jax_layer = dq.DiVeQ
    codebook: jax.Array

    def __init__(
        self, num_codes: int, dim: int, *, key: jax.Array, inference: bool = False, **options: Any
    ):
        super().__init__(num_codes, dim, key=key, inference=inference, **options)


class SFDiVeQ(_Quantizer):
    __doc__ = _doc(
        _SINGLE.format(
            title="Space-filling DiVeQ with the SF warm-up (:class:`diveq.backends.jax.SFDiVeQ`)"
            " as an Equinox layer.",
            k2=" (``>= 2``, polyline vertices)",
        ),
        "SFDiVeQ",
        _WARMUP,
        False,
    )
    jax_layer = dq.SFDiVeQ
    codebook: jax.Array

    def __init__(
        self, num_codes: int, dim: int, *, key: jax.Array, inference: bool = False, **options: Any
    ):
        super().__init__(num_codes, dim, key=key, inference=inference, **options)


class ProductDiVeQ(_Quantizer):
    __doc__ = _doc(
        _COMPOSITE.format(
            title="Product DiVeQ (:class:`diveq.backends.jax.ProductDiVeQ`) as an Equinox layer."
        ),
        "ProductDiVeQ",
        _REPLACE + " " + _WARMUP,
        True,
    )
    jax_layer = dq.ProductDiVeQ
    codebooks: jax.Array

    def __init__(
        self,
        num_codebooks: int,
        num_codes: int,
        dim: int,
        *,
        key: jax.Array,
        space_filling: bool = False,
        inference: bool = False,
        **options: Any,
    ):
        super().__init__(
            num_codebooks,
            num_codes,
            dim,
            key=key,
            space_filling=space_filling,
            inference=inference,
            **options,
        )


class ResidualDiVeQ(_Quantizer):
    __doc__ = _doc(
        _COMPOSITE.format(
            title="Residual DiVeQ (:class:`diveq.backends.jax.ResidualDiVeQ`) as an Equinox layer."
        ),
        "ResidualDiVeQ",
        _REPLACE + " " + _WARMUP,
        True,
    )
    jax_layer = dq.ResidualDiVeQ
    codebooks: jax.Array

    def __init__(
        self,
        num_codebooks: int,
        num_codes: int,
        dim: int,
        *,
        key: jax.Array,
        space_filling: bool = False,
        inference: bool = False,
        **options: Any,
    ):
        super().__init__(
            num_codebooks,
            num_codes,
            dim,
            key=key,
            space_filling=space_filling,
            inference=inference,
            **options,
        )
