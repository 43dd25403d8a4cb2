"""JAX layers step by step: SF warm-up, dead-code replacement, device axes, 32-bit mode.

Every layer configuration here is jitted once at module level; the schedule is followed call
by call against :mod:`diveq.reference`'s pure state functions.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy
dq = pytest.importorskip("diveq.backends.jax")

import diveq.reference as ref  # noqa: E402
from diveq.backends.jax._state import from_bits  # noqa: E402

RNG = np.random.default_rng(1)
X = jnp.asarray(RNG.standard_normal((8, 4)))
KEYS = jax.random.split(jax.random.key(1), 8)

SF = dq.SFDiVeQ(5, 4, skip_iters=4, avg_iters=2, rows_per_call=8)
SF_APPLY = jax.jit(SF.apply, static_argnames=("train",))


def test_sf_warmup_schedule_call_by_call():
    """Calls 1..3 pass z through; calls 2, 3 are kept; call 3 initialises; call 4 quantises."""
    state = SF.init(KEYS[0])
    first = state.codebook
    zs = [X * (i + 1) for i in range(4)]
    masks = [jnp.ones(8, bool)] * 4
    masks[1] = masks[1].at[jnp.array([0, 5])].set(False)  # masked rows skip the buffer
    zs[2] = zs[2].at[3].set(jnp.nan)  # so do non-finite rows
    g = jnp.asarray(RNG.standard_normal(X.shape))
    grad = jax.jit(jax.grad(lambda z: jnp.sum(SF.apply(state, z, key=KEYS[0])[0].values * g)))
    np.testing.assert_array_equal(grad(X), g)  # warm-up: gradient identity
    for call in (1, 2, 3, 4):
        out, state = SF_APPLY(state, zs[call - 1], key=KEYS[call], mask=masks[call - 1])
        assert int(state.calls) == call
        if call < 4:
            np.testing.assert_array_equal(out.indices, -1)
            np.testing.assert_array_equal(out.values, zs[call - 1])
            assert float(out.perplexity) == 1.0
        if call == 1:
            assert not bool(state.buffer_valid.any())
            np.testing.assert_array_equal(state.codebook, first)
        if call == 2:
            np.testing.assert_array_equal(state.buffer_valid[:8], masks[1])
            rows = from_bits(state.buffer[1:5], jnp.float32)  # kept as their bit patterns
            np.testing.assert_array_equal(rows, zs[1][1:5].astype(np.float32))
            np.testing.assert_array_equal(state.codebook, first)
        if call == 3:  # init from the valid rows of calls 2 and 3, in call order
            rows = np.concatenate([zs[1], zs[2]])
            valid = np.concatenate([masks[1], np.isfinite(zs[2]).all(-1)])
            want = ref.warmup_codebook(np.where(valid[:, None], rows, 0), 5, valid=valid)
            np.testing.assert_allclose(state.codebook, want, rtol=1e-6, atol=1e-6)
            assert not bool(state.buffer_valid.any()) and not bool(state.buffer.any())
        if call == 4:
            assert bool(jnp.all(out.indices >= 0))
            np.testing.assert_array_equal(state.hits.sum(), 8)
    released = SF.release_warmup(state)
    assert released.buffer is None and released.buffer_valid is None
    out, after = SF_APPLY(released, X, key=KEYS[5])
    assert int(after.calls) == 5 and bool(jnp.all(out.indices >= 0))


def test_sf_warmup_with_too_few_rows():
    """Eagerly: a clear error. Jitted (cannot raise): the codebook is kept."""
    state = SF.init(KEYS[0])
    few = jnp.zeros(8, bool).at[:2].set(True)
    for call in (1, 2):
        _, state = SF_APPLY(state, X, key=KEYS[call], mask=few)
    with pytest.raises(ValueError, match="at least K = 5 valid rows"):
        SF.apply(state, X, key=KEYS[3], mask=few)
    _, kept = SF_APPLY(state, X, key=KEYS[3], mask=few)
    np.testing.assert_array_equal(kept.codebook, state.codebook)
    with pytest.raises(ValueError, match="still needed"):
        SF.release_warmup(state)


def _far_code_books(m):
    """Codes 0..3 on the data, code 4 far away: it is never used."""
    books = np.concatenate([np.asarray(X[:4]), np.full((1, 4), 100.0)])
    if m == 0:
        return jnp.asarray(books)
    return jnp.asarray(np.stack([books[:, :2], books[:, 2:]]))


@pytest.mark.parametrize(
    "layer",
    [
        dq.DiVeQ(5, 4, replacement_iters=3, perturb_eps=1e-3),
        dq.ProductDiVeQ(2, 5, 4, replacement_iters=3, perturb_eps=1e-3),
    ],
    ids=["DiVeQ", "ProductDiVeQ"],
)
def test_dead_code_replacement_window(layer):
    composite = layer.layout != "single"
    state = dq.merge_params(_far_code_books(int(composite)), layer.init(KEYS[0]))
    start = state[0]
    apply = jax.jit(layer.apply)
    z = X.at[6].set(100.0).at[7].set(jnp.nan)  # row 6 sits on code 4 but is masked
    mask = jnp.ones(8, bool).at[6].set(False)
    hits = 0
    for call in (1, 2, 3, 4, 5, 6):
        out, state = apply(state, z, key=KEYS[call], mask=mask)
        idx = out.indices if composite else out.indices[:, None]
        hits = hits + np.stack(
            [ref.code_usage(np.asarray(idx[:, m]), 5) for m in range(idx.shape[1])]
        )
        books = np.asarray(state[0]).reshape(-1, 5, np.asarray(state[0]).shape[-1])
        before = np.asarray(start).reshape(books.shape)
        if call < 3:
            np.testing.assert_array_equal(books, before)
            np.testing.assert_array_equal(state.hits, hits[0] if not composite else hits)
        if call == 3:  # end of the window: code 4 replaced by a used code, counters reset
            np.testing.assert_array_equal(state.hits, 0)
            np.testing.assert_array_equal(state.calls_used, 0)
            np.testing.assert_array_equal(books[:, :4], before[:, :4])
            for m in range(books.shape[0]):
                gap = np.abs(books[m, 4] - books[m, :4]).max(-1)
                assert gap.min() < 1e-2, gap  # a perturbed copy of a live code
                assert hits[m, np.argmin(gap)] > 0
        if call == 6:  # second window: code 4 is used again or replaced again; 0..3 unchanged
            np.testing.assert_array_equal(books[:, :4], before[:, :4])


def test_device_axis_matches_one_device_with_the_global_batch():
    """vmap with an axis name stands in for data-parallel devices: usage counts are summed and
    warm-up rows gathered, so two shards of 4 rows equal one device with the 8 rows."""
    opts = {"skip_iters": 3, "avg_iters": 2, "noise_std": 0.0}
    single = dq.SFDiVeQ(5, 4, rows_per_call=8, **opts)
    shard = dq.SFDiVeQ(5, 4, rows_per_call=4, axis_name="d", **opts)
    one = jax.jit(single.apply)
    two = jax.jit(jax.vmap(lambda s, z, k: shard.apply(s, z, key=k), (0, 0, None), axis_name="d"))
    state1 = single.init(KEYS[0])
    state2 = jax.vmap(lambda _: shard.init(KEYS[0]))(jnp.arange(2))
    for call in (1, 2, 3, 4):
        z = X * call
        out1, state1 = one(state1, z, key=KEYS[call])
        out2, state2 = two(state2, jnp.reshape(z, (2, 4, 4)), KEYS[call])
        np.testing.assert_array_equal(jnp.reshape(out2.indices, (8,)), out1.indices)
        for b in range(2):
            np.testing.assert_allclose(state2.codebook[b], state1.codebook, rtol=1e-6)
            np.testing.assert_array_equal(state2.hits[b], state1.hits)
            np.testing.assert_allclose(out2.perplexity[b], out1.perplexity, rtol=1e-6)


def test_layers_in_32_bit_mode():
    """JAX's default (x64 off): int32 counters, float32 everything, a warm-up that jits."""
    with jax.enable_x64(False):
        layer = dq.ProductDiVeQ(
            2, 5, 4, space_filling=True, skip_iters=2, avg_iters=1, rows_per_call=8
        )
        state = layer.init(jax.random.key(0))
        apply = jax.jit(layer.apply)
        z = jnp.asarray(np.asarray(X, np.float32))
        for i in range(3):
            out, state = apply(state, z, key=jax.random.key(i))
        assert state.calls.dtype == jnp.int32 and state.hits.dtype == jnp.int32
        assert out.values.dtype == jnp.float32 and bool(jnp.all(out.indices >= 0))
        assert int(state.calls) == 3


def test_residual_sf_warmup_initialises_each_stage_from_its_residuals():
    """Composite SF: residual DiVeQ during the warm-up, then codebook m is initialised from
    the stage-m residuals x_m = z - sum_{j<m} C_j[k_j] the warm-up calls produced."""
    layer = dq.ResidualDiVeQ(
        2,
        5,
        4,
        space_filling=True,
        skip_iters=3,
        avg_iters=2,
        rows_per_call=8,
        noise_std=0.0,
        replacement_iters=None,
    )
    state = layer.init(KEYS[0])
    books = np.asarray(state.codebooks, np.float64)
    apply = jax.jit(layer.apply)
    stages = []
    for call in (1, 2):
        z = X * call
        out, state = apply(state, z, key=KEYS[call])
        k = np.asarray(out.indices)
        assert (k >= 0).all()  # warm-up quantises with residual DiVeQ
        np.testing.assert_array_equal(k, ref.residual_quantize(np.asarray(z), books).indices)
        stages.append([np.asarray(z), np.asarray(z) - books[0][k[:, 0]]])
    for m in range(2):
        rows = np.concatenate([stages[0][m], stages[1][m]])
        want = ref.warmup_codebook(rows, 5)
        np.testing.assert_allclose(state.codebooks[m], want, rtol=1e-6, atol=1e-6)  # float32
    out, state = apply(state, X, key=KEYS[3])
    assert bool(jnp.all(out.indices >= 0)) and int(state.calls) == 3
