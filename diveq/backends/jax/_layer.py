"""The JAX side of every layer: the state pytree, ``lax.cond``, ``axis_name`` collectives and
keys. The layer logic itself is the core's (:mod:`diveq.core._layer_step`,
:mod:`diveq.core._layer_rows`), shared with the torch layers.

Internally every layer works on stacked codebooks ``(M, K, D')`` and codes ``(N, M)``; a
one-codebook layer is ``M = 1``. A concrete layer (see :mod:`._layers`) only declares its fields.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from diveq._types import LayerDraws, LayerOutput, Quantized, SFLayerOutput, SFQuantized
from diveq.backends.jax import _signature as sig
from diveq.backends.jax import _warmup as warm
from diveq.backends.jax._config import Config
from diveq.backends.jax._functions import FUNCTIONS, draw_dtype
from diveq.backends.jax._state import CompositeState, State, from_bits, to_bits
from diveq.core import _layer_rows as rows_
from diveq.core import _layer_step as step
from diveq.core import warmup_initialises, warmup_quantizes

__all__ = ["AnyState", "Layer"]

AnyState = State | CompositeState
Output = LayerOutput | SFLayerOutput


def _traced(*arrays: Any) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in arrays)


def _rewritten(old: jax.Array, new: jax.Array) -> jax.Array:
    """Rows ``(M, K)`` whose bits changed (NaN rows left alone count as unchanged)."""
    old, new = to_bits(lax.stop_gradient(old)), to_bits(new)
    return jnp.any(old != new, axis=-1)


# A layer call is compiled once per layer, shape and phase (as the functions are), so eager
# calls do not re-trace ``lax.cond`` branches op by op; inside a user's ``jit`` it is inlined.
@functools.partial(jax.jit, static_argnums=(0,))
def _infer(layer: Layer, state: Any, z: jax.Array, mask: jax.Array | None) -> Any:
    return layer._infer_call(state, z, mask)


@functools.partial(jax.jit, static_argnums=(0, 6))
def _train(layer: Layer, state: Any, z: Any, key: Any, mask: Any, draws: Any, warming: bool) -> Any:
    return layer._train_call(state, z, key, mask, draws, warming)


class Layer(Config):
    """``init`` / ``apply`` / ``encode`` / ``decode`` shared by every JAX layer."""

    # -- state ---------------------------------------------------------------------------------
    def init(self, key: jax.Array) -> AnyState:
        """A fresh state: codebook(s) from ``codebook_init``, zero counters, an empty warm-up
        buffer (``None`` for layers without one).

        Parameters
        ----------
        key : jax.Array
            A :func:`jax.random.key` for the codebook draw.

        Returns
        -------
        State or CompositeState
            The layer state (a pytree).
        """
        s = self.spec
        low, high = s.init_bounds
        shape = (s.num_codebooks, s.num_codes, s.width)
        books = jax.random.uniform(key, shape, dtype=self.dtype, minval=low, maxval=high)
        counters = jnp.zeros(shape[:2], dtype=int)
        rows = s.warmup_slots * self._rows_per_call()
        store = None
        if rows:
            store = (to_bits(jnp.zeros((rows, *shape[::2]), self.dtype)), jnp.zeros(rows, bool))
        fresh = step.LayerState(books, jnp.zeros((), dtype=int), counters, counters, store)
        return self._pack(fresh, jnp.zeros(shape[:2], bool), sig.fresh(s))

    def _pack(self, s: step.LayerState, replaced: jax.Array, signature: jax.Array) -> AnyState:
        buffer, valid = (None, None) if s.warmup is None else s.warmup
        books = lax.stop_gradient(s.books)
        if self.spec.composite:
            return CompositeState(
                books, s.calls, s.hits, s.calls_used, replaced, buffer, valid, signature
            )
        if buffer is not None:
            buffer = buffer[:, 0, :]
        single = (books[0], s.calls, s.hits[0], s.calls_used[0], replaced[0], buffer, valid)
        return State(*single, signature)

    def check_state(self, state: AnyState) -> AnyState:
        """Check that ``state`` (e.g. restored from a checkpoint) belongs to this layer.

        :meth:`apply`, :meth:`encode` and :meth:`decode` do this themselves on concrete
        states; call it after a restore when the next use of the state is inside ``jax.jit``,
        where nothing can be read on the host.

        Parameters
        ----------
        state : State or CompositeState
            A state, possibly batched (e.g. by ``jax.vmap(layer.init)``); not traced.

        Returns
        -------
        State or CompositeState
            ``state``; relabelled with this layer's schedule when the state's differs but
            has not started it (or both schedules have finished it), as torch allows.

        Raises
        ------
        ValueError
            If the state was written by another kind of layer, with other codebook shapes,
            or mid-way through a warm-up or replacement window under another schedule; the
            message names both values.

        Examples
        --------
        >>> import jax, diveq.backends.jax as dq
        >>> state = dq.SFDiVeQ(8, 2, rows_per_call=16).init(jax.random.key(0))
        >>> try:
        ...     dq.DiVeQ(8, 2).check_state(state)
        ... except ValueError as err:
        ...     print(str(err).split(" and ")[0])
        the checkpoint was written by a layer SFDiVeQ
        """
        return sig.check(self.spec, state)

    def _unpack(self, state: AnyState) -> step.LayerState:
        books, calls, hits, used, _, buffer, valid, _ = state
        if not self.spec.composite:
            books, hits, used = books[None], hits[None], used[None]
            buffer = None if buffer is None else buffer[:, None, :]
        store = None if buffer is None else (buffer, valid)
        return step.LayerState(books, calls, hits, used, store)

    def release_warmup(self, state: AnyState) -> AnyState:
        """Drop the SF warm-up buffer once the warm-up init has happened (frees its memory).

        The returned state has ``None`` for ``buffer`` and ``buffer_valid``, so a jitted step
        recompiles once. Call it outside ``jax.jit``.

        Parameters
        ----------
        state : State or CompositeState
            A state whose warm-up init has happened.

        Returns
        -------
        State or CompositeState
            ``state`` with ``buffer`` and ``buffer_valid`` set to ``None`` (``state`` itself
            for layers without a warm-up buffer).

        Raises
        ------
        ValueError
            If the warm-up init has not happened yet (``calls < skip_iters - 1``).
        """
        if state.buffer is None:
            return state
        if not _traced(state.calls) and int(state.calls) < self.spec.skip_iters - 1:
            raise ValueError(
                f"the warm-up buffer is still needed: calls = {int(state.calls)} < "
                f"skip_iters - 1 = {self.spec.skip_iters - 1}"
            )
        return state._replace(buffer=None, buffer_valid=None)

    # -- the call ------------------------------------------------------------------------------
    def _ops(self) -> step.LayerOps:
        spec, axis = self.spec, self.axis_name
        return step.LayerOps(
            xp=jnp,
            function=FUNCTIONS.__getitem__,
            stop_gradient=lax.stop_gradient,
            cond=lax.cond,
            bincount=lambda x, length: jnp.bincount(x, length=length),
            reduce_counts=(lambda c: c) if axis is None else (lambda c: lax.psum(c, axis)),
            collect=lambda store, call, latents, valid: warm.collect(
                spec, self._rows_per_call(), store, call, latents, valid, self.dtype
            ),
            warmup_rows=lambda store: warm.gather(
                from_bits(store[0], self.dtype), store[1], spec.warmup_slots, axis
            ),
            clear_warmup=lambda store: tuple(jnp.zeros_like(x) for x in store),
        )

    def _draws(
        self, key: jax.Array | None, rows: jax.Array, books: jax.Array, given: LayerDraws | None
    ) -> step.Draws:
        keys = None if key is None else jax.random.split(key, 3)

        def sampler(name: str, shape: tuple[int, ...]) -> jax.Array:
            if keys is None:
                raise ValueError(
                    f"`key` is required in train mode to sample `{name}` of shape {shape} "
                    "(noise_std > 0, space-filling dither or dead-code replacement): pass "
                    f"key=jax.random.key(seed), a fresh one every step, or draws=LayerDraws("
                    f"{name}=...)"
                )
            if name == "noise":
                k = keys[0]
                if self.axis_name is not None:  # noise differs per device; the rest does not
                    k = jax.random.fold_in(k, lax.axis_index(self.axis_name))
                return jax.random.normal(k, shape, dtype=draw_dtype(rows))
            if name == "dither":
                return jax.random.uniform(keys[1], shape, dtype=draw_dtype(rows))
            k_donors, k_perturb = jax.random.split(keys[2])
            if name == "donors":
                return jax.random.uniform(k_donors, shape, dtype=jnp.float32)
            return jax.random.normal(k_perturb, shape, dtype=books.dtype)

        return step.Draws(self.spec, given, sampler)

    def apply(
        self,
        state: AnyState,
        z: jax.Array,
        *,
        key: jax.Array | None = None,
        mask: jax.Array | None = None,
        train: bool = True,
        draws: LayerDraws | None = None,
    ) -> tuple[Output, AnyState]:
        """Quantise ``z``; in training also advance the state (pure: returns the new state).

        Parameters
        ----------
        state : State or CompositeState
            From :meth:`init` or a previous call.
        z : jax.Array
            Latents with ``dim`` features on ``feature_axis``, real floating dtype.
        key : jax.Array, optional
            Source of the training draws not given in ``draws`` (noise, SF dither, replacement
            donors). Pass the same key on every device with ``axis_name``.
        mask : jax.Array of bool, optional
            Shape ``z.shape`` without the feature axis; ``False`` rows pass through
            unchanged, get index ``-1`` and never touch the state or the codebook gradient
            (as non-finite rows).
        train : bool, default True
            Python bool (static under jit). ``False``: hard inference, ``state`` returned
            unchanged (the same object).
        draws : diveq.LayerDraws, optional
            Explicit draws for this call; with the same draws every backend and the reference
            layers agree.

        Returns
        -------
        output : LayerOutput or SFLayerOutput
            ``(values, indices, perplexity)``; space-filling layers add ``weights``.
        new_state : State or CompositeState
            The advanced state (``state`` itself when ``train`` is False).

        Raises
        ------
        ValueError
            On a feature size or mask shape mismatch, a missing ``key``, more rows than
            ``rows_per_call`` during warm-up, or (eagerly, when not traced) too few valid
            rows at the SF warm-up init.
        TypeError
            If ``z`` is not real floating, ``mask`` not boolean or ``train`` not a bool.
        """
        if not isinstance(train, bool):
            raise TypeError(f"`train` must be a Python bool (static under jit); got {train!r}")
        state = self.check_state(state)
        if not train:
            return _infer(self, state, z, mask), state
        warming = self.spec.warmup_slots > 0 and state.buffer is not None
        if warming:
            self._check_buffer(state, z, mask)
        out, new = _train(self, state, z, key, mask, draws, warming)
        return out, new._replace(signature=state.signature)

    def _infer_call(self, state: AnyState, z: jax.Array, mask: jax.Array | None) -> Output:
        spec, ops = self.spec, self._ops()
        rows, valid, lead = rows_.to_rows(spec, jnp, z, mask)
        values, idx, weights = step.infer(spec, ops, self._unpack(state).books, rows, valid)
        return self._output(rows, valid, lead, values, idx, weights)

    def _train_call(
        self,
        state: AnyState,
        z: jax.Array,
        key: jax.Array | None,
        mask: jax.Array | None,
        draws: LayerDraws | None,
        warming: bool,
    ) -> tuple[Output, AnyState]:
        spec, ops, s = self.spec, self._ops(), self._unpack(state)
        rows, valid, lead = rows_.to_rows(spec, jnp, z, mask)
        d = self._draws(key, rows, s.books, draws)
        quantizing = warmup_quantizes(s.calls + 1, spec.skip_iters)
        values, idx, weights = step.estimate(spec, ops, s.books, rows, valid, d, quantizing)
        idx = jnp.where(valid[:, None], idx, -1)
        counts = ops.reduce_counts(step.book_counts(spec, ops, idx))
        new, _ = step.advance(spec, ops, s, rows, valid, idx, counts, d, warming=warming)
        out = self._output(rows, valid, lead, values, idx, weights, counts)
        return out, self._pack(new, _rewritten(s.books, new.books), state.signature)

    def _output(
        self,
        rows: jax.Array,
        valid: jax.Array,
        lead: tuple[int, ...],
        values: jax.Array,
        idx: jax.Array,
        weights: jax.Array,
        counts: jax.Array | None = None,
    ) -> Output:
        spec, ops = self.spec, self._ops()
        idx = jnp.where(valid[:, None], idx, -1)
        if counts is None:
            counts = ops.reduce_counts(step.book_counts(spec, ops, idx))
        perplexity = step.mean_perplexity(jnp, counts)
        out = rows_.finish(spec, jnp, rows, valid, lead, values, idx, weights)
        if spec.space_filling:
            return SFLayerOutput(out[0], out[1], perplexity, out[2])
        return LayerOutput(out[0], out[1], perplexity)

    def _check_buffer(self, state: AnyState, z: jax.Array, mask: jax.Array | None) -> None:
        """Eager checks of a warm-up call: the rows fit the buffer and, when nothing is
        traced, the init at this call will have at least ``K`` valid rows."""
        per_call, spec = self._rows_per_call(), self.spec
        rows, valid, _ = rows_.to_rows(spec, jnp, z, mask)
        if rows.shape[0] > per_call:
            raise ValueError(
                f"this call has {rows.shape[0]} rows but the warm-up buffer holds "
                f"rows_per_call = {per_call} per call; raise `rows_per_call`"
            )
        if _traced(state.calls, state.buffer_valid, valid):
            return  # under jit the layer keeps its codebook instead (documented)
        call = int(state.calls) + 1
        if self.axis_name is None and warmup_initialises(call, spec.skip_iters):
            kept = state.buffer_valid
            count = (0 if kept is None else int(jnp.sum(kept))) + int(jnp.sum(valid))
            if count < spec.num_codes:
                raise ValueError(step.too_few_rows(spec, count))

    # -- codes ---------------------------------------------------------------------------------
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
        spec = self.spec
        rows, valid, lead = rows_.to_rows(spec, jnp, z, mask)
        books = self._unpack(self.check_state(state)).books
        values, idx, weights = step.infer(spec, self._ops(), books, rows, valid)
        out = rows_.finish(spec, jnp, rows, valid, lead, values, idx, weights)
        return SFQuantized(*out) if spec.space_filling else Quantized(out[0], out[1])

    def decode(
        self, state: AnyState, indices: jax.Array, weights: jax.Array | None = None
    ) -> jax.Array:
        """Vectors from codes: ``c_k`` (SF: the point at ``weights`` on segment ``i``), ``0``
        for ``-1``; ``decode(state, *encode(state, z)[1:])`` equals ``encode(state, z).values``.

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

        Raises
        ------
        ValueError
            On ``weights`` missing for (or given to a non-) space-filling layer, or a shape
            mismatch.
        """
        books = self._unpack(self.check_state(state)).books
        return rows_.decode(self.spec, jnp, books, indices, weights)
