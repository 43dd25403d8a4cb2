"""The core's training-state functions equal the reference, on every array library.

The core is namespace-agnostic, so these run on NumPy, array-api-strict, torch and JAX arrays
(JAX also under ``jax.jit``, since the layers jit them).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import diveq.core as core
import diveq.reference as ref
from diveq.testing import assert_close


@st.composite
def windows(draw):
    """Usage counters after a window, a codebook and the replacement draws."""
    k = draw(st.integers(1, 9))
    d = draw(st.integers(1, 4))
    iters = draw(st.sampled_from([1, 10, 100]))
    calls_used = np.asarray(draw(st.lists(st.integers(0, iters), min_size=k, max_size=k)))
    hits = calls_used * np.asarray(draw(st.lists(st.integers(1, 5), min_size=k, max_size=k)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return {
        "codebook": rng.standard_normal((k, d)),
        "hits": hits.astype(np.int64),
        "calls_used": calls_used.astype(np.int64),
        "replacement_iters": iters,
        "discard_threshold": draw(st.sampled_from([0.01, 0.3, 0.9])),
        "perturb_eps": draw(st.sampled_from([0.0, 1e-9, 1e-3])),
        "uniform": rng.random(k),
        "noise": rng.standard_normal((k, d)),
    }


def _convert(backend, kwargs):
    return {
        k: backend.asarray(v, "float64" if v.dtype.kind == "f" else None)
        if isinstance(v, np.ndarray)
        else v
        for k, v in kwargs.items()
    }


@given(case=windows())
def test_replace_dead_codes_matches_reference(backend, case):
    arrays = {k: v for k, v in case.items() if isinstance(v, np.ndarray)}
    options = {k: v for k, v in case.items() if k not in arrays}
    order = ["codebook", "hits", "calls_used"]
    args = [backend.asarray(arrays[k], "float64" if k == "codebook" else None) for k in order]
    draws = _convert(backend, {"uniform": arrays["uniform"], "noise": arrays["noise"]})

    def run(codebook, hits, calls_used, uniform, noise):
        return core.replace_dead_codes(
            codebook, hits, calls_used, uniform=uniform, noise=noise, **options
        )

    got, replaced = backend.call(run, [*args, draws["uniform"], draws["noise"]], {})
    want, want_replaced = ref.replace_dead_codes(
        *(arrays[k] for k in order), **options, uniform=arrays["uniform"], noise=arrays["noise"]
    )
    np.testing.assert_array_equal(backend.to_numpy(replaced), want_replaced)
    assert_close(backend.to_numpy(got), want, "float64", 1.0, "replace_dead_codes")


@given(
    rows=st.integers(1, 40),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    masked=st.booleans(),
)
def test_warmup_codebook_matches_reference(backend, rows, k, seed, masked):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((rows, 3))
    valid = rng.random(rows) < 0.7 if masked else None
    count = rows if valid is None else int(valid.sum())
    if count < k:
        with pytest.raises(ValueError, match="K"):
            ref.warmup_codebook(data, k, valid=valid)
        if valid is None:
            with pytest.raises(ValueError, match="rows"):
                core.warmup_codebook(backend.asarray(data, "float64"), k)
        return
    want = ref.warmup_codebook(data, k, valid=valid)
    if valid is None:
        got = backend.call(
            lambda r: core.warmup_codebook(r, k), [backend.asarray(data, "float64")], {}
        )
    else:
        got = backend.call(
            lambda r, v: core.warmup_codebook(r, k, valid=v),
            [backend.asarray(data, "float64"), backend.asarray(valid)],
            {},
        )
    assert_close(backend.to_numpy(got), want, "float64", 1.0, "warmup_codebook")


@given(k=st.integers(1, 7), indices=st.lists(st.integers(-1, 6), max_size=25))
def test_update_usage_and_dead_codes_match_reference(backend, k, indices):
    idx = np.asarray([i for i in indices if i < k], dtype=np.int64)
    hits = np.arange(k, dtype=np.int64)
    calls = np.arange(k, dtype=np.int64) % 3
    got_hits, got_calls = core.update_usage(
        backend.asarray(hits), backend.asarray(calls), backend.asarray(idx), k
    )
    want_hits, want_calls = ref.update_usage(hits, calls, idx, k)
    np.testing.assert_array_equal(backend.to_numpy(got_hits), want_hits)
    np.testing.assert_array_equal(backend.to_numpy(got_calls), want_calls)
    got_dead = core.dead_codes(
        backend.asarray(want_calls), replacement_iters=4, discard_threshold=0.5
    )
    want_dead = ref.dead_codes(want_calls, replacement_iters=4, discard_threshold=0.5)
    np.testing.assert_array_equal(backend.to_numpy(got_dead), want_dead)


def test_schedule_matches_spec():
    """Warm-up S=5, A=2: calls 1-4 identity, rows of calls 3-4 kept, init at 4, SF from 5."""
    calls = range(1, 8)
    assert [core.warmup_quantizes(c, 5) for c in calls] == [c >= 5 for c in calls]
    assert [core.warmup_collects(c, 5, 2) for c in calls] == [c in (3, 4) for c in calls]
    assert [core.warmup_initialises(c, 5) for c in calls] == [c == 4 for c in calls]
    assert all(core.warmup_quantizes(c, s) for c in calls for s in (0, 1))
    assert not any(core.warmup_initialises(c, s) for c in calls for s in (0, 1))
    assert [core.replacement_due(c, 3) for c in calls] == [c % 3 == 0 for c in calls]
    assert not any(core.replacement_due(c, None) for c in calls)
