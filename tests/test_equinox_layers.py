"""Equinox layers: a ``filter_jit`` step with :func:`write_back` equals the plain JAX layer,
orbax round trips, ``filter_vmap`` over models, nothing but the codebook is trainable, and a
forgotten write-back is an error, not a loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

eqx = pytest.importorskip("equinox")
pytest.importorskip("orbax.checkpoint")

import _framework_cases as C  # noqa: E402

import diveq.backends.equinox as dqe  # noqa: E402


def make(kind: str, book: jax.Array, key: jax.Array):
    name, args, opts = C.options(kind)
    model, state = eqx.nn.make_with_state(getattr(dqe, name))(*args, key=key, **opts)
    return eqx.tree_at(lambda m: m.params, model, book), state


def make_step(write: bool = True):
    def step(model, state, opt_state, z, key):
        def loss_fn(model, state):
            out, state = model(z, state, key=key)
            return C.loss_of(out.values, z), state

        (loss, state), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model, state)
        if write:
            model, state = dqe.write_back(model, state)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = C.OPTIMIZER.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), state, opt_state, loss

    return step


def keys_for(seed: int) -> list[jax.Array]:
    return list(jax.random.split(jax.random.key(seed), C.STEPS))


def start(kind: str, book: jax.Array):
    model, state = make(kind, book, jax.random.key(0))
    return model, state, C.OPTIMIZER.init(eqx.filter(model, eqx.is_inexact_array))


@pytest.mark.parametrize("kind", list(C.KINDS))
def test_training_matches_the_plain_layer_and_survives_orbax(kind, tmp_path):
    book = C.first_codebook(kind)
    keys = keys_for(0)
    want = C.plain_run(kind, book, keys)
    C.assert_events(kind, want, book)
    model, state, opt_state = start(kind, book)
    step = eqx.filter_jit(make_step())
    got = []
    for t in range(C.STEPS):
        model, state, opt_state, _ = step(model, state, opt_state, C.data()[t], keys[t])
        got.append(C.snapshot(model.layer_state(state)))
        C.assert_same(got[t], want[t], f"{kind} step {t + 1}")
        if t + 1 == C.SAVE_AT:
            params, static = eqx.partition(model, eqx.is_array)
            saved = C.save_restore((params, state, opt_state), tmp_path / "ckpt")
    params, state, opt_state = saved
    model = eqx.combine(params, static)
    for t in range(C.SAVE_AT, C.STEPS):
        model, state, opt_state, _ = step(model, state, opt_state, C.data()[t], keys[t])
        C.assert_same(C.snapshot(model.layer_state(state)), got[t], "resumed", exact=True)


def test_filter_vmap_over_models():
    kind, seeds = "SFDiVeQ", (0, 1)
    book = C.first_codebook(kind)
    models, states = eqx.filter_vmap(lambda k: make(kind, book, k))(
        jnp.stack([jax.random.key(0), jax.random.key(5)])
    )
    opt_states = jax.vmap(C.OPTIMIZER.init)(eqx.filter(models, eqx.is_inexact_array))
    batched = eqx.if_array(0)
    in_axes = (batched, batched, batched, None, batched)
    step = eqx.filter_jit(eqx.filter_vmap(make_step(), in_axes=in_axes))
    keys, got = [keys_for(s) for s in seeds], []
    for t in range(C.STEPS):
        key = jnp.stack([keys[0][t], keys[1][t]])
        models, states, opt_states, _ = step(models, states, opt_states, C.data()[t], key)
        got.append(C.snapshot(models.layer_state(states)))
    for i, seed in enumerate(seeds):
        want = C.plain_run(kind, book, keys_for(seed))
        for t in range(C.STEPS):
            mine = {k: None if v is None else v[i] for k, v in got[t].items()}
            C.assert_same(mine, want[t], f"model {i}, step {t + 1}")


def test_only_the_codebook_is_trainable():
    """The counters and warm-up rows live in the state, not the model: ``filter_grad`` sees
    the codebook and nothing else."""
    model, state = eqx.nn.make_with_state(dqe.SFDiVeQ)(
        5, 4, key=jax.random.key(0), skip_iters=4, avg_iters=2, rows_per_call=C.ROWS
    )
    z = C.data()[0]

    def loss(model, state):
        out, state = model(z, state, key=jax.random.key(1))
        return jnp.sum(out.values**2), state

    grads, state = eqx.filter_grad(loss, has_aux=True)(model, state)
    trained = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert [g.shape for g in trained] == [(5, 4)]
    own = state.get(model.index)
    floats = [x for x in own[1:] if x is not None and jnp.issubdtype(x.dtype, jnp.inexact)]
    assert not floats  # the warm-up rows are kept as bits


@pytest.mark.parametrize("kind", ["ResidualDiVeQ", "SFDiVeQ"])
def test_a_forgotten_write_back_is_an_error(kind):
    model, state, opt_state = start(kind, C.first_codebook(kind))
    forgetful = eqx.filter_jit(make_step(write=False))
    keys = keys_for(0)
    for t in range(3 if kind == "SFDiVeQ" else 2):
        model, state, opt_state, _ = forgetful(model, state, opt_state, C.data()[t], keys[t])
    own = state.get(model.index)
    assert bool(own.replaced.any())
    with pytest.raises(Exception, match="never written back"):
        jax.block_until_ready(forgetful(model, state, opt_state, C.data()[3], keys[3]))
    with pytest.raises(ValueError, match="never written back"):
        model(C.data()[3], state, inference=True)
    fixed, state = dqe.write_back(model, state)
    rows = np.asarray(own.replaced)
    np.testing.assert_array_equal(np.asarray(fixed.params)[rows], np.asarray(own[0])[rows])
    out, same = eqx.nn.inference_mode(fixed)(C.data()[3], state)
    assert same is state and int(out.indices.min()) >= 0
