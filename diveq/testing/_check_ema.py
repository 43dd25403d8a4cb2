"""The EMA codebook's functions against the reference: statistics, update and initial state.

Inputs are generated in NumPy float64 (rounded to the dtype under test) and converted by the
:class:`Adapter`; rows without a code (index ``-1``) hold NaN and inf, which must not leak into
the statistics. The state has codes that no row hits and, sometimes, ``eps = 0`` with a zero
``cluster_size`` entry (a code of smoothed size 0, which must keep its codeword).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from hypothesis import strategies as st

import diveq.reference as ref
from diveq._types import EMAState
from diveq.testing._adapters import Adapter
from diveq.testing._properties import _run_given, assert_close, assert_equal

__all__ = ["check_ema"]

#: (rows, K, D) of a JAX adapter, which compiles per shape (and option): one shape, few options.
FEW_SHAPES = ((7, 3, 2),)


@st.composite
def _ema_cases(draw: Any, dtype: str, few_shapes: bool) -> dict[str, Any]:
    if few_shapes:
        n, k, d = draw(st.sampled_from(FEW_SHAPES))
    else:
        n, k, d = draw(st.integers(0, 12)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    z = rng.standard_normal((n, d)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    idx = rng.integers(-1, k, size=n)
    bad = idx < 0
    z[bad] = np.where(rng.random((int(bad.sum()), d)) < 0.5, np.nan, np.inf)
    size = rng.random(k) * draw(st.sampled_from([0.0, 1.0, 100.0]))
    eps = draw(st.sampled_from([1e-5] if few_shapes else [0.0, 1e-5, 0.1]))
    decay = draw(st.sampled_from([0.5] if few_shapes else [0.0, 0.5, 0.99, 1.0]))
    rounded = [np.asarray(a, dtype=dtype).astype(np.float64) for a in (z, size)]
    book = np.asarray(rng.standard_normal((k, d)), dtype=dtype).astype(np.float64)
    embed = np.asarray(book * size[:, None], dtype=dtype).astype(np.float64)
    return {
        "z": rounded[0],
        "indices": idx.reshape(n),
        "state": EMAState(book, rounded[1], embed),
        "decay": decay,
        "eps": eps,
    }


def check_ema(adapter: Adapter, dtype: str = "float64", *, max_examples: int | None = None) -> None:
    """``ema_init``, ``ema_statistics`` and ``ema_update`` equal the reference; the update keeps
    the dtype of the state and writes no NaN or inf."""
    mod, name = adapter.module, f"{adapter.name}[{dtype}]"

    @functools.cache
    def statistics(k: int) -> Any:  # one function per K: a jitting adapter compiles it once
        return lambda z, i: mod.ema_statistics(z, i, k)

    def body(case: dict[str, Any]) -> None:
        z, idx, state = case["z"], case["indices"], case["state"]
        k = state.codebook.shape[0]
        got_n, got_s = adapter.call(
            statistics(k),
            (adapter.asarray(z, dtype), adapter.asarray(idx)),
            {},
        )
        want_n, want_s = ref.ema_statistics(z, idx, k)
        scale = float(np.max(np.abs(z[idx >= 0]), initial=1.0)) * max(len(idx), 1)
        assert_close(adapter.to_numpy(got_n), want_n, dtype, 1.0, f"{name}.ema_statistics counts")
        assert_close(adapter.to_numpy(got_s), want_s, dtype, scale, f"{name}.ema_statistics sums")
        init = mod.ema_init(adapter.asarray(state.codebook, dtype))
        for field, got, want in zip(init._fields, init, ref.ema_init(state.codebook), strict=True):
            assert_equal(adapter.to_numpy(got), want.astype(dtype), f"{name}.ema_init {field}")
        options = {"decay": case["decay"], "eps": case["eps"]}
        # the reference's own statistics (float64) go to both: the update alone is compared
        args: tuple[Any, ...] = (EMAState(*(adapter.asarray(a, dtype) for a in state)),)
        args += (adapter.asarray(want_n, dtype), adapter.asarray(want_s, dtype))
        got = adapter.call(mod.ema_update, args, options)
        want = ref.ema_update(
            EMAState(*(adapter.to_numpy(a) for a in args[0])),
            adapter.to_numpy(args[1]),
            adapter.to_numpy(args[2]),
            **options,
        )
        for field, g, w in zip(want._fields, got, want, strict=True):
            g = adapter.to_numpy(g)
            if str(g.dtype) != dtype or not np.all(np.isfinite(g)):
                raise AssertionError(f"{name}.ema_update {field}: dtype {g.dtype} or non-finite")
            # c = m / N~: relative to the codeword, scaled by how far the smoothing divides
            tol = float(np.max(np.abs(w), initial=1.0))
            assert_close(g, w, dtype, tol * (1e3 if field == "codebook" else 1.0), field)

    _run_given(_ema_cases(dtype, adapter.compiles), body, max_examples)
