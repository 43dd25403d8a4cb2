"""Flax NNX modules: a jitted ``nnx.Optimizer`` step equals the plain JAX layer, orbax round
trips, ``nnx.vmap`` over models, ``model.eval()``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("orbax.checkpoint")

import _framework_cases as C
from flax import nnx

import diveq.backends.flax.nnx as dqn


def make(kind: str, book: jax.Array, rngs: nnx.Rngs) -> dqn.DiVeQ:
    name, args, opts = C.options(kind)
    model = getattr(dqn, name)(*args, rngs=rngs, **opts)
    getattr(model, model._fields[0])[...] = book
    return model


def stream_keys(seed: int) -> list[jax.Array]:
    """The keys a module built with ``nnx.Rngs(seed)`` draws, call by call."""
    rngs = nnx.Rngs(jax.random.key(seed))
    rngs.params()
    stream = rngs["diveq"].fork()
    return [stream() for _ in range(C.STEPS)]


def train_step(model, optimizer, z):
    def loss_fn(model):
        return C.loss_of(model(z).values, z)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


STEP = nnx.jit(train_step)


def optimizer_for(model):
    return nnx.Optimizer(model, C.OPTIMIZER, wrt=nnx.Param)


@pytest.mark.parametrize("kind", list(C.KINDS))
def test_training_matches_the_plain_layer_and_survives_orbax(kind, tmp_path):
    book = C.first_codebook(kind)
    want = C.plain_run(kind, book, stream_keys(0))
    C.assert_events(kind, want, book)
    model = make(kind, book, nnx.Rngs(jax.random.key(0)))
    optimizer = optimizer_for(model)
    got, resumed = [], []
    for t in range(C.STEPS):
        STEP(model, optimizer, C.data()[t])
        got.append(C.snapshot(model.layer_state()))
        C.assert_same(got[t], want[t], f"{kind} step {t + 1}")
        if t + 1 == C.SAVE_AT:  # mid-window and mid-warm-up
            saved = C.save_restore(nnx.state((model, optimizer)), tmp_path / "ckpt")
    graph, _ = nnx.split(
        nnx.eval_shape(lambda: (lambda m: (m, optimizer_for(m)))(make(kind, book, nnx.Rngs(9))))
    )
    model2, optimizer2 = nnx.merge(graph, saved)
    for t in range(C.SAVE_AT, C.STEPS):
        STEP(model2, optimizer2, C.data()[t])
        resumed.append(C.snapshot(model2.layer_state()))
        C.assert_same(resumed[-1], got[t], f"{kind} resumed, step {t + 1}", exact=True)


@pytest.mark.parametrize("kind", ["ResidualDiVeQ-sf"])
def test_vmap_over_models(kind):
    book = C.first_codebook(kind)
    seeds = (0, 1)

    @nnx.vmap(in_axes=0, out_axes=0)
    def create(key):
        model = make(kind, book, nnx.Rngs(key))
        return model, optimizer_for(model)

    models, optimizers = create(jnp.stack([jax.random.key(s) for s in seeds]))
    vstep = nnx.jit(nnx.vmap(train_step, in_axes=(0, 0, None)))
    states = []
    for t in range(C.STEPS):
        vstep(models, optimizers, C.data()[t])
        states.append(C.snapshot(models.layer_state()))
    for i, seed in enumerate(seeds):
        want = C.plain_run(kind, book, stream_keys(seed))
        for t in range(C.STEPS):
            got = {k: None if v is None else v[i] for k, v in states[t].items()}
            C.assert_same(got, want[t], f"model {i}, step {t + 1}")


def test_eval_mode_and_codes():
    model = dqn.SFDiVeQ(5, 3, rngs=nnx.Rngs(0), skip_iters=1)
    z = jax.random.normal(jax.random.key(1), (7, 3), dtype=jnp.float32)
    model.eval()
    before = nnx.state(model, dqn.VQState)
    out = model(z)
    assert int(model.calls[...]) == 0 and nnx.state(model, dqn.VQState) == before
    codes = model.encode(z)
    np.testing.assert_array_equal(codes.indices, out.indices)
    np.testing.assert_array_equal(model.decode(codes.indices, codes.weights), codes.values)
    model.train()
    model(z)
    assert int(model.calls[...]) == 1
    assert int(model(z, deterministic=True).indices.min()) >= 0 and int(model.calls[...]) == 1


def test_only_the_codebook_is_a_param_and_release_warmup():
    model = dqn.SFDiVeQ(4, 2, rngs=nnx.Rngs(0), skip_iters=3, avg_iters=2, rows_per_call=6)
    (book,) = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert book.shape == (4, 2)
    rest = jax.tree.leaves(nnx.state(model, dqn.VQState))
    assert rest and not any(jnp.issubdtype(x.dtype, jnp.inexact) for x in rest)
    with pytest.raises(ValueError, match="still needed"):
        model.release_warmup()
    z = jax.random.normal(jax.random.key(1), (6, 2))
    for _ in range(3):
        model(z)
    model.release_warmup()
    assert model.buffer is None and model.buffer_valid is None
    assert int(model(z).indices.min()) >= 0 and int(model.calls[...]) == 4
    assert dqn.DiVeQ(4, 2, rngs=nnx.Rngs(0)).buffer is None  # no zero-size leaves
