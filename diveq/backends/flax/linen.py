"""Flax Linen modules: the diveq layers as ``linen.Module``\\ s, plus :func:`write_back`.

Each module builds a JAX layer of :mod:`diveq.backends.jax` from its fields (``module.layer``)
and keeps that layer's state in Linen variables: the codebook(s) in ``params``, everything else
in the :data:`COLLECTION` (``"diveq"``) collection; the training draws come from the
``rng_collection`` RNG stream (default ``"diveq"``). A train-mode apply needs
``mutable=["diveq"]``.

Linen parameters cannot be written by a module, so the codebook rows that dead-code
replacement or the SF warm-up init rewrite wait in the ``diveq`` collection (its ``replaced``
mask and ``rewrites``) until :func:`write_back` folds them into ``params``, once per training
step, before the optimiser update::

    @jax.jit
    def step(params, vq_state, opt_state, x, key):
        def loss_fn(params):
            variables, rngs = {"params": params, "diveq": vq_state}, {"diveq": key}
            y, updated = model.apply(variables, x, rngs=rngs, mutable=["diveq"])
            return jnp.mean((y - x) ** 2), updated["diveq"]

        (loss, vq_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        params, vq_state = dql.write_back(params, vq_state)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), vq_state, opt_state, loss

A call that finds rows still pending raises (``ValueError`` eagerly; under ``jax.jit`` a
runtime error with the same message), so a forgotten write-back is never silent.
``model.init`` runs the quantisers in inference mode and leaves the state fresh.
:class:`GumbelVQ` has no state but ``params/codebook`` (no ``diveq`` collection, nothing to
write back) and takes its temperature per call; :class:`EMAVQ` keeps its whole state, codebook
included, in the ``diveq`` collection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar, TypeVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from flax.core import FrozenDict

import diveq.backends.jax as dq
from diveq._checkpoint import from_signature
from diveq._types import EMALayerOutput, EMAState, LayerOutput, Quantized, SFQuantized
from diveq.backends.jax._gumbel import gumbel_output
from diveq.backends.jax._layer import AnyState, Layer, Output
from diveq.backends.jax._rewrites import check_written_back, fold_rows

__all__ = [
    "COLLECTION",
    "EMAVQ",
    "DiVeQ",
    "GumbelVQ",
    "ProductDiVeQ",
    "ResidualDiVeQ",
    "SFDiVeQ",
    "release_warmup",
    "write_back",
]

#: The variable collection holding every diveq module's counters, warm-up rows and rewrites.
COLLECTION = "diveq"
_HELPER = "params, vq_state = diveq.backends.flax.linen.write_back(params, vq_state)"
_REWRITES = "rewrites"
_BUFFER = ("buffer", "buffer_valid")

Tree = TypeVar("Tree", bound=Mapping)
Config = TypeVar("Config")


class _Quantizer(nn.Module):
    """The Linen module around one JAX layer; the concrete classes declare its fields."""

    jax_layer: ClassVar[type[Layer]]

    @property
    def layer(self) -> Layer:
        """The JAX layer these fields configure."""
        return _configured(self, self.jax_layer)

    def _dq_variables(self, layer: Layer) -> tuple[Any, dict[str, Any]]:
        fresh: list[AnyState] = []

        def initial() -> AnyState:
            if not fresh:  # the counters need no key; the codebook is the param's
                fresh.append(layer.init(jax.random.key(0)))
            return fresh[0]

        book = self.param(_book(layer), lambda key: layer.init(key)[0])
        fresh_state = initial()
        names = [n for n in fresh_state._fields[1:] if getattr(fresh_state, n) is not None]
        if not self.is_initializing() and not self.has_variable(COLLECTION, "buffer"):
            names = [n for n in names if n not in _BUFFER]  # dropped by release_warmup
        state = {n: self.variable(COLLECTION, n, lambda n=n: getattr(initial(), n)) for n in names}
        state[_REWRITES] = self.variable(COLLECTION, _REWRITES, lambda: jnp.zeros_like(book))
        return book, state

    def _dq_state(self, layer: Layer, book: jax.Array, variables: dict[str, Any]) -> AnyState:
        state_type = dq.CompositeState if layer.spec.composite else dq.State
        values: dict[str, Any] = {n: None for n in state_type._fields}
        values.update({n: v.value for n, v in variables.items() if n in values})
        values[state_type._fields[0]] = book
        return state_type(**values)

    @nn.compact
    def __call__(
        self, z: jax.Array, *, mask: jax.Array | None = None, deterministic: bool | None = None
    ) -> Output:
        """Quantise ``z``; in training also advance the state in the ``diveq`` collection.

        Parameters
        ----------
        z : jax.Array
            Latents with ``dim`` features on ``feature_axis``.
        mask : jax.Array of bool, optional
            As for :meth:`diveq.backends.jax.DiVeQ.apply`.
        deterministic : bool, optional
            Overrides the module's ``deterministic`` field: True is the hard inference and
            changes no state.

        Returns
        -------
        LayerOutput or SFLayerOutput
            ``(values, indices, perplexity)`` (space-filling layers add ``weights``).

        Raises
        ------
        ValueError
            If the rows rewritten by the previous call were not written back with
            :func:`write_back` (under ``jax.jit``: a runtime error with this message).
        """
        layer = self.layer
        book, variables = self._dq_variables(layer)
        check_written_back(variables["replaced"].value, _HELPER)
        state = self._dq_state(layer, book, variables)
        hard = self.deterministic if deterministic is None else deterministic
        if hard or self.is_initializing():
            return layer.apply(state, z, mask=mask, train=False)[0]
        out, new = layer.apply(state, z, key=self.make_rng(self.rng_collection), mask=mask)
        for name, var in variables.items():
            var.value = new[0] if name == _REWRITES else getattr(new, name)
        return out

    def encode(self, z: jax.Array, *, mask: jax.Array | None = None) -> Quantized | SFQuantized:
        """Hard inference with the full result; see :meth:`diveq.backends.jax.DiVeQ.encode`.

        Call it through ``model.apply(variables, z, method=...)``.

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
        layer = self.layer
        book: jax.Array = self.get_variable("params", _book(layer))
        return layer.encode(self._hard_state(layer, book), z, mask=mask)

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
        layer = self.layer
        book: jax.Array = self.get_variable("params", _book(layer))
        return layer.decode(self._hard_state(layer, book), indices, weights)

    def _hard_state(self, layer: Layer, book: jax.Array) -> AnyState:
        replaced: jax.Array | None = self.get_variable(COLLECTION, "replaced")
        if replaced is not None:
            check_written_back(replaced, _HELPER)
        fresh = layer.init(jax.random.key(0))
        return fresh._replace(**{fresh._fields[0]: book})


def _configured(module: nn.Module, jax_layer: type[Config]) -> Config:
    """The JAX layer ``jax_layer`` with the options of the same names from ``module``'s fields."""
    names = [f.name for f in dataclasses.fields(jax_layer)]  # type: ignore[arg-type]
    return jax_layer(**{name: getattr(module, name) for name in names})


def _book(layer: Layer) -> str:
    return "codebooks" if layer.spec.composite else "codebook"


def write_back(params: Tree, state: Tree) -> tuple[Tree, Tree]:
    """Fold the codebook rows that the last train-mode calls rewrote into ``params``.

    Call it once per training step, after the apply and before the optimiser update, as the
    plain JAX layers apply the update to the codebook of the new state. It finds every diveq
    module in the trees by its path, so one call serves a whole model. Pure: fine under
    ``jax.jit`` and ``jax.vmap``.

    Parameters
    ----------
    params : Mapping
        The ``params`` collection (dict or ``FrozenDict``).
    state : Mapping
        The ``diveq`` collection as returned by the train-mode apply.

    Returns
    -------
    params : Mapping
        With the rewritten codebook rows.
    state : Mapping
        With the ``replaced`` masks cleared (nothing pending).

    Raises
    ------
    KeyError
        If a module's state in ``state`` has no codebook at the same path in ``params``.
    """
    flat_state = traverse_util.flatten_dict(_plain(state))
    flat_params = traverse_util.flatten_dict(_plain(params))
    for key in [k for k in flat_state if k[-1] == "replaced"]:
        path, replaced = key[:-1], flat_state[key]
        name = next(
            ((*path, n) for n in ("codebook", "codebooks") if (*path, n) in flat_params), None
        )
        if name is None:
            raise KeyError(f"no codebook in `params` at {'/'.join(path)} for its diveq state")
        rewrites_key = (*path, _REWRITES)
        rewrites = flat_state[rewrites_key]
        flat_params[name] = fold_rows(flat_params[name], rewrites, replaced)
        flat_state[key] = jnp.zeros_like(replaced)
    return _like(params, flat_params), _like(state, flat_state)


def release_warmup(state: Tree) -> Tree:
    """Drop the SF warm-up buffers whose init has happened from the ``diveq`` collection.

    The buffer (``avg_iters * rows_per_call`` rows) is dead weight after the warm-up init;
    the modules run without it from then on, and a jitted step retraces once. Call it
    outside ``jax.jit``, e.g. once ``skip_iters`` steps have run. Modules without a buffer,
    or whose warm-up is still running, are left as they are.

    Parameters
    ----------
    state : Mapping
        The ``diveq`` collection (dict or ``FrozenDict``).

    Returns
    -------
    Mapping
        ``state`` without the finished modules' ``buffer`` and ``buffer_valid``.
    """
    flat = traverse_util.flatten_dict(_plain(state))
    for key in [k for k in flat if k[-1] == "buffer"]:
        signature, calls = (*key[:-1], "signature"), (*key[:-1], "calls")
        codes = np.asarray(jax.device_get(flat[signature]))
        skip_iters = from_signature(codes.reshape(-1, codes.shape[-1])[0])["skip_iters"]
        if np.min(jax.device_get(flat[calls])) >= skip_iters - 1:
            for name in _BUFFER:
                entry = (*key[:-1], name)
                del flat[entry]
    return _like(state, flat)


def _plain(tree: Mapping) -> dict:
    return tree.unfreeze() if isinstance(tree, FrozenDict) else dict(tree)


def _like(original: Any, flat: dict) -> Any:
    tree = traverse_util.unflatten_dict(flat)
    return FrozenDict(tree) if isinstance(original, FrozenDict) else tree


_OPTIONS = """noise_std, feature_axis, codebook_init, axis_name, dtype
        As for :class:`diveq.backends.jax.{name}` (same names and defaults).
    deterministic : bool, default False
        Hard inference, no state change; can be overridden per call.
    rng_collection : str, default "diveq"
        The RNG stream of the training draws (``rngs={{"diveq": key}}`` in ``apply``).

    Notes
    -----
    Variables: ``params/{book}``; ``diveq/calls``, ``hits``, ``calls_used``, ``replaced``,
    ``rewrites`` and, with a warm-up buffer, ``buffer`` and ``buffer_valid`` (see
    :class:`diveq.backends.jax.{state}`). Call the module on the whole batch (any leading
    axes), not inside a per-example ``vmap``.
"""


class DiVeQ(_Quantizer):
    __doc__ = """DiVeQ with one codebook (:class:`diveq.backends.jax.DiVeQ`) as a Linen module.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    replacement_iters, discard_threshold, perturb_eps
        Dead-code replacement, as for :class:`diveq.backends.jax.DiVeQ`.
    """ + _OPTIONS.format(name="DiVeQ", book="codebook", state="State")
    jax_layer = dq.DiVeQ

    num_codes: int
    dim: int
    noise_std: float = 1e-3
    replacement_iters: int | None = 100
    discard_threshold: float = 0.01
    perturb_eps: float = 1e-9
    feature_axis: int = -1
    codebook_init: str = "symmetric"
    axis_name: Hashable | None = None
    dtype: Any = jnp.float32
    deterministic: bool = False
    rng_collection: str = "diveq"


class SFDiVeQ(_Quantizer):
    __doc__ = """Space-filling DiVeQ with the SF warm-up (:class:`diveq.backends.jax.SFDiVeQ`) as
    a Linen module.

    Parameters
    ----------
    num_codes : int
        ``K >= 2``, number of codewords (polyline vertices).
    dim : int
        ``D``, feature size.
    skip_iters, avg_iters, rows_per_call
        The SF warm-up, as for :class:`diveq.backends.jax.SFDiVeQ`.
    """ + _OPTIONS.format(name="SFDiVeQ", book="codebook", state="State")
    jax_layer = dq.SFDiVeQ

    num_codes: int
    dim: int
    noise_std: float = 1e-3
    skip_iters: int = 1000
    avg_iters: int = 50
    rows_per_call: int | None = None
    feature_axis: int = -1
    codebook_init: str = "symmetric"
    axis_name: Hashable | None = None
    dtype: Any = jnp.float32
    deterministic: bool = False
    rng_collection: str = "diveq"


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
    replacement_iters, discard_threshold, perturb_eps, skip_iters, avg_iters, rows_per_call
        As for :class:`diveq.backends.jax.{name}`.
    """


class ProductDiVeQ(_Quantizer):
    __doc__ = (
        "Product DiVeQ (:class:`diveq.backends.jax.ProductDiVeQ`) as a Linen module.\n"
        + _COMPOSITE.format(name="ProductDiVeQ")
        + _OPTIONS.format(name="ProductDiVeQ", book="codebooks", state="CompositeState")
    )
    jax_layer = dq.ProductDiVeQ

    num_codebooks: int
    num_codes: int
    dim: int
    space_filling: bool = False
    noise_std: float = 1e-3
    replacement_iters: int | None = 100
    discard_threshold: float = 0.01
    perturb_eps: float = 1e-9
    skip_iters: int = 1000
    avg_iters: int = 50
    rows_per_call: int | None = None
    feature_axis: int = -1
    codebook_init: str = "symmetric"
    axis_name: Hashable | None = None
    dtype: Any = jnp.float32
    deterministic: bool = False
    rng_collection: str = "diveq"


class ResidualDiVeQ(_Quantizer):
    __doc__ = (
        "Residual DiVeQ (:class:`diveq.backends.jax.ResidualDiVeQ`) as a Linen module.\n"
        + _COMPOSITE.format(name="ResidualDiVeQ")
        + _OPTIONS.format(name="ResidualDiVeQ", book="codebooks", state="CompositeState")
    )
    jax_layer = dq.ResidualDiVeQ

    num_codebooks: int
    num_codes: int
    dim: int
    space_filling: bool = False
    noise_std: float = 1e-3
    replacement_iters: int | None = 100
    discard_threshold: float = 0.01
    perturb_eps: float = 1e-9
    skip_iters: int = 1000
    avg_iters: int = 50
    rows_per_call: int | None = None
    feature_axis: int = -1
    codebook_init: str = "symmetric"
    axis_name: Hashable | None = None
    dtype: Any = jnp.float32
    deterministic: bool = False
    rng_collection: str = "diveq"


class EMAVQ(nn.Module):
    """:class:`diveq.backends.jax.EMAVQ` (an EMA codebook) as a Linen module.

    The codebook, cluster sizes and embedding sums live in the ``"diveq"`` collection, not in
    ``params`` (nothing to optimise, no ``write_back``); a train-mode apply needs
    ``mutable=["diveq"]``. ``model.init`` leaves the state fresh. Add ``output.loss`` (the
    commitment term) to the training loss.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    decay, eps, beta, feature_axis, codebook_init, axis_name, dtype
        As for :class:`diveq.backends.jax.EMAVQ`.
    deterministic : bool, default False
        No state change.
    """

    num_codes: int
    dim: int
    decay: float = 0.99
    eps: float = 1e-5
    beta: float = 0.25
    feature_axis: int = -1
    codebook_init: str = "symmetric"
    axis_name: Hashable | None = None
    dtype: Any = jnp.float32
    deterministic: bool = False

    @property
    def layer(self) -> dq.EMAVQ:
        """The JAX layer these fields configure."""
        return _configured(self, dq.EMAVQ)

    @nn.compact
    def __call__(
        self, z: jax.Array, *, mask: jax.Array | None = None, deterministic: bool | None = None
    ) -> EMALayerOutput:
        """Quantise ``z``; in training also the EMA step in the ``diveq`` collection.

        Parameters
        ----------
        z : jax.Array
            Latents with ``dim`` features on ``feature_axis``.
        mask : jax.Array of bool, optional
            As for :meth:`diveq.backends.jax.EMAVQ.apply`.
        deterministic : bool, optional
            Overrides the module's ``deterministic`` field.

        Returns
        -------
        EMALayerOutput
            ``(values, indices, perplexity, loss)``.
        """
        layer = self.layer
        fresh: list[EMAState] = []

        def initial(field: int) -> jax.Array:
            if not fresh:
                fresh.append(layer.init(self.make_rng("params")))
            return fresh[0][field]

        names = EMAState._fields
        variables = [self.variable(COLLECTION, n, initial, i) for i, n in enumerate(names)]
        state = EMAState(*(v.value for v in variables))
        hard = self.deterministic if deterministic is None else deterministic
        train = not (hard or self.is_initializing())
        out, new = layer.apply(state, z, mask=mask, train=train)
        if train:
            for var, value in zip(variables, new, strict=True):
                var.value = value
        return out


class GumbelVQ(nn.Module):
    """:class:`diveq.backends.jax.GumbelVQ` (the Gumbel-softmax baseline) as a Linen module.

    The codebook, the layer's only state, is ``params/codebook``: there is no ``diveq``
    collection, nothing to mark mutable and no :func:`write_back`; the Gumbel draws come from
    the ``rng_collection`` stream. Anneal the temperature by passing ``tau`` to each apply, as
    an array argument of the jitted step (``jnp.asarray(diveq.gumbel_temperature(step))``).
    ``model.init`` runs the hard inference and needs only the ``params`` stream.

    Parameters
    ----------
    num_codes : int
        ``K``, number of codewords.
    dim : int
        ``D``, feature size.
    tau, hard, feature_axis, codebook_init, dtype
        As for :class:`diveq.backends.jax.GumbelVQ` (``tau``: the default temperature).
    deterministic : bool, default False
        The nearest codeword, no draws; can be overridden per call.
    rng_collection : str, default "diveq"
        The RNG stream of the Gumbel draws (``rngs={"diveq": key}`` in ``apply``).
    """

    num_codes: int
    dim: int
    tau: float = 1.0
    hard: bool = False
    feature_axis: int = -1
    codebook_init: str = "symmetric"
    dtype: Any = jnp.float32
    deterministic: bool = False
    rng_collection: str = "diveq"

    @property
    def layer(self) -> dq.GumbelVQ:
        """The JAX layer these fields configure."""
        return _configured(self, dq.GumbelVQ)

    @nn.compact
    def __call__(
        self,
        z: jax.Array,
        *,
        mask: jax.Array | None = None,
        tau: float | jax.Array | None = None,
        deterministic: bool | None = None,
    ) -> LayerOutput:
        """Quantise ``z``: a Gumbel-softmax sample in training, the nearest codeword otherwise.

        Parameters
        ----------
        z : jax.Array
            Latents with ``dim`` features on ``feature_axis``.
        mask : jax.Array of bool, optional
            As for :meth:`diveq.backends.jax.GumbelVQ.apply`.
        tau : float or jax.Array, optional
            Temperature of this call (default: the ``tau`` field); an array is traced.
        deterministic : bool, optional
            Overrides the module's ``deterministic`` field.

        Returns
        -------
        LayerOutput
            ``(values, indices, perplexity)``.

        Raises
        ------
        ValueError
            As :meth:`diveq.backends.jax.GumbelVQ.apply` raises (feature size, mask, ``tau``).
        """
        layer = self.layer
        book = self.param("codebook", lambda key: layer.init(key).codebook)
        hard = self.deterministic if deterministic is None else deterministic
        train = not (hard or self.is_initializing())
        key = self.make_rng(self.rng_collection) if train else None
        return gumbel_output(layer, book, z, key=key, mask=mask, train=train, tau=tau)
