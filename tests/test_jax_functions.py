"""JAX functional API beyond the shared harness: low precision, vmap, keys, the z == c_k edge.

The harness (tests/test_conformance.py) already compares every function with the reference,
eagerly and under jax.jit. Shapes here are fixed and few, to keep compilations cheap.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy
dq = pytest.importorskip("diveq.backends.jax")

import diveq.reference as ref  # noqa: E402
from diveq._ops import OPS_BY_NAME  # noqa: E402

RNG = np.random.default_rng(0)
Z = RNG.standard_normal((6, 4))
BOOK = RNG.standard_normal((5, 4))
BOOKS_PRODUCT = RNG.standard_normal((2, 5, 2))
BOOKS_RESIDUAL = RNG.standard_normal((2, 5, 4)) * np.array([1.0, 0.5])[:, None, None]
KEY = jax.random.key(3)

LOW_PRECISION = [
    ("diveq", BOOK, "bfloat16"),
    ("sf_diveq", BOOK, "bfloat16"),
    ("product_sf_diveq", BOOKS_PRODUCT, "bfloat16"),
    ("residual_diveq", BOOKS_RESIDUAL, "bfloat16"),
    ("sf_quantize", BOOK, "bfloat16"),
    ("rotation_trick", BOOK, "bfloat16"),
    ("diveq", BOOK, "float16"),
    ("residual_sf_quantize", BOOKS_RESIDUAL, "float16"),
]


def _draws(name, books):
    """Explicit float32 draws for ``name`` (none for hard inference)."""
    op, kw = OPS_BY_NAME[name], {}
    noise_shape, dither_shape = op.noise_shape(Z.shape), op.dither_shape(books.shape)
    if op.noise_std:
        kw["noise_std"] = 0.1
    if noise_shape is not None:
        kw["noise"] = RNG.standard_normal(noise_shape)
    if dither_shape is not None:
        kw["dither"] = RNG.random(dither_shape)
    return {k: v.astype(np.float32) if isinstance(v, np.ndarray) else v for k, v in kw.items()}


@pytest.mark.parametrize(("name", "books", "dtype"), LOW_PRECISION, ids=lambda p: str(p)[:20])
def test_low_precision_searches_in_float32(name, books, dtype):
    """float16/bfloat16 in: the reference's indices on the rounded inputs, dtype kept."""
    z, c = jnp.asarray(Z, dtype=dtype), jnp.asarray(books, dtype=dtype)
    draws = _draws(name, books)
    got = getattr(dq, name)(z, c, **{k: jnp.asarray(v) for k, v in draws.items()})
    rounded = [np.asarray(a, dtype=np.float32).astype(np.float64) for a in (z, c)]
    want = getattr(ref, name)(*rounded, **draws)
    assert got.values.dtype == jnp.dtype(dtype)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(
        np.asarray(got.values, np.float32), want.values, rtol=1e-2, atol=2e-2
    )


def test_low_precision_gradients():
    z, c = jnp.asarray(Z, dtype=jnp.bfloat16), jnp.asarray(BOOK, dtype=jnp.bfloat16)

    def loss(z, c):
        return jnp.sum(dq.sf_diveq(z, c, key=KEY).values.astype(jnp.float32) ** 2)

    dz, dc = jax.jit(jax.grad(loss, argnums=(0, 1)))(z, c)
    assert dz.dtype == jnp.bfloat16 and dc.dtype == jnp.bfloat16
    assert np.all(np.isfinite(np.asarray(dz, np.float32)))
    assert np.all(np.isfinite(np.asarray(dc, np.float32)))


def test_z_on_a_codeword_gives_identity_gradient():
    """z == c_k: dz = g, the codeword gets nothing, nothing is NaN (docs: Semantics, DiVeQ)."""
    z = jnp.asarray(BOOK[[1, 3, 3]])
    g = jnp.asarray(RNG.standard_normal(z.shape))
    cases = [
        ("diveq", jnp.asarray(BOOK), {"noise_std": 0.0}),
        ("diveq", jnp.asarray(BOOK), {"noise_std": 1e-3}),
        ("product_diveq", jnp.asarray(BOOK.reshape(5, 2, 2).transpose(1, 0, 2)), {}),
        ("residual_diveq", jnp.asarray(BOOK[None]), {"noise_std": 0.0}),
        ("nsvq", jnp.asarray(BOOK), {}),
    ]
    for name, books, kw in cases:
        fn = getattr(dq, name)
        _, pull = jax.vjp(lambda z, c, fn=fn, kw=kw: fn(z, c, key=KEY, **kw).values, z, books)
        dz, dc = pull(g)
        np.testing.assert_array_equal(dz, g, err_msg=name)
        np.testing.assert_array_equal(dc, np.zeros(books.shape), err_msg=name)


def test_sf_vertex_hit_is_finite():
    """SF with z on a vertex: one error vector is zero; the gradient stays finite."""
    z, c = jnp.asarray(BOOK[:2]), jnp.asarray(BOOK)
    dither = jnp.zeros(4)
    _, pull = jax.vjp(lambda z, c: dq.sf_diveq(z, c, dither=dither, key=KEY).values, z, c)
    dz, dc = pull(jnp.ones_like(z))
    assert np.all(np.isfinite(dz)) and np.all(np.isfinite(dc))


def test_vmap_over_a_batch_of_codebooks():
    """vmap over codebooks (and keys) equals a loop; gradients too."""
    books = jnp.asarray(RNG.standard_normal((3, 5, 4)))
    z, g = jnp.asarray(Z), jnp.asarray(RNG.standard_normal(Z.shape))
    noise = jnp.asarray(RNG.standard_normal((2, *Z.shape)))
    dither = jnp.asarray(RNG.random((3, 4)))

    draws = {"noise_std": 0.1, "noise": noise}

    def f(z, c, lam):
        return dq.sf_diveq(z, c, dither=lam, **draws).values

    def grads(c, lam):
        return jax.vjp(lambda z, c: f(z, c, lam), z, c)[1](g)

    values = jax.vmap(f, in_axes=(None, 0, 0))(z, books, dither)
    dz, dc = jax.vmap(grads)(books, dither)
    for b in range(3):
        args = (Z, np.asarray(books[b]))
        np_draws = {"noise_std": 0.1, "noise": np.asarray(noise), "dither": np.asarray(dither[b])}
        want = ref.sf_diveq(*args, **np_draws)
        want_dz, want_dc = ref.sf_diveq_vjp(*args, np.asarray(g), **np_draws)
        np.testing.assert_allclose(values[b], want.values, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dz[b], want_dz, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dc[b], want_dc, rtol=1e-10, atol=1e-12)
    keys = jax.random.split(KEY, 3)
    sampled = jax.vmap(lambda c, k: dq.diveq(z, c, key=k).values)(books, keys)
    for b in range(3):
        np.testing.assert_array_equal(sampled[b], dq.diveq(z, books[b], key=keys[b]).values)


def test_missing_key_is_a_clear_error():
    z, c = jnp.asarray(Z), jnp.asarray(BOOK)
    with pytest.raises(ValueError, match="`key` is required"):
        dq.diveq(z, c)
    with pytest.raises(ValueError, match=r"`key` is required.*dither"):
        dq.sf_diveq(z, c, noise_std=0.0)
    with pytest.raises(ValueError, match="`key` is required"):
        jax.jit(lambda z, c: dq.product_sf_diveq(z, c, noise_std=0.0))(
            z, jnp.asarray(BOOKS_PRODUCT)
        )
    # deterministic and fully drawn calls need no key
    dq.diveq(z, c, noise_std=0.0)
    dq.sf_diveq(z, c, noise_std=0.0, dither=jnp.zeros(4))


def test_same_key_same_draws_and_jit_agrees():
    z, c = jnp.asarray(Z), jnp.asarray(BOOKS_RESIDUAL)
    eager = dq.residual_sf_diveq(z, c, noise_std=0.5, key=KEY)
    jitted = jax.jit(lambda z, c, k: dq.residual_sf_diveq(z, c, noise_std=0.5, key=k))(z, c, KEY)
    np.testing.assert_array_equal(eager.indices, jitted.indices)
    np.testing.assert_allclose(eager.values, jitted.values, rtol=1e-12)
    other = dq.residual_sf_diveq(z, c, noise_std=0.5, key=jax.random.key(4))
    assert not np.array_equal(other.values, eager.values)


def test_legacy_uint32_keys_work():
    out = dq.diveq(jnp.asarray(Z), jnp.asarray(BOOK), key=jax.random.PRNGKey(0))
    assert out.values.shape == Z.shape
