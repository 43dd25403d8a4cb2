"""Training-state helpers of the reference (SPEC §7): usage, perplexity, replacement, warm-up."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diveq.reference as ref

FAST = settings(max_examples=40, deadline=None)


# --- code_usage and perplexity -----------------------------------------------------------------


@FAST
@given(
    idx=hnp.arrays(
        np.int64,
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        elements=st.integers(-1, 4),
    ),
)
def test_code_usage_counts_and_ignores_minus_one(idx):
    counts = ref.code_usage(idx, 5)
    assert counts.dtype == np.int64 and counts.shape == (5,)
    assert counts.tolist() == [int(np.sum(idx == k)) for k in range(5)]
    assert counts.sum() == np.sum(idx >= 0)


def test_code_usage_accepts_lists_and_other_integer_dtypes():
    assert ref.code_usage([[0, 2], [2, -1]], 3).tolist() == [1, 0, 2]
    assert ref.code_usage(np.array([1, 1], dtype=np.int32), 2).tolist() == [0, 2]


@pytest.mark.parametrize("k", [1, 2, 7, 64])
def test_perplexity_of_uniform_usage_is_k_and_of_one_code_is_one(k):
    uniform = np.tile(np.arange(k), 3)
    got = ref.perplexity(uniform, k)
    assert isinstance(got, np.ndarray) and got.shape == () and got.dtype == np.float64
    np.testing.assert_allclose(got, k, rtol=1e-8)
    np.testing.assert_allclose(ref.perplexity(np.full(10, k - 1), k), 1.0, rtol=1e-8)
    # invalid rows are not part of the distribution
    with_invalid = np.concatenate([uniform, np.full(50, -1)])
    np.testing.assert_allclose(ref.perplexity(with_invalid, k), k, rtol=1e-8)


def test_perplexity_formula_and_empty_input():
    idx = np.array([0, 0, 0, 1, 2, 2])
    p = np.array([3, 1, 2]) / 6
    want = np.exp(-np.sum(p * np.log(p + 1e-10)))
    np.testing.assert_allclose(ref.perplexity(idx, 4), want, rtol=1e-14)
    assert ref.perplexity(np.zeros(0, dtype=np.int64), 4) == 1.0
    assert ref.perplexity(np.full((2, 3), -1), 4) == 1.0


# --- update_usage and dead_codes ---------------------------------------------------------------


def test_update_usage_adds_rows_and_presence():
    hits, calls = np.array([5, 0, 2, 0]), np.array([3, 0, 1, 0])
    new_hits, new_calls = ref.update_usage(hits, calls, np.array([[0, 0], [2, -1]]), 4)
    assert new_hits.tolist() == [7, 0, 3, 0] and new_calls.tolist() == [4, 0, 2, 0]
    assert new_hits.dtype == np.int64 and new_calls.dtype == np.int64
    assert hits.tolist() == [5, 0, 2, 0]  # not mutated
    same = ref.update_usage(hits, calls, np.zeros((0,), dtype=np.int64), 4)
    assert same[0].tolist() == hits.tolist() and same[1].tolist() == calls.tolist()


def test_dead_codes_threshold():
    calls = np.array([0, 1, 2, 100])
    dead = ref.dead_codes(calls, replacement_iters=100, discard_threshold=0.01)
    assert dead.dtype == np.bool_ and dead.tolist() == [True, False, False, False]
    dead = ref.dead_codes(calls, replacement_iters=100, discard_threshold=0.02)
    assert dead.tolist() == [True, True, False, False]  # 0.02 < 0.02 is False
    assert not ref.dead_codes(calls, replacement_iters=10, discard_threshold=0.0).any()


# --- replace_dead_codes ------------------------------------------------------------------------

KW = {"replacement_iters": 100, "discard_threshold": 0.01, "perturb_eps": 0.0}


def test_replacement_uses_inverse_cdf_donors_proportional_to_hits():
    codebook = np.arange(10.0).reshape(5, 2)
    hits = np.array([0, 1, 0, 3, 0])  # live: 1 (w=1) and 3 (w=3); total 4
    calls = np.array([0, 5, 0, 5, 1])  # code 4 is alive but has no hits
    noise = np.zeros((5, 2))
    # u * 4 in [0, 1) -> donor 1; in [1, 4) -> donor 3
    for u, donor in [(0.0, 1), (0.2499, 1), (0.25, 3), (0.9999, 3)]:
        uniform = np.full(5, u)
        new, replaced = ref.replace_dead_codes(
            codebook, hits, calls, uniform=uniform, noise=noise, **KW
        )
        assert replaced.tolist() == [True, False, True, False, False]
        np.testing.assert_array_equal(new[[0, 2]], codebook[[donor, donor]])
        np.testing.assert_array_equal(new[[1, 3, 4]], codebook[[1, 3, 4]])


@FAST
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 8))
def test_replacement_donors_are_live_with_hits_and_perturbed(seed, k):
    rng = np.random.default_rng(seed)
    codebook = rng.standard_normal((k, 3))
    calls = rng.integers(0, 3, size=k)
    hits = calls * rng.integers(1, 4, size=k)
    uniform, noise = rng.random(k), rng.standard_normal((k, 3))
    kw = {**KW, "perturb_eps": 1e-3}
    new, replaced = ref.replace_dead_codes(
        codebook, hits, calls, uniform=uniform, noise=noise, **kw
    )
    dead = calls == 0
    np.testing.assert_array_equal(new[~dead], codebook[~dead])
    if dead.all() or not dead.any():
        assert not replaced.any()
        np.testing.assert_array_equal(new, codebook)
        return
    assert replaced.tolist() == dead.tolist()
    cdf = np.cumsum(hits * ~dead)
    for j in np.flatnonzero(dead):
        donor = int(np.argmax(cdf > uniform[j] * cdf[-1]))  # first index past the target
        assert not dead[donor] and hits[donor] > 0
        np.testing.assert_allclose(new[j], codebook[donor] + 1e-3 * noise[j], rtol=1e-15)


def test_replacement_frequencies_follow_hits():
    k = 4
    codebook = np.eye(k)
    hits, calls = np.array([0, 1, 2, 5]), np.array([0, 1, 1, 1])
    grid = (np.arange(8000) + 0.5) / 8000
    donors = []
    for u in grid[::10]:
        new, _ = ref.replace_dead_codes(
            codebook, hits, calls, uniform=np.full(k, u), noise=np.zeros((k, k)), **KW
        )
        donors.append(int(np.argmax(new[0])))
    share = np.bincount(donors, minlength=k) / len(donors)
    np.testing.assert_allclose(share, [0, 1 / 8, 2 / 8, 5 / 8], atol=2e-3)


def test_replacement_does_nothing_when_none_or_all_dead():
    codebook = np.arange(6.0).reshape(3, 2)
    draws = {"uniform": np.full(3, 0.5), "noise": np.ones((3, 2))}
    for calls in (np.array([5, 5, 5]), np.array([0, 0, 0])):
        new, replaced = ref.replace_dead_codes(codebook, np.array([1, 2, 3]), calls, **draws, **KW)
        np.testing.assert_array_equal(new, codebook)
        assert new is not codebook and not replaced.any() and replaced.dtype == np.bool_
    # live codes without any hit give sum(w) = 0: nothing to draw from
    new, replaced = ref.replace_dead_codes(
        codebook, np.array([0, 0, 0]), np.array([0, 1, 1]), **draws, **KW
    )
    np.testing.assert_array_equal(new, codebook)
    assert not replaced.any()


# --- warmup_codebook ---------------------------------------------------------------------------


def test_warmup_codebook_means_of_consecutive_chunks():
    rows = np.arange(14.0).reshape(7, 2)  # R = 7, K = 3 -> h = 2, the last row is unused
    got = ref.warmup_codebook(rows, 3)
    np.testing.assert_array_equal(got, [rows[0:2].mean(0), rows[2:4].mean(0), rows[4:6].mean(0)])
    assert got.dtype == np.float64 and got.shape == (3, 2)


def test_warmup_codebook_keeps_valid_rows_in_order():
    rows = np.array([[1.0], [np.nan], [3.0], [100.0], [5.0], [7.0]])
    valid = np.array([True, False, True, False, True, True])
    np.testing.assert_array_equal(ref.warmup_codebook(rows, 2, valid=valid), [[2.0], [6.0]])
    np.testing.assert_array_equal(ref.warmup_codebook(rows[:1], 1), [[1.0]])


def test_warmup_codebook_needs_at_least_k_valid_rows():
    rows = np.ones((5, 3))
    valid = np.array([True, False, True, False, False])
    with pytest.raises(ValueError, match=r"K = 3.*R_valid = 2"):
        ref.warmup_codebook(rows, 3, valid=valid)
    with pytest.raises(ValueError, match="rows"):
        ref.warmup_codebook(rows, 6)
    with pytest.raises(ValueError, match="`rows` must be finite"):
        ref.warmup_codebook(np.full((3, 1), np.inf), 2)
    with pytest.raises(TypeError, match="valid"):
        ref.warmup_codebook(rows, 2, valid=np.ones(5))
    with pytest.raises(ValueError, match="valid"):
        ref.warmup_codebook(rows, 2, valid=np.ones(4, dtype=bool))


# --- state-helper errors -----------------------------------------------------------------------


def test_state_helper_errors():
    with pytest.raises(ValueError, match="num_codes"):
        ref.code_usage([0, 3], 3)
    with pytest.raises(TypeError, match="indices"):
        ref.code_usage(np.array([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match="num_codes"):
        ref.perplexity([0], 0)
    with pytest.raises(ValueError, match=r"`hits` must have shape \(3,\)"):
        ref.update_usage(np.zeros(2, dtype=int), np.zeros(3, dtype=int), [0], 3)
    with pytest.raises(ValueError, match="replacement_iters"):
        ref.dead_codes([1, 2], replacement_iters=0, discard_threshold=0.01)
    with pytest.raises(ValueError, match="discard_threshold"):
        ref.dead_codes([1, 2], replacement_iters=10, discard_threshold=float("nan"))
    cb, hits, calls = np.zeros((3, 2)), np.array([1, 1, 0]), np.array([1, 1, 0])
    ok = {"uniform": np.zeros(3), "noise": np.zeros((3, 2))}
    with pytest.raises(ValueError, match=r"`uniform` must have shape \(3,\); got shape \(2,\)"):
        ref.replace_dead_codes(cb, hits, calls, uniform=np.zeros(2), noise=ok["noise"], **KW)
    with pytest.raises(ValueError, match=r"`uniform` must lie in \[0, 1\)"):
        ref.replace_dead_codes(cb, hits, calls, uniform=np.ones(3), noise=ok["noise"], **KW)
    with pytest.raises(ValueError, match=r"`noise` must have shape \(3, 2\); got shape \(2, 3\)"):
        ref.replace_dead_codes(cb, hits, calls, uniform=ok["uniform"], noise=np.zeros((2, 3)), **KW)
    with pytest.raises(ValueError, match="perturb_eps"):
        ref.replace_dead_codes(cb, hits, calls, **ok, **{**KW, "perturb_eps": -1.0})
    with pytest.raises(ValueError, match="`codebook` must be finite"):
        ref.replace_dead_codes(np.full((3, 2), np.nan), hits, calls, **ok, **KW)
    with pytest.raises(ValueError, match="`hits` must be >= 0"):
        ref.replace_dead_codes(cb, np.array([-1, 1, 0]), calls, **ok, **KW)
