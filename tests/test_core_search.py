"""Core search details the conformance properties do not vary: tiling and dtypes."""

from __future__ import annotations

import numpy as np
import pytest

import diveq.core as core
import diveq.reference as ref


@pytest.mark.parametrize("chunk", [1, 2, 5, 64, None])
def test_chunked_search_equals_untiled(chunk):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((2, 7, 4))
    c = rng.standard_normal((9, 4))
    cbs = rng.standard_normal((2, 9, 2))
    np.testing.assert_array_equal(core.nearest(z, c, chunk_size=chunk), ref.nearest(z, c))
    got = core.sf_quantize(z, c, chunk_size=chunk)
    want = ref.sf_quantize(z, c)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.values, want.values, rtol=1e-12, atol=1e-12)
    got = core.product_sf_quantize(z, cbs, chunk_size=chunk)
    np.testing.assert_array_equal(got.indices, ref.product_sf_quantize(z, cbs).indices)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_chunk_size_must_be_positive_int(bad):
    with pytest.raises(ValueError, match="chunk_size"):
        core.nearest(np.zeros((2, 3)), np.zeros((4, 3)), chunk_size=bad)


def test_low_precision_searches_in_float32_and_keeps_dtype():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((16, 8)).astype(np.float16)
    c = rng.standard_normal((12, 8)).astype(np.float16)
    out = core.quantize(z, c)
    assert out.values.dtype == np.float16
    np.testing.assert_array_equal(
        out.indices, ref.nearest(z.astype(np.float64), c.astype(np.float64))
    )


def test_exact_projection_counterexample():
    """SPEC section 4: the official local search returns a point 0.994 away; exact is 0.1."""
    c = np.array([[-10.0, 0.1], [10.0, 0.1], [0.0, -1.0], [0.0, -5.0]])
    out = core.sf_quantize(np.zeros((1, 2)), c)
    np.testing.assert_allclose(out.values, [[0.0, 0.1]], atol=1e-12)
    assert out.indices.tolist() == [0]
    np.testing.assert_allclose(out.weights, [0.5])


def test_missing_draws_are_a_clear_error():
    z, c = np.zeros((2, 3)), np.ones((4, 3))
    with pytest.raises(ValueError, match=r"`noise` of shape \(2, 3\) is required"):
        core.diveq(z, c, noise_std=0.1)
    with pytest.raises(ValueError, match=r"`dither` of shape \(3,\) is required"):
        core.sf_diveq(z, c, noise_std=0.0)
    # noise_std = 0 needs no noise at all, and lands on the codeword
    np.testing.assert_allclose(core.diveq(z, c, noise_std=0).values, np.ones((2, 3)))


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_every_backend_tiles_the_search_exactly(backend, chunk):
    """Tiled searches (a Python loop, or ``lax.map`` on JAX, also under jit) change nothing."""
    rng = np.random.default_rng(5)
    z, c = rng.standard_normal((50, 3)), rng.standard_normal((9, 3))
    args = [backend.asarray(z, "float64"), backend.asarray(c, "float64")]
    got = backend.call(lambda a, b: backend.module.nearest(a, b, chunk_size=chunk), args, {})
    np.testing.assert_array_equal(backend.to_numpy(got), ref.nearest(z, c))
    got = backend.call(lambda a, b: backend.module.sf_quantize(a, b, chunk_size=chunk), args, {})
    np.testing.assert_array_equal(backend.to_numpy(got.indices), ref.sf_quantize(z, c).indices)


@pytest.mark.parametrize("scale", [1e-30, 1e20, 1e30])
def test_huge_and_tiny_magnitudes_pick_the_right_code(backend, scale):
    """float32 squared norms of 1e20-sized codewords overflow; the search must not notice."""
    rng = np.random.default_rng(11)
    z = (rng.standard_normal((40, 3)) * scale).astype(np.float32).astype(np.float64)
    c = (rng.standard_normal((7, 3)) * scale).astype(np.float32).astype(np.float64)
    args = [backend.asarray(z, "float32"), backend.asarray(c, "float32")]
    got = backend.call(lambda a, b: backend.module.nearest(a, b), args, {})
    np.testing.assert_array_equal(backend.to_numpy(got), ref.nearest(z, c))
    got = backend.call(lambda a, b: backend.module.sf_quantize(a, b), args, {})
    np.testing.assert_array_equal(backend.to_numpy(got.indices), ref.sf_quantize(z, c).indices)
    assert np.all(np.isfinite(backend.to_numpy(got.values)))


def test_polyline_vertices_go_to_the_first_segment(backend):
    """A vertex shared by two segments belongs to the first (``t = 1``), a run of repeated
    codewords to the segment that first reaches it, the last vertex to the last segment; rows
    beyond either end clip to it. Small integers: every score is exact in float32."""
    c = np.array([[0, 0], [4, 0], [4, 0], [4, 3], [0, 3], [0, 3], [0, 3], [2, 8]], float)
    z = np.concatenate([c, [[-3, -1], [7, -2], [4, 1], [2, 11], [0, 2], [2, 1]]])
    want = ref.sf_quantize(z, c)
    assert want.indices.tolist()[: len(c)] == [0, 0, 0, 2, 3, 3, 3, 6]  # the rule, as stated
    for dtype in ("float32", "float64"):
        args = [backend.asarray(z, dtype), backend.asarray(c, dtype)]
        got = backend.call(lambda a, b: backend.module.sf_quantize(a, b), args, {})
        np.testing.assert_array_equal(backend.to_numpy(got.indices), want.indices)
        np.testing.assert_allclose(backend.to_numpy(got.weights), want.weights, atol=1e-6)
        np.testing.assert_allclose(backend.to_numpy(got.values), want.values, atol=1e-5)
