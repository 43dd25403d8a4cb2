"""JAX layers: jitted optax training steps, eval, masks, feature axis, vmap, checkpoints.

Shapes are fixed (8 rows of 4 features, K = 5, M = 2) and every jitted function is built once
per module, so each configuration compiles once. Run with ``-s`` to see the compile times.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jnp = jax.numpy
dq = pytest.importorskip("diveq.backends.jax")

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.standard_normal((8, 4)))
KEYS = jax.random.split(jax.random.key(0), 8)

SF_OPTS = {"skip_iters": 3, "avg_iters": 2, "rows_per_call": 8}
LAYERS = {
    "DiVeQ": dq.DiVeQ(5, 4, replacement_iters=2),
    "SFDiVeQ": dq.SFDiVeQ(5, 4, **SF_OPTS),
    "ProductDiVeQ-SF": dq.ProductDiVeQ(2, 5, 4, space_filling=True, replacement_iters=2, **SF_OPTS),
    "ResidualDiVeQ": dq.ResidualDiVeQ(2, 5, 4),
}


def _train_step(layer, opt):
    """A tied linear auto-encoder around ``layer``: encoder ``w`` and the codebook train."""

    def step(params, rest, opt_state, x, key):
        def loss_fn(params):
            w, book = params
            out, new_state = layer.apply(dq.merge_params(book, rest), x @ w, key=key)
            return jnp.mean((out.values @ w.T - x) ** 2), (out, new_state)

        (loss, (out, new_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        book, rest = dq.split_params(new_state)  # may hold this call's replacements / init
        params = (params[0], book)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss, out

    return jax.jit(step)


@pytest.mark.parametrize("name", list(LAYERS))
def test_jitted_training_step_with_optax(name):
    layer = LAYERS[name]
    book, rest = dq.split_params(layer.init(KEYS[0]))
    params = (jnp.eye(4) + 0.1 * jnp.asarray(RNG.standard_normal((4, 4))), book)
    opt = optax.adam(1e-2)
    opt_state = opt.init(params)
    step = _train_step(layer, opt)
    start = time.perf_counter()
    compiled = step.lower(params, rest, opt_state, X, KEYS[1]).compile()
    print(f"\n[compile] {name} training step: {time.perf_counter() - start:.2f} s")
    first_book = book
    for i in range(5):
        params, rest, opt_state, loss, out = compiled(params, rest, opt_state, X, KEYS[i + 1])
        assert np.isfinite(float(loss)), (name, i)
        assert out.values.shape == X.shape
        warming = layer.space_filling and i + 1 < 3 and layer.layout == "single"
        assert bool(jnp.all(out.indices == -1)) == warming, (name, i)
    assert int(rest.calls) == 5
    assert rest.hits.shape == book.shape[:-1]
    assert not np.allclose(params[1], first_book), name  # learned (and SF: initialised)
    assert np.all(np.isfinite(params[0]))


def _apply(layer):
    return jax.jit(layer.apply, static_argnames=("train",))


SF = dq.SFDiVeQ(5, 4, skip_iters=4, avg_iters=2, rows_per_call=8)
SF_APPLY = _apply(SF)


def _run(apply, state, calls, z=X, **kw):
    outs = []
    for i in range(calls):
        out, state = apply(state, z, key=KEYS[i], **kw)
        outs.append(out)
    return outs, state


def test_checkpoint_mid_warmup_continues_identically(tmp_path):
    """Save the state pytree with np.savez mid-warm-up; restored, training continues the same."""
    state = SF.init(KEYS[7])
    _, mid = _run(SF_APPLY, state, 2)
    leaves, treedef = jax.tree_util.tree_flatten(mid)
    np.savez(tmp_path / "ckpt.npz", *[np.asarray(leaf) for leaf in leaves])
    with np.load(tmp_path / "ckpt.npz") as data:
        loaded = [jnp.asarray(data[f"arr_{i}"]) for i in range(len(leaves))]
    restored = jax.tree_util.tree_unflatten(treedef, loaded)
    assert isinstance(restored, dq.State)

    def rest(state):
        outs = []
        for i in range(2, 5):
            out, state = SF_APPLY(state, X, key=KEYS[i])
            outs.append(out)
        return outs, state

    want_outs, want = rest(mid)
    got_outs, got = rest(restored)
    for a, b in zip(
        jax.tree.leaves((want_outs, want)), jax.tree.leaves((got_outs, got)), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert int(got.calls) == 5 and bool(jnp.all(got_outs[-1].indices >= 0))


@pytest.mark.parametrize("name", list(LAYERS))
def test_eval_is_hard_inference_and_leaves_state_unchanged(name):
    layer = LAYERS[name]
    state = layer.init(KEYS[0])
    out, same = layer.apply(state, X, train=False)
    assert same is state
    books = state[0]
    if layer.layout == "single":
        infer = dq.sf_quantize if layer.space_filling else dq.quantize
    else:
        kind = "_sf" if layer.space_filling else ""
        infer = getattr(dq, f"{layer.layout}{kind}_quantize")
    want = infer(X, books)
    np.testing.assert_array_equal(out.indices, want.indices)
    # the layer decodes its values from the codes (so `decode` reproduces them bitwise); the
    # compiled function may round its fused sums by an ulp
    np.testing.assert_allclose(out.values, want.values, rtol=1e-6)
    per_book = want.indices if layer.layout != "single" else want.indices[:, None]
    ppl = np.mean([float(dq.perplexity(per_book[:, m], 5)) for m in range(per_book.shape[1])])
    np.testing.assert_allclose(float(out.perplexity), ppl, rtol=1e-6)
    # decode(encode(z)) is the eval output
    enc = layer.encode(state, X)
    args = (enc.weights,) if layer.space_filling else ()
    np.testing.assert_allclose(layer.decode(state, enc.indices, *args), out.values, atol=1e-6)


def test_masked_and_non_finite_rows_never_reach_the_codebook():
    layer = dq.DiVeQ(5, 4, noise_std=0.0, replacement_iters=None)
    state = layer.init(KEYS[0])
    z = X.at[1].set(jnp.nan).at[2, 0].set(jnp.inf)
    mask = jnp.ones(8, dtype=bool).at[3].set(False)
    g = jnp.asarray(RNG.standard_normal((8, 4)))

    def f(z, book):
        out, new = layer.apply(dq.merge_params(book, dq.split_params(state)[1]), z, mask=mask)
        return jnp.sum(jnp.where(jnp.isfinite(out.values), out.values * g, 0.0)), (out, new)

    (dz, dbook), (out, new) = jax.jit(jax.grad(f, argnums=(0, 1), has_aux=True))(z, state.codebook)
    bad = np.array([1, 2, 3])
    np.testing.assert_array_equal(out.indices[bad], -1)
    np.testing.assert_array_equal(out.values[bad], z[bad])
    assert int(new.hits.sum()) == 5 and int(new.calls_used.sum()) <= 5
    good = np.setdiff1d(np.arange(8), bad)
    _, pull = jax.vjp(lambda z, c: dq.diveq(z, c, noise_std=0.0).values, z[good], state.codebook)
    want_dz, want_dbook = pull(g[good])
    np.testing.assert_allclose(dbook, want_dbook, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dz[good], want_dz, rtol=1e-12, atol=1e-15)
    # pass through: identity gradient (the loss skips the non-finite entries)
    np.testing.assert_array_equal(dz[bad], jnp.where(jnp.isfinite(z[bad]), g[bad], 0.0))


def test_feature_axis_and_decode_for_images():
    layer = dq.ResidualDiVeQ(2, 5, 4, feature_axis=1)
    state = layer.init(KEYS[0])
    images = jnp.asarray(RNG.standard_normal((2, 4, 3, 3)))
    out, _ = layer.apply(state, images, train=False)
    assert out.values.shape == images.shape and out.indices.shape == (2, 3, 3, 2)
    np.testing.assert_allclose(layer.decode(state, out.indices), out.values, atol=1e-6)
    flat, _ = dq.ResidualDiVeQ(2, 5, 4).apply(state, jnp.moveaxis(images, 1, -1), train=False)
    np.testing.assert_array_equal(flat.indices, out.indices)


def test_vmap_over_a_batch_of_layer_states():
    layer = LAYERS["DiVeQ"]
    states = jax.vmap(layer.init)(KEYS[:3])
    zs = jnp.stack([X, -X, 2 * X])
    batched = jax.jit(jax.vmap(lambda s, z, k: layer.apply(s, z, key=k)))
    outs, news = batched(states, zs, KEYS[3:6])
    assert news.codebook.shape == (3, 5, 4) and news.hits.shape == (3, 5)
    for b in range(3):
        noise = jax.random.normal(jax.random.split(KEYS[3 + b], 3)[0], X.shape, X.dtype)
        want = dq.diveq(zs[b], states.codebook[b], noise=noise)  # the layer's noise draw
        np.testing.assert_array_equal(outs.indices[b], want.indices)
        np.testing.assert_allclose(outs.values[b], want.values, rtol=1e-12)
        np.testing.assert_array_equal(news.hits[b], dq.code_usage(want.indices, 5))


def test_layer_errors():
    with pytest.raises(ValueError, match="rows_per_call"):
        dq.SFDiVeQ(5, 4)
    with pytest.raises(ValueError, match="rows_per_call"):
        dq.ProductDiVeQ(2, 5, 4, space_filling=True)
    dq.SFDiVeQ(5, 4, skip_iters=1)  # no warm-up, no buffer: fine
    dq.ProductDiVeQ(2, 5, 4)  # not space-filling: warm-up options unused
    with pytest.raises(ValueError, match="num_codes"):
        dq.SFDiVeQ(1, 4, skip_iters=0)
    with pytest.raises(ValueError, match="dim % num_codebooks"):
        dq.ProductDiVeQ(3, 5, 4)
    with pytest.raises(ValueError, match="noise_std"):
        dq.DiVeQ(5, 4, noise_std=-1.0)
    layer = dq.DiVeQ(5, 4)
    state = layer.init(KEYS[0])
    with pytest.raises(ValueError, match="`key` is required"):
        layer.apply(state, X)
    with pytest.raises(ValueError, match=r"feature size mismatch.*dim = 4"):
        layer.apply(state, X[:, :3], train=False)
    with pytest.raises(ValueError, match=r"`mask` must be a bool array of shape \(8,\)"):
        layer.apply(state, X, mask=jnp.ones((4,), bool), train=False)
    with pytest.raises(TypeError, match="mask"):
        layer.apply(state, X, mask=jnp.ones((8,)), train=False)
    with pytest.raises(TypeError, match="train"):
        layer.apply(state, X, train=1)
    with pytest.raises(TypeError, match="z"):
        layer.apply(state, X.astype(int), train=False)
    with pytest.raises(ValueError, match="rows_per_call = 8"):
        SF.apply(SF.init(KEYS[0]), jnp.concatenate([X, X]), key=KEYS[1])
