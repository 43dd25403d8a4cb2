"""Flax Linen modules: a jitted step with :func:`write_back` equals the plain JAX layer, orbax
round trips, ``jax.vmap`` over models, and a forgotten write-back is an error, not a loss."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

pytest.importorskip("flax")
pytest.importorskip("orbax.checkpoint")

import _framework_cases as C
import flax.linen as nn

import diveq.backends.flax.linen as dql
import diveq.backends.jax as dq


def module(kind: str) -> nn.Module:
    name, args, opts = C.options(kind)
    return getattr(dql, name)(*args, **opts)


def start(kind: str, book: jax.Array) -> tuple[dict, dict]:
    z = C.data()[0]
    variables = module(kind).init(jax.random.key(0), z)
    params = {**variables["params"]}
    (name,) = params
    params[name] = book
    return params, variables[dql.COLLECTION]


def linen_keys(seed: int) -> list[jax.Array]:
    """The keys passed as ``rngs={"diveq": key}``, one per step."""
    return list(jax.random.split(jax.random.key(seed), C.STEPS))


def used_keys(kind: str, seed: int) -> list[jax.Array]:
    """What ``make_rng("diveq")`` of a top-level module returns for those keys."""

    class Probe(nn.Module):
        @nn.compact
        def __call__(self):
            return self.make_rng("diveq")

    return [Probe().apply({}, rngs={"diveq": k}) for k in linen_keys(seed)]


def make_step(kind: str, write: bool = True):
    model = module(kind)

    def step(params, vq_state, opt_state, z, key):
        def loss_fn(params):
            out, updated = model.apply(
                {"params": params, dql.COLLECTION: vq_state},
                z,
                rngs={"diveq": key},
                mutable=[dql.COLLECTION],
            )
            return C.loss_of(out.values, z), updated[dql.COLLECTION]

        (loss, vq_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        if write:
            params, vq_state = dql.write_back(params, vq_state)
        updates, opt_state = C.OPTIMIZER.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), vq_state, opt_state, loss

    return step


def as_state(kind: str, params: dict, vq_state: dict) -> dq.State | dq.CompositeState:
    (book,) = params.values()
    fresh = C.jax_layer(kind).init(jax.random.key(0))
    fields = {f: vq_state.get(f) for f in fresh._fields[1:]}
    return type(fresh)(book, **fields)


@pytest.mark.parametrize("kind", list(C.KINDS))
def test_training_matches_the_plain_layer_and_survives_orbax(kind, tmp_path):
    book = C.first_codebook(kind)
    want = C.plain_run(kind, book, used_keys(kind, 0))
    C.assert_events(kind, want, book)
    params, vq_state = start(kind, book)
    assert int(vq_state["calls"]) == 0  # init runs the module in inference mode
    opt_state = C.OPTIMIZER.init(params)
    step = jax.jit(make_step(kind))
    keys, got = linen_keys(0), []
    for t in range(C.STEPS):
        params, vq_state, opt_state, _ = step(params, vq_state, opt_state, C.data()[t], keys[t])
        got.append(C.snapshot(as_state(kind, params, vq_state)))
        C.assert_same(got[t], want[t], f"{kind} step {t + 1}")
        if t + 1 == C.SAVE_AT:
            saved = C.save_restore((params, vq_state, opt_state), tmp_path / "ckpt")
    params, vq_state, opt_state = saved
    for t in range(C.SAVE_AT, C.STEPS):
        params, vq_state, opt_state, _ = step(params, vq_state, opt_state, C.data()[t], keys[t])
        C.assert_same(C.snapshot(as_state(kind, params, vq_state)), got[t], "resumed", exact=True)


def test_vmap_over_models():
    kind, seeds = "ProductDiVeQ-sf", (0, 1)
    book = C.first_codebook(kind)
    params, vq_state = start(kind, book)
    stack = lambda *trees: jax.tree.map(lambda *x: jnp.stack(x), *trees)  # noqa: E731
    params, vq_state = stack(params, params), stack(vq_state, vq_state)
    opt_state = jax.vmap(C.OPTIMIZER.init)(params)
    keys = [linen_keys(s) for s in seeds]
    step = jax.jit(jax.vmap(make_step(kind), in_axes=(0, 0, 0, None, 0)))
    got = []
    for t in range(C.STEPS):
        key = jnp.stack([keys[0][t], keys[1][t]])
        params, vq_state, opt_state, _ = step(params, vq_state, opt_state, C.data()[t], key)
        got.append(jax.tree.map(np.asarray, (params, vq_state)))
    for i, seed in enumerate(seeds):
        want = C.plain_run(kind, book, used_keys(kind, seed))
        for t in range(C.STEPS):
            p, s = jax.tree.map(lambda x, i=i: x[i], got[t])
            C.assert_same(C.snapshot(as_state(kind, p, s)), want[t], f"model {i}, step {t + 1}")


@pytest.mark.parametrize("kind", ["DiVeQ", "SFDiVeQ"])
def test_a_forgotten_write_back_is_an_error(kind):
    """Replacement (DiVeQ, call 2) or the warm-up init (SF, call 3) rewrote rows that the
    step did not write back: the next call says so, eagerly and under jit."""
    book = C.first_codebook(kind)
    params, vq_state = start(kind, book)
    opt_state = C.OPTIMIZER.init(params)
    forgetful = jax.jit(make_step(kind, write=False))
    keys = linen_keys(0)
    for t in range(3 if kind == "SFDiVeQ" else 2):
        params, vq_state, opt_state, _ = forgetful(
            params, vq_state, opt_state, C.data()[t], keys[t]
        )
    assert bool(vq_state["replaced"].any())
    with pytest.raises(Exception, match="never written back"):
        jax.block_until_ready(forgetful(params, vq_state, opt_state, C.data()[3], keys[3]))
    with pytest.raises(ValueError, match="never written back"):
        module(kind).apply(
            {"params": params, dql.COLLECTION: vq_state}, C.data()[3], deterministic=True
        )
    fixed, cleared = dql.write_back(params, vq_state)
    (name,) = fixed
    np.testing.assert_array_equal(
        np.asarray(fixed[name])[np.asarray(vq_state["replaced"])],
        np.asarray(vq_state["rewrites"])[np.asarray(vq_state["replaced"])],
    )
    assert not bool(cleared["replaced"].any())
    module(kind).apply({"params": fixed, dql.COLLECTION: cleared}, C.data()[3], deterministic=True)


def test_fields_mirror_the_jax_layers():
    """Every option of the JAX layer is a field of the Linen module, with the same default."""
    for name in ("DiVeQ", "SFDiVeQ", "ProductDiVeQ", "ResidualDiVeQ", "EMAVQ"):
        ours = {f.name: f for f in dataclasses.fields(getattr(dql, name))}
        for f in dataclasses.fields(getattr(dq, name)):
            assert f.name in ours, (name, f.name)
            assert ours[f.name].default == f.default, (name, f.name)


def test_nested_modules_and_encode():
    class AutoEncoder(nn.Module):
        @nn.compact
        def __call__(self, x, deterministic=False):
            h = nn.Dense(4)(x)
            q = dql.ResidualDiVeQ(2, 8, 4, name="vq")(h, deterministic=deterministic)
            return nn.Dense(x.shape[-1])(q.values)

    model, x = AutoEncoder(), C.data()[0]
    variables = model.init(jax.random.key(0), x)
    assert set(variables["params"]["vq"]) == {"codebooks"}
    _, updated = model.apply(
        variables, x, rngs={"diveq": jax.random.key(1)}, mutable=[dql.COLLECTION]
    )
    assert int(updated[dql.COLLECTION]["vq"]["calls"]) == 1
    params, vq_state = dql.write_back(variables["params"], updated[dql.COLLECTION])
    assert params["Dense_0"]["kernel"] is variables["params"]["Dense_0"]["kernel"]
    assert not bool(vq_state["vq"]["replaced"].any())
    vq = dql.ResidualDiVeQ(2, 8, 4)
    codes = vq.apply({"params": params["vq"]}, x[:, :4], method=vq.encode)
    assert codes.indices.shape == (C.ROWS, 2)


def test_release_warmup_drops_the_buffer_and_training_goes_on():
    kind = "ResidualDiVeQ-sf"
    book = C.first_codebook(kind)
    want = C.plain_run(kind, book, used_keys(kind, 0))
    params, vq_state = start(kind, book)
    opt_state = C.OPTIMIZER.init(params)
    step = jax.jit(make_step(kind))
    keys = linen_keys(0)
    for t in range(C.STEPS):
        before = vq_state
        vq_state = dql.release_warmup(vq_state)
        if t < C.WARMUP["skip_iters"] - 1:
            assert vq_state is before or "buffer" in vq_state  # still needed: kept
        else:
            assert "buffer" not in vq_state and "buffer_valid" not in vq_state
        params, vq_state, opt_state, _ = step(params, vq_state, opt_state, C.data()[t], keys[t])
        got = C.snapshot(as_state(kind, params, vq_state))
        fields = [f for f in got if f not in ("buffer", "buffer_valid")]
        C.assert_same({f: got[f] for f in fields}, {f: want[t][f] for f in fields}, f"{t + 1}")
