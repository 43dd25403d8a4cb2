"""The layers' state handling and their call: ``init``, ``apply`` and the SF warm-up.

Internally every layer works on stacked codebooks ``(M, K, D')`` and indices ``(N, M)``; a
one-codebook layer is ``M = 1``. A concrete layer (see :mod:`._layers`) only declares its
fields and names the public functions it trains with, warms up with and infers with.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from diveq._checks import check_latents
from diveq.backends.jax import _training as tr
from diveq.backends.jax._config import Config
from diveq.backends.jax._functions import FUNCTIONS, draw_dtype
from diveq.backends.jax._state import CompositeState, LayerOutput, State
from diveq.core._schedule import (
    replacement_due,
    warmup_collects,
    warmup_initialises,
    warmup_quantises,
)

__all__ = ["AnyState", "LayerBase"]

AnyState = State | CompositeState
Rows = tuple[jax.Array, jax.Array]


def _traced(*arrays: Any) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in arrays)


class LayerBase(Config):
    """``init`` / ``apply`` and the state plumbing shared by every layer."""

    # -- state ---------------------------------------------------------------------------------
    def init(self, key: jax.Array) -> AnyState:
        """A fresh state: codebook(s) ``U(-1/K, 1/K)``, zero counters, empty warm-up buffer.

        Parameters
        ----------
        key : jax.Array
            A :func:`jax.random.key` for the codebook draw.

        Returns
        -------
        State or CompositeState
            The layer state (a pytree).
        """
        m, k = self.num_books, self.num_codes
        bound = 1.0 / k
        books = jax.random.uniform(
            key, (m, k, self._width), dtype=self.dtype, minval=-bound, maxval=bound
        )
        counters = jnp.zeros((m, k), dtype=int)
        rows = self._slots() * self._rows_per_call()
        return self._pack(
            books,
            jnp.zeros((), dtype=int),
            counters,
            counters,
            jnp.zeros((rows, m, self._width), dtype=self.dtype),
            jnp.zeros((rows,), dtype=bool),
        )

    def _pack(self, books: jax.Array, *rest: jax.Array) -> AnyState:
        calls, hits, used, buffer, valid = rest
        if self.layout == "single":
            return State(books[0], calls, hits[0], used[0], buffer[:, 0, :], valid)
        return CompositeState(books, calls, hits, used, buffer, valid)

    def _unpack(self, state: AnyState) -> tuple[jax.Array, ...]:
        """The state with stacked codebooks ``(M, K, D')`` and buffer ``(R, M, D')``."""
        books, calls, hits, used, buffer, valid = state
        if self.layout == "single":
            books, hits, used, buffer = books[None], hits[None], used[None], buffer[:, None, :]
        return books, calls, hits, used, buffer, valid

    def release_warmup(self, state: AnyState) -> AnyState:
        """Drop the SF warm-up buffer once the warm-up init has happened (frees its memory).

        The returned state has a buffer of 0 rows, so a jitted step recompiles once. Call it
        outside ``jax.jit``.

        Parameters
        ----------
        state : State or CompositeState
            A state whose warm-up init has happened.

        Returns
        -------
        State or CompositeState
            ``state`` with ``buffer`` and ``buffer_valid`` of 0 rows (``state`` itself for
            layers without a warm-up buffer).

        Raises
        ------
        ValueError
            If the warm-up init has not happened yet (``calls < skip_iters - 1``).
        """
        if not self._slots() or state.buffer.shape[0] == 0:
            return state
        if not _traced(state.calls) and int(state.calls) < self._skip() - 1:
            raise ValueError(
                f"the warm-up buffer is still needed: calls = {int(state.calls)} < "
                f"skip_iters - 1 = {self._skip() - 1}"
            )
        return state._replace(buffer=state.buffer[:0], buffer_valid=state.buffer_valid[:0])

    # -- the call ------------------------------------------------------------------------------
    def apply(
        self,
        state: AnyState,
        z: jax.Array,
        *,
        key: jax.Array | None = None,
        mask: jax.Array | None = None,
        train: bool = True,
    ) -> tuple[LayerOutput, AnyState]:
        """Quantise ``z``; in training also advance the state (pure: returns the new state).

        Parameters
        ----------
        state : State or CompositeState
            From :meth:`init` or a previous call.
        z : jax.Array
            Latents with ``dim`` features on ``feature_axis``, real floating dtype.
        key : jax.Array, optional
            Needed in training when anything is random (``noise_std > 0``, SF dither,
            replacement). Pass the same key on every device with ``axis_name``.
        mask : jax.Array of bool, optional
            Shape ``z.shape`` without the feature axis; ``False`` rows pass through
            unchanged, get index ``-1`` and never touch the state or the codebook gradient
            (as non-finite rows).
        train : bool, default True
            Python bool (static under jit). ``False``: hard inference, ``state`` returned
            unchanged (the same object).

        Returns
        -------
        output : LayerOutput
            ``(values, indices, perplexity)``.
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
        books, calls, hits, used, buffer, buf_valid = self._unpack(state)
        zr, valid, lead = self._rows(z, mask)
        zsafe = jnp.where(valid[:, None], zr, jnp.zeros((), zr.dtype))
        if not train:
            values, idx, _ = self._infer(books, zsafe)
            return self._output(z, zr, values, idx, valid, lead), state
        noise, dither, k_replace = self._draws(key, zr)
        call = calls + 1
        warming = self._slots() > 0 and buffer.shape[0] > 0
        if warming:
            self._check_buffer(state, zr, valid)
        values, idx = self._estimate(books, zsafe, call, noise, dither)
        idx = jnp.where(valid[:, None], idx, -1)
        hits, used = tr.count_usage(hits, used, idx, self.num_codes, self.axis_name)
        config = self._replacement()
        if config is not None and k_replace is not None:  # a key is checked for in _draws
            due = replacement_due(call, config[0])
            if self._sf:
                due = due & ~warmup_quantises(call, self._skip())
            books, hits, used = tr.maybe_replace(
                due,
                books,
                hits,
                used,
                k_replace,
                replacement_iters=config[0],
                discard_threshold=config[1],
                perturb_eps=config[2],
            )
        if warming:
            latents = self._latents(self._unpack(state)[0], zsafe, idx)
            books, hits, used, buffer, buf_valid = self._warmup(
                call, books, hits, used, buffer, buf_valid, latents, valid
            )
        new = self._pack(lax.stop_gradient(books), call, hits, used, buffer, buf_valid)
        return self._output(z, zr, values, idx, valid, lead), new

    def _rows(self, z: jax.Array, mask: jax.Array | None) -> tuple[jax.Array, jax.Array, Any]:
        check_latents(z)
        axis = self.feature_axis
        if not -z.ndim <= axis < z.ndim:
            raise ValueError(f"`feature_axis` = {axis} is out of range for z.shape = {z.shape}")
        moved = jnp.moveaxis(z, axis, -1)
        if moved.shape[-1] != self.dim:
            raise ValueError(
                f"feature size mismatch: `z` has {moved.shape[-1]} features on axis {axis} "
                f"(z.shape = {tuple(z.shape)}) but the layer has dim = {self.dim}"
            )
        lead = moved.shape[:-1]
        zr = jnp.reshape(moved, (-1, self.dim))
        valid = jnp.all(jnp.isfinite(zr), axis=-1)
        if mask is not None:
            mask = jnp.asarray(mask)
            if mask.dtype != jnp.bool_:
                raise TypeError(f"`mask` must have dtype bool; got {mask.dtype}")
            if tuple(mask.shape) != tuple(lead):
                raise ValueError(
                    f"`mask` must have shape {tuple(lead)} (z.shape = {tuple(z.shape)} without "
                    f"the feature axis); got shape {tuple(mask.shape)}"
                )
            valid = valid & jnp.reshape(mask, (-1,))
        return zr, valid, lead

    def _output(
        self,
        z: jax.Array,
        zr: jax.Array,
        values: jax.Array,
        idx: jax.Array,
        valid: jax.Array,
        lead: Any,
    ) -> LayerOutput:
        idx = jnp.where(valid[:, None], idx, -1)
        perplexity = tr.layer_perplexity(idx, self.num_codes, self.axis_name)
        values = jnp.where(valid[:, None], values, zr)
        values = jnp.moveaxis(jnp.reshape(values, (*lead, self.dim)), -1, self.feature_axis)
        return LayerOutput(values, self._user_indices(idx, lead), perplexity)

    def _user_indices(self, idx: jax.Array, lead: Any) -> jax.Array:
        if self.layout == "single":
            return jnp.reshape(idx[:, 0], lead)
        return jnp.reshape(idx, (*lead, self.num_books))

    def _call(self, name: str, books: jax.Array, zr: jax.Array, **kw: Any) -> Any:
        out = FUNCTIONS[name](zr, books[0] if self.layout == "single" else books, **kw)
        idx = out.indices[:, None] if self.layout == "single" else out.indices
        return out, idx

    def _infer(self, books: jax.Array, zr: jax.Array) -> tuple[jax.Array, jax.Array, Any]:
        out, idx = self._call(self._names()[2], books, zr)
        return out.values, idx, out

    def _draws(
        self, key: jax.Array | None, zr: jax.Array
    ) -> tuple[jax.Array | None, jax.Array | None, jax.Array | None]:
        sf = self._sf
        if key is None:
            if self.noise_std > 0 or sf or self._replacement() is not None:
                raise ValueError(
                    "`key` is required in train mode for this layer (noise_std > 0, "
                    "space-filling dither or dead-code replacement): pass "
                    "key=jax.random.key(seed), a fresh one every step"
                )
            return None, None, None
        k_noise, k_dither, k_replace = jax.random.split(key, 3)
        if self.axis_name is not None:  # noise differs per device; dither and donors do not
            k_noise = jax.random.fold_in(k_noise, lax.axis_index(self.axis_name))
        dtype = draw_dtype(zr)
        noise = None
        if self.noise_std > 0:
            shape = (2, *zr.shape) if sf and self.layout == "single" else zr.shape
            noise = jax.random.normal(k_noise, shape, dtype=dtype)
        dither = None
        if sf:
            shape = (self.num_codes - 1,)
            if self.layout != "single":
                shape = (self.num_books, *shape)
            dither = jax.random.uniform(k_dither, shape, dtype=dtype)
        return noise, dither, k_replace

    def _estimate(
        self, books: jax.Array, zr: jax.Array, call: jax.Array, noise: Any, dither: Any
    ) -> Rows:
        train_name, warm_name, _ = self._names()

        def train(books: jax.Array) -> Rows:
            kw = {"dither": dither} if self._sf else {}
            out, idx = self._call(
                train_name, books, zr, noise_std=self.noise_std, noise=noise, **kw
            )
            return out.values, idx

        if self._skip() <= 1:
            return train(books)

        def warm(books: jax.Array) -> Rows:
            if warm_name is None:  # one-codebook SF: not quantised during the warm-up
                fill = jax.dtypes.canonicalize_dtype(int)
                return zr, jnp.full((zr.shape[0], 1), -1, dtype=fill)
            out, idx = self._call(warm_name, books, zr, noise_std=self.noise_std, noise=noise)
            return out.values, idx

        return lax.cond(warmup_quantises(call, self._skip()), train, warm, books)

    # -- SF warm-up ----------------------------------------------------------------------------
    def _latents(self, books: jax.Array, zr: jax.Array, idx: jax.Array) -> jax.Array:
        """What each codebook quantises in this call, ``(N, M, D')``: the rows (one codebook),
        their blocks (product) or the stage residuals ``x_m = z - sum_{j<m} C_j[k_j]``
        (residual, with this call's warm-up codebooks and indices)."""
        n, m = zr.shape[0], self.num_books
        if self.layout != "residual":
            return jnp.reshape(zr, (n, m, self._width))
        stages, rest = [], zr
        for j in range(m):
            stages.append(rest)
            rest = rest - jnp.take(books[j], jnp.maximum(idx[:, j], 0), axis=0).astype(zr.dtype)
        return lax.stop_gradient(jnp.stack(stages, axis=1))

    def _check_buffer(self, state: AnyState, zr: jax.Array, valid: jax.Array) -> None:
        per_call = self._rows_per_call()
        if zr.shape[0] > per_call:
            raise ValueError(
                f"this call has {zr.shape[0]} rows but the warm-up buffer holds "
                f"rows_per_call = {per_call} per call; raise `rows_per_call`"
            )
        if _traced(state.calls, state.buffer_valid, valid):
            return  # under jit the layer keeps its codebook instead (documented)
        call = int(state.calls) + 1
        if self.axis_name is None and warmup_initialises(call, self._skip()):
            count = int(jnp.sum(state.buffer_valid)) + int(jnp.sum(valid))
            if count < self.num_codes:
                raise ValueError(
                    f"SF warm-up needs at least K = {self.num_codes} valid rows to initialise "
                    f"the codebook; the last {self._slots()} warm-up calls gave {count}"
                )

    def _warmup(
        self,
        call: jax.Array,
        books: jax.Array,
        hits: jax.Array,
        used: jax.Array,
        buffer: jax.Array,
        buf_valid: jax.Array,
        latents: jax.Array,
        valid: jax.Array,
    ) -> tuple[jax.Array, ...]:
        skip, slots, per_call = self._skip(), self._slots(), self._rows_per_call()
        pad = per_call - latents.shape[0]
        rows = jnp.pad(latents, ((0, pad), (0, 0), (0, 0)))
        rows_valid = jnp.pad(valid, (0, pad))
        slot = jnp.clip(call - (skip - slots), 0, slots - 1)
        collects = warmup_collects(call, skip, slots)
        buffer, buf_valid = tr.collect_rows(collects, slot, buffer, buf_valid, rows, rows_valid)

        def initialise(operands: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
            books, hits, used, buffer, buf_valid = operands
            rows, ok = tr.gather_rows(buffer, buf_valid, slots, self.axis_name)
            new, enough = tr.init_from_rows(books, rows, ok)
            books = jnp.where(enough, new, books)
            return (
                books,
                jnp.zeros_like(hits),
                jnp.zeros_like(used),
                jnp.zeros_like(buffer),
                jnp.zeros_like(buf_valid),
            )

        return lax.cond(
            warmup_initialises(call, skip),
            initialise,
            lambda operands: operands,
            (books, hits, used, buffer, buf_valid),
        )
