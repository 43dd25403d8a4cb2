"""Invariants of the reference (SPEC §2-5, §8): conservation, limits, edge cases, brute force."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diveq.reference as ref

FAST = settings(max_examples=40, deadline=None)


def brute_nearest(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Nearest row of ``c`` for every row of ``x``; ``min`` keeps the first on exact ties."""
    return np.array([min(range(len(c)), key=lambda j: np.sum((row - c[j]) ** 2)) for row in x])


def dithered(c: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return (1 - lam)[:, None] * c[:-1] + lam[:, None] * c[1:]


def separated(x: np.ndarray, points: np.ndarray, gap: float = 1e-6) -> bool:
    dist = np.sum((x[:, None, :] - points[None]) ** 2, axis=-1)
    if points.shape[0] < 2:
        return True
    best2 = np.sort(dist, axis=1)[:, :2]
    return bool(np.all(best2[:, 1] - best2[:, 0] > gap * np.maximum(best2[:, 1], 1e-300)))


def floats(shape: Any) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, shape, elements=st.floats(-4, 4, width=64))


@st.composite
def latents_and_codebook(draw: Any, min_codes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    n, k, d = draw(st.integers(1, 5)), draw(st.integers(min_codes, 5)), draw(st.integers(1, 3))
    return draw(floats((n, d))), draw(floats((k, d)))


def random_problem(seed: int, lead: tuple[int, ...], k: int, d: int) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((*lead, d)), rng.standard_normal((k, d)), rng


# --- per-row conservation: the parts of the gradient sum to g ---------------------------------


@FAST
@given(data=latents_and_codebook(), s=st.sampled_from([0.0, 1e-3, 1.0]), seed=st.integers(0, 99))
def test_diveq_parts_sum_to_g(data, s, seed):
    z, c = data
    rng = np.random.default_rng(seed)
    xi, g = rng.standard_normal(z.shape), rng.standard_normal(z.shape)
    for n in range(z.shape[0]):
        dz, dc = ref.diveq_vjp(z[n : n + 1], c, g[n : n + 1], noise_std=s, noise=xi[n : n + 1])
        assert np.all(np.isfinite(dz)) and np.all(np.isfinite(dc))
        np.testing.assert_allclose(dz[0] + dc.sum(axis=0), g[n], atol=1e-12)
        assert np.count_nonzero(np.any(dc != 0, axis=1)) <= 1  # one codeword at most


@FAST
@given(
    data=latents_and_codebook(min_codes=2),
    s=st.sampled_from([0.0, 1e-3, 1.0]),
    seed=st.integers(0, 99),
)
def test_sf_diveq_parts_sum_to_g(data, s, seed):
    z, c = data
    rng = np.random.default_rng(seed)
    xi, g, lam = (
        rng.standard_normal((2, *z.shape)),
        rng.standard_normal(z.shape),
        rng.random(len(c) - 1),
    )
    for n in range(z.shape[0]):
        dz, dc = ref.sf_diveq_vjp(
            z[n : n + 1], c, g[n : n + 1], noise_std=s, dither=lam, noise=xi[:, n : n + 1]
        )
        assert np.all(np.isfinite(dz)) and np.all(np.isfinite(dc))
        np.testing.assert_allclose(dz[0] + dc.sum(axis=0), g[n], atol=1e-12)


@pytest.mark.parametrize("sf", [False, True])
@FAST
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 3), width=st.integers(1, 3))
def test_product_parts_sum_to_g(sf, seed, m, width):
    rng = np.random.default_rng(seed)
    k, d = 4, m * width
    z, cs, g = (
        rng.standard_normal((3, d)),
        rng.standard_normal((m, k, width)),
        rng.standard_normal((3, d)),
    )
    xi, lam = rng.standard_normal(z.shape), rng.random((m, k - 1))
    for n in range(3):
        kw = {"noise_std": 0.1, "noise": xi[n : n + 1]}
        if sf:
            dz, dcs = ref.product_sf_diveq_vjp(z[n : n + 1], cs, g[n : n + 1], dither=lam, **kw)
        else:
            dz, dcs = ref.product_diveq_vjp(z[n : n + 1], cs, g[n : n + 1], **kw)
        np.testing.assert_allclose(dz[0] + np.concatenate(dcs.sum(axis=1)), g[n], atol=1e-12)


@pytest.mark.parametrize("sf", [False, True])
def test_residual_every_stage_receives_the_full_part(sf):
    rng = np.random.default_rng(3)
    m, k, d = 3, 4, 5
    z, cs, g = (
        rng.standard_normal((1, d)),
        rng.standard_normal((m, k, d)),
        rng.standard_normal((1, d)),
    )
    xi, lam = rng.standard_normal(z.shape), rng.random((m, k - 1))
    if sf:
        dz, dcs = ref.residual_sf_diveq_vjp(z, cs, g, noise_std=0.1, noise=xi, dither=lam)
    else:
        dz, dcs = ref.residual_diveq_vjp(z, cs, g, noise_std=0.1, noise=xi)
    for stage in range(m):  # each stage's codeword part(s) add up to g - dz
        np.testing.assert_allclose(dcs[stage].sum(axis=0), g[0] - dz[0], atol=1e-12)


# --- noise_std -> 0 limits and noise_std = 0 exactly --------------------------------------------


def _composite_q(z, cs, lam, *, product, sf):
    """Independent ``q`` of SPEC §5 (hard, or at the dithered points); rejects near-ties."""
    m_books, _, dm = cs.shape
    x, parts = z, []
    for m in range(m_books):
        target = z[:, m * dm : (m + 1) * dm] if product else x
        points = dithered(cs[m], lam[m]) if sf else cs[m]
        assume(separated(target, points))
        part = points[brute_nearest(target, points)]
        parts.append(part)
        x = x if product else x - part
    return np.concatenate(parts, axis=1) if product else np.sum(parts, axis=0)


@FAST
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 6), d=st.integers(1, 4))
def test_single_limits_as_noise_std_goes_to_zero(seed, k, d):
    z, c, rng = random_problem(seed, (4,), k, d)
    lam = rng.random(k - 1)
    assume(separated(z, c) and separated(z, dithered(c, lam)))
    ck = c[brute_nearest(z, c)]
    p = dithered(c, lam)[brute_nearest(z, dithered(c, lam))]
    xi = rng.standard_normal(z.shape)
    small = ref.diveq(z, c, noise_std=1e-9, noise=xi).values
    np.testing.assert_allclose(small, ck, atol=1e-7)
    np.testing.assert_allclose(ref.diveq(z, c, noise_std=0.0).values, ck, atol=1e-12)
    xi2 = rng.standard_normal((2, *z.shape))
    np.testing.assert_allclose(
        ref.sf_diveq(z, c, noise_std=1e-9, dither=lam, noise=xi2).values, p, atol=1e-7
    )
    np.testing.assert_allclose(ref.sf_diveq(z, c, noise_std=0.0, dither=lam).values, p, atol=1e-12)


@pytest.mark.parametrize(
    ("fn", "product", "sf"),
    [
        (ref.product_diveq, True, False),
        (ref.residual_diveq, False, False),
        (ref.product_sf_diveq, True, True),
        (ref.residual_sf_diveq, False, True),
    ],
)
@FAST
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 3))
def test_composite_limits_as_noise_std_goes_to_zero(fn, product, sf, seed, m):
    rng = np.random.default_rng(seed)
    k, width = 4, 2
    d = m * width if product else 3
    z = rng.standard_normal((5, d))
    cs = rng.standard_normal((m, k, width if product else d))
    lam = rng.random((m, k - 1))
    kw = {"dither": lam} if sf else {}
    q = _composite_q(z, cs, lam, product=product, sf=sf)
    np.testing.assert_allclose(fn(z, cs, noise_std=0.0, **kw).values, q, atol=1e-12)
    xi = rng.standard_normal(z.shape)
    np.testing.assert_allclose(fn(z, cs, noise_std=1e-9, noise=xi, **kw).values, q, atol=1e-7)


def test_noise_std_scales_the_distance_to_the_codeword():
    rng = np.random.default_rng(0)
    z, c = rng.standard_normal((200, 8)), rng.standard_normal((16, 8))
    xi = rng.standard_normal(z.shape)
    s = 1e-4
    out = ref.diveq(z, c, noise_std=s, noise=xi)
    ck = c[out.indices]
    r = np.linalg.norm(ck - z, axis=1)
    np.testing.assert_allclose(np.linalg.norm(out.values - z, axis=1), r, rtol=1e-12)
    # the value is on the sphere around z, about s * sqrt(D - 1) from c_k (for s << r)
    ratio = np.linalg.norm(out.values - ck, axis=1) / (s * np.sqrt(7))
    assert 0.6 < ratio.mean() < 1.4


# --- exact polyline projection (SPEC §4) --------------------------------------------------------


def test_exact_projection_counterexample():
    c = np.array([[-10.0, 0.1], [10.0, 0.1], [0.0, -1.0], [0.0, -5.0]])
    out = ref.sf_quantize(np.zeros((1, 2)), c)
    np.testing.assert_allclose(out.values, [[0.0, 0.1]], atol=1e-15)
    assert out.indices.tolist() == [0]
    np.testing.assert_allclose(out.weights, [0.5])
    np.testing.assert_allclose(np.linalg.norm(out.values), 0.1)


@FAST
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 6), d=st.integers(1, 4))
def test_sf_quantize_is_never_farther_than_dense_samples(seed, k, d):
    z, c, _ = random_problem(seed, (6,), k, d)
    out = ref.sf_quantize(z, c)
    t = np.linspace(0.0, 1.0, 257)
    samples = np.concatenate([c[j] + t[:, None] * (c[j + 1] - c[j]) for j in range(k - 1)])
    best = np.min(np.sum((z[:, None] - samples[None]) ** 2, axis=-1), axis=1)
    got = np.sum((z - out.values) ** 2, axis=1)
    assert np.all(got <= best + 1e-12)
    i, w = out.indices, out.weights
    assert np.all((w >= 0) & (w <= 1)) and np.all((i >= 0) & (i <= k - 2))
    np.testing.assert_allclose(out.values, c[i] + w[:, None] * (c[i + 1] - c[i]), atol=1e-12)


@FAST
@given(data=latents_and_codebook())
def test_quantize_matches_brute_force(data):
    z, c = data
    out = ref.quantize(z, c)
    assert out.indices.tolist() == brute_nearest(z, c).tolist()  # first index on exact ties
    np.testing.assert_array_equal(out.values, c[out.indices])
    np.testing.assert_array_equal(ref.nearest(z, c, chunk_size=2), out.indices)


# --- degenerate inputs -------------------------------------------------------------------------


@pytest.mark.parametrize("s", [0.0, 1e-3])
def test_z_equal_to_codeword_is_finite_and_passes_g(s):
    c = np.array([[0.0, 1.0], [2.0, -1.0], [3.0, 3.0]])
    z = c[[1, 2]].copy()
    g = np.array([[1.0, -2.0], [0.5, 0.25]])
    xi = np.ones(z.shape)
    np.testing.assert_array_equal(ref.diveq(z, c, noise_std=s, noise=xi).values, z)
    dz, dc = ref.diveq_vjp(z, c, g, noise_std=s, noise=xi)
    np.testing.assert_array_equal(dz, g)
    np.testing.assert_array_equal(dc, np.zeros_like(c))
    dz, dc = ref.nsvq_vjp(z, c, g, noise=xi)
    np.testing.assert_array_equal(dz, g)
    np.testing.assert_array_equal(dc, np.zeros_like(c))
    np.testing.assert_array_equal(ref.nsvq(z, c, noise=xi).values, z)


@pytest.mark.parametrize("s", [0.0, 1e-3])
def test_sf_with_z_on_a_vertex_is_finite_and_conserves(s):
    c = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    lam = np.array([0.0, 0.5])  # p_0 = c_0 exactly
    z, g = c[:1].copy(), np.array([[0.3, -0.7]])
    xi = np.ones((2, *z.shape))
    out = ref.sf_diveq(z, c, noise_std=s, dither=lam, noise=xi)
    assert out.indices.tolist() == [0] and out.weights.tolist() == [0.0]
    np.testing.assert_allclose(out.values, z, atol=1e-12)
    dz, dc = ref.sf_diveq_vjp(z, c, g, noise_std=s, dither=lam, noise=xi)
    assert np.all(np.isfinite(dz)) and np.all(np.isfinite(dc))
    np.testing.assert_array_equal(dc[0], 0.0)  # r1 = 0: c_0 gets nothing
    np.testing.assert_allclose(dz[0] + dc.sum(axis=0), g[0], atol=1e-15)
    for composite in (ref.product_sf_diveq_vjp, ref.residual_sf_diveq_vjp):
        dz, dc = composite(z, c[None], g, noise_std=s, dither=lam[None], noise=xi[0])
        np.testing.assert_array_equal(dz, g)
        np.testing.assert_array_equal(dc, 0.0)


def test_duplicate_codewords_first_index_wins():
    c = np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    z = np.array([[0.1, -0.1], [0.9, 0.8]])
    assert ref.nearest(z, c).tolist() == [1, 0]
    assert ref.quantize(z, c).indices.tolist() == [1, 0]
    assert ref.diveq(z, c, noise_std=0.0).indices.tolist() == [1, 0]
    # a zero-length segment (c_1 == c_2): t = 0, and the earlier segment wins the tie
    out = ref.sf_quantize(np.array([[0.0, 0.0]]), c)
    assert out.indices.tolist() == [0] and np.all(np.isfinite(out.weights))
    out = ref.sf_quantize(np.array([[-1.0, -1.0]]), c[1:3])
    assert out.indices.tolist() == [0] and out.weights.tolist() == [0.0]


def test_single_codeword_and_two_vertex_polyline():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4, 3))
    c1 = rng.standard_normal((1, 3))
    out = ref.diveq(z, c1, noise_std=0.0)
    assert out.indices.tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(out.values, np.repeat(c1, 4, axis=0), atol=1e-12)
    c2 = rng.standard_normal((2, 3))
    out = ref.sf_diveq(z, c2, noise_std=0.0, dither=[0.3])
    assert out.indices.tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(out.values, np.repeat(0.7 * c2[:1] + 0.3 * c2[1:], 4, axis=0))
    assert ref.sf_quantize(z, c2).indices.tolist() == [0, 0, 0, 0]


# --- shapes: empty input and leading axes ------------------------------------------------------


def _all_calls(z: np.ndarray) -> dict[str, Any]:
    """Every public array function of the reference, called on latents ``z`` (D = 4)."""
    rng = np.random.default_rng(0)
    c, cs, cp = (
        rng.standard_normal((3, 4)),
        rng.standard_normal((2, 3, 4)),
        rng.standard_normal((2, 3, 2)),
    )
    g = np.ones(z.shape)
    xi, xi2 = np.ones(z.shape), np.ones((2, *z.shape))
    lam, lam2 = np.full(2, 0.5), np.full((2, 2), 0.5)
    idx = np.zeros(z.shape[:-1], dtype=np.int64)
    return {
        "nearest": ref.nearest(z, c),
        "quantize": ref.quantize(z, c),
        "sf_quantize": ref.sf_quantize(z, c),
        "diveq": ref.diveq(z, c, noise=xi),
        "sf_diveq": ref.sf_diveq(z, c, dither=lam, noise=xi2),
        "product_diveq": ref.product_diveq(z, cp, noise=xi),
        "residual_diveq": ref.residual_diveq(z, cs, noise=xi),
        "product_sf_diveq": ref.product_sf_diveq(z, cp, dither=lam2, noise=xi),
        "residual_sf_diveq": ref.residual_sf_diveq(z, cs, dither=lam2, noise=xi),
        "product_quantize": ref.product_quantize(z, cp),
        "residual_quantize": ref.residual_quantize(z, cs),
        "product_sf_quantize": ref.product_sf_quantize(z, cp),
        "residual_sf_quantize": ref.residual_sf_quantize(z, cs),
        "ste": ref.ste(z, c),
        "nsvq": ref.nsvq(z, c, noise=xi),
        "rotation_trick": ref.rotation_trick(z, c),
        "commitment_loss": ref.commitment_loss(z, c, idx),
        "diveq_vjp": ref.diveq_vjp(z, c, g, noise=xi),
        "sf_diveq_vjp": ref.sf_diveq_vjp(z, c, g, dither=lam, noise=xi2),
        "product_diveq_vjp": ref.product_diveq_vjp(z, cp, g, noise=xi),
        "residual_diveq_vjp": ref.residual_diveq_vjp(z, cs, g, noise=xi),
        "product_sf_diveq_vjp": ref.product_sf_diveq_vjp(z, cp, g, dither=lam2, noise=xi),
        "residual_sf_diveq_vjp": ref.residual_sf_diveq_vjp(z, cs, g, dither=lam2, noise=xi),
        "ste_vjp": ref.ste_vjp(z, c, g),
        "nsvq_vjp": ref.nsvq_vjp(z, c, g, noise=xi),
        "rotation_trick_vjp": ref.rotation_trick_vjp(z, c, g),
        "commitment_loss_vjp": ref.commitment_loss_vjp(z, c, idx, np.float64(1.0)),
        "code_usage": ref.code_usage(idx, 3),
        "perplexity": ref.perplexity(idx, 3),
    }


def _flat(result: Any) -> list[np.ndarray]:
    return list(result) if isinstance(result, tuple) else [result]


@pytest.mark.parametrize("lead", [(0,), (2, 0), (0, 3)])
def test_empty_input_gives_empty_outputs_of_the_right_shapes(lead):
    z = np.zeros((*lead, 4))
    for name, result in _all_calls(z).items():
        arrays = _flat(result)
        assert all(isinstance(a, np.ndarray) for a in arrays), name
        if name.endswith("_vjp"):
            dz, dbooks = arrays
            assert dz.shape == z.shape, name
            assert dbooks.shape in ((3, 4), (2, 3, 4), (2, 3, 2)) and np.all(dbooks == 0), name
        elif name in ("commitment_loss", "perplexity"):
            assert arrays[0].shape == () and arrays[0] == (
                0.0 if name == "commitment_loss" else 1.0
            )
        elif name == "code_usage":
            assert arrays[0].tolist() == [0, 0, 0]
        else:
            for arr in arrays:
                assert arr.shape[: len(lead)] == lead and arr.size == 0, (name, arr.shape)
    assert ref.quantize(z, np.ones((3, 4))).values.shape == z.shape
    assert ref.product_diveq(z, np.ones((2, 3, 2)), noise_std=0.0).indices.shape == (*lead, 2)


def test_leading_axes_match_the_flattened_rows():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((2, 5, 4))  # (B, T, D); no codebook shape starts with (2, 5)
    batched = _all_calls(z)
    flat = _all_calls(z.reshape(10, 4))
    for name, result in batched.items():
        for got, want in zip(_flat(result), _flat(flat[name]), strict=True):
            if got.shape[:2] == (2, 5):
                got = got.reshape(10, *got.shape[2:])
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15, err_msg=name)


# --- dtypes, input handling, draws -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_low_precision_input_is_upcast_and_outputs_are_float64(dtype):
    rng = np.random.default_rng(2)
    z, c = rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal((4, 3)).astype(dtype)
    out = ref.sf_diveq(z, c, rng=rng)
    assert out.values.dtype == np.float64 and out.weights.dtype == np.float64
    assert out.indices.dtype == np.int64
    want = ref.quantize(z.astype(np.float64), c.astype(np.float64))
    got = ref.quantize(z, c)
    np.testing.assert_array_equal(got.values, want.values)
    assert ref.quantize(z.tolist(), c.tolist()).indices.tolist() == want.indices.tolist()


def test_inputs_are_not_mutated():
    rng = np.random.default_rng(4)
    z, c, g = rng.standard_normal((5, 4)), rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    xi, lam = rng.standard_normal((2, 5, 4)), rng.random(2)
    saved = [a.copy() for a in (z, c, g, xi, lam)]
    ref.sf_diveq(z, c, dither=lam, noise=xi)
    ref.sf_diveq_vjp(z, c, g, dither=lam, noise=xi)
    ref.diveq_vjp(z, c, g, noise=xi[0])
    ref.residual_sf_diveq_vjp(z, c[None], g, dither=lam[None], noise=xi[0])
    for before, after in zip(saved, (z, c, g, xi, lam), strict=True):
        np.testing.assert_array_equal(before, after)


def test_sampled_draws_equal_explicit_draws_from_the_same_generator():
    rng = np.random.default_rng(9)
    z, c = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    got = ref.diveq(z, c, rng=np.random.default_rng(1))
    want = ref.diveq(z, c, noise=np.random.default_rng(1).standard_normal(z.shape))
    np.testing.assert_array_equal(got.values, want.values)
    # SF: one generator, the dither first, then the noise
    gen = np.random.default_rng(2)
    lam, xi = gen.random(4), gen.standard_normal((2, 4, 3))
    got = ref.sf_diveq(z, c, rng=np.random.default_rng(2))
    want = ref.sf_diveq(z, c, dither=lam, noise=xi)
    np.testing.assert_array_equal(got.values, want.values)
    np.testing.assert_array_equal(got.weights, want.weights)
    # noise_std = 0 needs no noise and uses none
    assert np.array_equal(
        ref.diveq(z, c, noise_std=0.0).values, ref.diveq(z, c, noise_std=0).values
    )


def test_composite_inference_matches_per_block_and_per_stage_calls():
    rng = np.random.default_rng(11)
    z = rng.standard_normal((6, 4))
    cp, cs = rng.standard_normal((2, 5, 2)), rng.standard_normal((3, 5, 4))
    out = ref.product_quantize(z, cp)
    for m in range(2):
        block = ref.quantize(z[:, 2 * m : 2 * m + 2], cp[m])
        np.testing.assert_array_equal(out.indices[:, m], block.indices)
        np.testing.assert_array_equal(out.values[:, 2 * m : 2 * m + 2], block.values)
    out = ref.product_sf_quantize(z, cp)
    for m in range(2):
        block = ref.sf_quantize(z[:, 2 * m : 2 * m + 2], cp[m])
        np.testing.assert_array_equal(out.indices[:, m], block.indices)
        np.testing.assert_array_equal(out.weights[:, m], block.weights)
        np.testing.assert_array_equal(out.values[:, 2 * m : 2 * m + 2], block.values)
    for fn, single in (
        (ref.residual_quantize, ref.quantize),
        (ref.residual_sf_quantize, ref.sf_quantize),
    ):
        out = fn(z, cs)
        x, total = z, np.zeros_like(z)
        for m in range(3):
            stage = single(x, cs[m])
            np.testing.assert_array_equal(out.indices[:, m], stage.indices)
            x, total = x - stage.values, total + stage.values
        np.testing.assert_allclose(out.values, total, atol=1e-14)
