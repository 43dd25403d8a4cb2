"""The EMA-codebook layer in Flax NNX, Flax Linen and Equinox: the plain JAX layer's results and
state, call by call, and nothing trainable."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

import diveq.backends.jax as dq  # noqa: E402

K, D, OPTIONS = 5, 3, {"decay": 0.8, "beta": 0.3}


def _script():
    """Three train calls (the second with a NaN row and a row masked out), then one eval call;
    every call has a mask, so that each mode compiles once."""
    rng = np.random.default_rng(0)
    zs = [jnp.asarray(rng.standard_normal((6, D)), dtype=jnp.float32) for _ in range(4)]
    zs[1] = zs[1].at[2, 0].set(jnp.nan)
    masks = [jnp.asarray([1, 1, 1, i != 1, 1, 1], bool) for i in range(4)]
    return list(zip(zs, masks, [True, True, True, False], strict=True))


def _expected(state):
    layer, outs = dq.EMAVQ(K, D, **OPTIONS), []
    for z, mask, train in _script():
        out, state = layer.apply(state, z, mask=mask, train=train)
        outs.append(out)
    return outs, state


def _same(got, want):
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-7)


def test_nnx():
    pytest.importorskip("flax")
    from flax import nnx

    import diveq.backends.flax.nnx as dqn

    model = dqn.EMAVQ(K, D, rngs=nnx.Rngs(0), **OPTIONS)
    want, final = _expected(model.layer_state())
    assert not jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))
    for (z, mask, train), expected in zip(_script(), want, strict=True):
        _same(model(z, mask=mask, deterministic=not train), expected)
    _same(model.layer_state(), final)


def test_linen():
    pytest.importorskip("flax")
    import diveq.backends.flax.linen as dql

    model = dql.EMAVQ(K, D, **OPTIONS)
    z0 = _script()[0][0]
    variables = model.init(jax.random.key(0), z0)
    assert set(variables) == {"diveq"}  # nothing in params
    state = dq.EMAState(*(variables["diveq"][n] for n in dq.EMAState._fields))
    want, final = _expected(state)
    for (z, mask, train), expected in zip(_script(), want, strict=True):
        out, updated = model.apply(
            variables, z, mask=mask, deterministic=not train, mutable=["diveq"]
        )
        variables = {**variables, **updated}
        _same(out, expected)
    _same([variables["diveq"][n] for n in dq.EMAState._fields], final)


def test_equinox():
    eqx = pytest.importorskip("equinox")
    import diveq.backends.equinox as dqe

    model, state = eqx.nn.make_with_state(dqe.EMAVQ)(K, D, key=jax.random.key(0), **OPTIONS)
    assert not jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    want, final = _expected(state.get(model.index))
    for (z, mask, train), expected in zip(_script(), want, strict=True):
        out, state = model(z, state, mask=mask, inference=not train)
        _same(out, expected)
    _same(state.get(model.index), final)
