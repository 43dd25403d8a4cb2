"""The Gumbel-softmax layer in Flax NNX, Flax Linen and Equinox: the plain JAX layer's values,
indices and gradients (wrt ``z`` and the codebook) with the same key, eagerly and jitted; eval
mode is the hard argmax and changes nothing; a short training loop moves the codebook; bad input
raises the JAX layer's errors."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy
optax = pytest.importorskip("optax")

import diveq  # noqa: E402
import diveq.backends.jax as dq  # noqa: E402

K, D = 5, 3
KINDS = {"soft": {"tau": 0.7}, "hard": {"tau": 0.4, "hard": True}}
KEY = jax.random.key(7)
TAU = jnp.asarray(0.5, jnp.float32)  # the call's temperature overrides the option's


def _data():
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.standard_normal((6, D)), jnp.float32)
    mask = jnp.asarray([1, 1, 1, 0, 1, 1], bool)
    cot = jnp.asarray(rng.standard_normal((6, D)), jnp.float32)
    return z, mask, cot


def _expected(options, book, train=True, key=KEY):
    """The plain JAX layer: its output and the gradients of ``sum(values * cot)``."""
    layer, (z, mask, cot) = dq.GumbelVQ(K, D, **options), _data()

    def loss(book, z):
        out = layer.apply(dq.GumbelState(book), z, key=key, mask=mask, train=train, tau=TAU)[0]
        return jnp.sum(out.values * cot), out

    (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(book, z)
    return out, grads


def _same(got, want):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-7)


def _steps():
    """Twelve training steps: the annealed temperature (a traced array) and the key of each."""
    for step in range(12):
        tau = jnp.asarray(diveq.gumbel_temperature(step, rate=0.05), jnp.float32)
        yield tau, jax.random.key(step)


def _cluster_data():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((K, D))
    x = centres[rng.integers(0, K, 64)] + 0.05 * rng.standard_normal((64, D))
    return jnp.asarray(x, jnp.float32)


def _bad_input(call):
    z = _data()[0]
    with pytest.raises(ValueError, match="feature size mismatch"):
        call(jnp.ones((6, D + 1)), 0.5)
    with pytest.raises(ValueError, match="`tau` must be finite and > 0"):
        call(z, 0.0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_nnx(kind):
    pytest.importorskip("flax")
    from flax import nnx

    import diveq.backends.flax.nnx as dqn

    model, (z, mask, cot) = dqn.GumbelVQ(K, D, rngs=nnx.Rngs(0), **KINDS[kind]), _data()
    book = model.codebook[...]
    assert not jax.tree_util.tree_leaves(nnx.state(model, dqn.VQState))
    want, (want_book, want_z) = _expected(KINDS[kind], book)

    def loss(model, z):
        out = model(z, mask=mask, tau=TAU, rngs=KEY)
        return jnp.sum(out.values * cot), out

    (_, out), (grads, grad_z) = nnx.value_and_grad(loss, argnums=(0, 1), has_aux=True)(model, z)
    _same(out, want)
    _same((grads["codebook"][...], grad_z), (want_book, want_z))
    jitted = nnx.jit(lambda model, z, tau, key: model(z, mask=mask, tau=tau, rngs=key))
    _same(jitted(model, z, TAU, KEY), want)
    # the module's own stream: a fresh key per call
    first, second = model(z, mask=mask), model(z, mask=mask)
    assert not np.allclose(first.values, second.values)

    model.eval()
    _same(model(z, mask=mask), _expected(KINDS[kind], book, train=False)[0])
    _same(model.codebook[...], book)
    model.train()
    _bad_input(lambda z, tau: model(z, tau=tau))

    optimizer = nnx.Optimizer(model, optax.adam(0.05), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, tau, key):
        def loss_fn(model):
            return jnp.mean((model(x, tau=tau, rngs=key).values - x) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    x = _cluster_data()
    losses = [float(step(model, optimizer, x, tau, key)) for tau, key in _steps()]
    assert not np.allclose(model.codebook[...], book)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("kind", list(KINDS))
def test_linen(kind):
    pytest.importorskip("flax")
    import diveq.backends.flax.linen as dql

    model, (z, mask, cot) = dql.GumbelVQ(K, D, **KINDS[kind]), _data()
    variables = model.init(jax.random.key(0), z)  # no draws: init runs the hard inference
    assert set(variables) == {"params"}
    params = variables["params"]
    # the key that `make_rng` gives the root module in an apply with this stream
    key = model.apply(variables, rngs={"diveq": KEY}, method=lambda m: m.make_rng("diveq"))
    want, (want_book, want_z) = _expected(KINDS[kind], params["codebook"], key=key)

    def loss(params, z, tau, rng):
        out = model.apply({"params": params}, z, mask=mask, tau=tau, rngs={"diveq": rng})
        return jnp.sum(out.values * cot), out

    grad_fn = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
    (_, out), (grads, grad_z) = grad_fn(params, z, TAU, KEY)
    _same(out, want)
    _same((grads["codebook"], grad_z), (want_book, want_z))
    _same(jax.jit(grad_fn)(params, z, TAU, KEY)[0][1], want)

    hard = model.apply(variables, z, mask=mask, deterministic=True)
    _same(hard, _expected(KINDS[kind], params["codebook"], train=False)[0])
    _bad_input(lambda z, tau: model.apply(variables, z, tau=tau, rngs={"diveq": KEY}))

    optimizer = optax.adam(0.05)

    @jax.jit
    def step(params, opt_state, x, tau, key):
        def loss_fn(params):
            out = model.apply({"params": params}, x, tau=tau, rngs={"diveq": key})
            return jnp.mean((out.values - x) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    x, trained, opt_state, losses = _cluster_data(), params, optimizer.init(params), []
    for tau, key in _steps():
        trained, opt_state, loss = step(trained, opt_state, x, tau, key)
        losses.append(float(loss))
    assert not np.allclose(trained["codebook"], params["codebook"])
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("kind", list(KINDS))
def test_equinox(kind):
    eqx = pytest.importorskip("equinox")
    import diveq.backends.equinox as dqe

    model, (z, mask, cot) = dqe.GumbelVQ(K, D, key=jax.random.key(0), **KINDS[kind]), _data()
    book = model.codebook
    want, (want_book, want_z) = _expected(KINDS[kind], book)

    @eqx.filter_value_and_grad(has_aux=True)
    def loss(model_z):
        model, z = model_z
        out = model(z, key=KEY, mask=mask, tau=TAU)
        return jnp.sum(out.values * cot), out

    (_, out), (grads, grad_z) = loss((model, z))
    _same(out, want)
    _same((grads.codebook, grad_z), (want_book, want_z))
    jitted = eqx.filter_jit(lambda model, z, tau, key: model(z, key=key, mask=mask, tau=tau))
    _same(jitted(model, z, TAU, KEY), want)

    hard = eqx.nn.inference_mode(model)(z, mask=mask)  # no key needed
    _same(hard, _expected(KINDS[kind], book, train=False)[0])
    _bad_input(lambda z, tau: model(z, key=KEY, tau=tau))
    with pytest.raises(ValueError, match="`key` is required"):
        model(z)

    optimizer = optax.adam(0.05)

    @eqx.filter_jit
    def step(model, opt_state, x, tau, key):
        def loss_fn(model):
            return jnp.mean((model(x, key=key, tau=tau).values - x) ** 2)

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, loss

    x, trained, losses = _cluster_data(), model, []
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    for tau, key in _steps():
        trained, opt_state, loss = step(trained, opt_state, x, tau, key)
        losses.append(float(loss))
    assert not np.allclose(trained.codebook, book)
    assert losses[-1] < losses[0]
