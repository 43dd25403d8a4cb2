"""The plain JAX layer state is fit for every pytree tool: orbax round trips every layer kind at
every phase, no leaf is empty, only the codebook looks trainable, and ``replaced`` marks the
rewritten rows (with the optax recipe that resets their moments)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("orbax.checkpoint")

import _framework_cases as C
import optax

import diveq.backends.jax as dq

#: phase -> train-mode calls made before the checkpoint (SF warm-up: init at call 3).
PHASES = {"fresh": 0, "mid-window": 1, "mid-warm-up": 2, "after-init": 3, "released": 3}


def _states(kind: str) -> dict[str, object]:
    layer, apply = C.jax_layer(kind), C.jitted_apply(kind)
    state = dq.merge_params(C.first_codebook(kind), dq.split_params(layer.init(C.KEY))[1])
    states, keys = {"fresh": state}, jax.random.split(C.KEY, 3)
    for call in range(3):
        _, state = apply(state, C.data()[call], key=keys[call])
        states[{0: "mid-window", 1: "mid-warm-up", 2: "after-init"}[call]] = state
    states["released"] = layer.release_warmup(state)
    return states


@pytest.mark.parametrize("kind", list(C.KINDS))
def test_orbax_round_trips_every_phase(kind, tmp_path):
    layer, apply = C.jax_layer(kind), C.jitted_apply(kind)
    z, key = C.data()[4], jax.random.key(7)
    states = _states(kind)
    restored = C.save_restore(states, tmp_path / "ckpt")  # every phase in one checkpoint
    for phase, state in states.items():
        leaves = jax.tree.leaves(state)
        assert all(x.size > 0 for x in leaves), phase  # orbax cannot save empty arrays
        warm = layer.spec.warmup_slots > 0 and phase != "released"
        assert (state.buffer is not None) == warm, phase
        back = restored[phase]
        assert type(back) is type(state)
        assert jax.tree.structure(back) == jax.tree.structure(state)
        for a, b in zip(jax.tree.leaves(back), leaves, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        after = [jax.tree.leaves(apply(s, z, key=key)) for s in (back, state)]
        for a, b in zip(*after, strict=True):
            np.testing.assert_array_equal(a, b)


def test_only_the_codebook_looks_trainable():
    """An ``eqx.is_inexact_array``-style filter finds the codebook and nothing else: the
    warm-up rows are kept as their bit patterns."""
    for kind in ("SFDiVeQ", "ResidualDiVeQ-sf"):
        state = _states(kind)["mid-warm-up"]
        floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact)]
        assert len(floats) == 1 and floats[0] is state[0]
        assert state.buffer.dtype == jnp.uint64  # float64 layer
        assert bool(state.buffer_valid.any())


def test_replaced_marks_the_rewritten_rows_and_resets_their_moments():
    """``replaced`` is the mask of rows the last call rewrote. optax keeps per-element moments
    and knows nothing of the rewrite: the new row inherits the dead row's ``mu`` / ``nu``.
    ``optax.tree_map_params`` with the mask resets them."""
    kind = "DiVeQ"
    layer = C.jax_layer(kind)
    params, rest = dq.split_params(layer.init(C.KEY))
    params = C.first_codebook(kind)
    optimizer = optax.adam(0.05)
    opt_state = optimizer.init(params)

    @jax.jit
    def grad(params, rest, z):
        def loss(params):
            out, new = layer.apply(dq.merge_params(params, rest), z, key=C.KEY)
            return C.loss_of(out.values, z), new

        return jax.grad(loss, has_aux=True)(params)

    for call in range(2):  # replacement at call 2
        old = params
        grads, new = grad(params, rest, C.data()[call])
        params, rest = dq.split_params(new)
        changed = np.any(np.asarray(params) != np.asarray(old), axis=-1)
        np.testing.assert_array_equal(rest.replaced, changed)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    assert rest.replaced.tolist() == [False] * 5 + [True]  # the far code
    mu = opt_state[0].mu
    assert bool(jnp.all(mu[-1] == 0))  # the dead row got no gradient in the window
    reset = optax.tree_map_params(
        optimizer, lambda m: jnp.where(rest.replaced[:, None], 0, m), opt_state
    )
    assert bool(jnp.all(reset[0].nu[-1] == 0))
    np.testing.assert_array_equal(reset[0].nu[:-1], opt_state[0].nu[:-1])
