"""Shared pieces of the fuzz suites (``test_fuzz_functions.py``, ``test_fuzz_layers.py``).

Arrays are drawn as a standard-normal sample times their own ``10**e``, over the whole exponent
range each dtype represents. JAX compiles once per shape and dtype, so it draws a few examples
from a small fixed shape set; torch runs the profile's full example count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import array_namespace
from hypothesis import given, settings
from hypothesis import strategies as st

from diveq.testing import Adapter, available_adapters

ADAPTERS = [a for a in available_adapters() if a.name in ("torch", "jax")]

#: (dtype of z, dtype of the codebook): every floating dtype, and low precision on float32 books.
DTYPES = [
    ("float16", "float16"),
    ("bfloat16", "bfloat16"),
    ("float32", "float32"),
    ("float64", "float64"),
    ("bfloat16", "float32"),
    ("float16", "float32"),
]
#: Largest decimal exponent ``e`` drawn per dtype of z (the results come back in that dtype).
#: float32 squares overflow beyond ~1e19 and underflow below ~1e-19: row norms, distances and
#: their gradients must be computed so that every representable input gives finite results.
#: float16 tops out at 65504, so low precision stays within 1e-3 .. 1e3.
EXPONENTS = {"float16": 3, "bfloat16": 3, "float32": 30, "float64": 30}
#: Largest decimal gap between the magnitudes of z and of the codebook: the contract promises
#: finite results while the two are within ~1e30 of each other (docs: Reliability); beyond
#: ~1e38 their float32 inner products cannot be represented.
MAX_GAP = 30
#: Largest finite value per dtype (NumPy has no bfloat16 of its own).
LARGEST = {"float16": 65504.0, "bfloat16": 3.38e38, "float32": 3.40e38, "float64": 1.79e308}
#: Values of ``noise_std``; the draws themselves come from the backend's own generator / key.
NOISE_STDS = [0.0, 1e-3, 0.1, 1.0]
#: One function call costs milliseconds on an eager backend: so many times the profile's count.
FUNCTION_SCALE = 5
#: Leading shapes for compiling backends (D, K and M also come from two values each there).
FEW_LEADS: list[tuple[int, ...]] = [(), (0,), (5,), (2, 3)]


def _examples(compiles: bool, scale: int = 1) -> int:
    """The profile's example count (times ``scale`` for cheap properties); a tenth of it for
    backends that compile every new shape."""
    full = settings().max_examples
    return max(2, full // 10) if compiles else full * scale


def _given(examples: int, strategy: Any, body: Callable[[Any], None]) -> None:
    """Run ``body`` under ``@given(strategy)`` for ``examples`` examples."""

    @settings(max_examples=examples)
    @given(strategy)
    def run(case: Any) -> None:
        body(case)

    run()


def _convert(backend: Adapter, x: np.ndarray, dtype: str) -> Any:
    """``x`` as a backend array of ``dtype`` (bfloat16 goes through float32: NumPy lacks it)."""
    if dtype != "bfloat16":
        return backend.asarray(x, dtype)
    arr = backend.asarray(x, "float32")
    xp = array_namespace(arr)
    return xp.astype(arr, xp.bfloat16)


def _dtype_name(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.")


def _finite(x: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(x)
    if np.any(bad):
        raise AssertionError(f"{what}: {int(bad.sum())} of {x.size} entries non-finite: {x!r}")


def _scaled(rng: np.random.Generator, shape: tuple[int, ...], exponent: int) -> np.ndarray:
    return rng.standard_normal(shape) * 10.0**exponent


def exponents(dtype: str) -> st.SearchStrategy[int]:
    """Decimal exponents for ``dtype``, the extremes drawn often."""
    top = EXPONENTS[dtype]
    return st.one_of(st.sampled_from([-top, top]), st.integers(-top, top))


def leads() -> st.SearchStrategy[tuple[int, ...]]:
    """Leading shapes of 0-2 axes up to 4 long; N = 0 and z of shape ``(D,)`` drawn often."""
    edge = st.sampled_from([(), (0,), (3, 0)])
    return st.one_of(edge, st.lists(st.integers(0, 4), max_size=2).map(tuple))
