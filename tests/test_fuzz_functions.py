"""Fuzzing every public function over shapes, dtypes and magnitudes on torch and JAX (no
reference comparison: ``test_conformance.py`` checks the values).

Properties: no exception, integer indices in range, finite values and weights, finite gradients
wherever the exact gradient is representable in the dtype, and consistent usage statistics.
Shapes include ``N = 0`` and ``z`` of shape ``(D,)``; dtypes are float16 / bfloat16 / float32 /
float64 and low-precision latents on a float32 codebook.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from _fuzz_common import (
    ADAPTERS,
    DTYPES,
    EXPONENTS,
    FEW_LEADS,
    FUNCTION_SCALE,
    LARGEST,
    MAX_GAP,
    NOISE_STDS,
    _convert,
    _dtype_name,
    _examples,
    _finite,
    _given,
    _scaled,
    exponents,
    leads,
)
from hypothesis import strategies as st

from diveq.testing import OPS, Adapter, Case, Op


@st.composite
def fuzz_cases(draw: Any, op: Op, few_shapes: bool) -> Case:
    """One input of ``op``; ``extra`` holds the dtypes, the exponents and the sampling seed."""
    if few_shapes:
        lead = draw(st.sampled_from(FEW_LEADS))
        m = 1 if op.books == "single" else draw(st.sampled_from([1, 2]))
        k = draw(st.sampled_from([op.min_codes, 5]))
        d = (
            m * draw(st.sampled_from([1, 2]))
            if op.books == "product"
            else draw(st.sampled_from([1, 4]))
        )
    else:
        lead = draw(leads())
        m = 1 if op.books == "single" else draw(st.integers(1, 3))
        k = draw(st.integers(op.min_codes, 9))
        d = m * draw(st.integers(1, 8 // m)) if op.books == "product" else draw(st.integers(1, 8))
    z_dtype, book_dtype = draw(st.sampled_from(DTYPES))
    top = EXPONENTS[z_dtype]  # values come back in the dtype of z
    corners = st.tuples(*[st.sampled_from([-top, top])] * 3)
    e_z, e_book, e_cot = draw(st.one_of(corners, st.tuples(*[exponents(z_dtype)] * 3)))
    e_book = min(max(e_book, e_z - MAX_GAP), e_z + MAX_GAP)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    case = Case(
        op,
        _scaled(rng, (*lead, d), e_z),
        _scaled(rng, op.book_shape(m, k, d), e_book),
        _scaled(rng, (*lead, d), e_cot),
        extra={
            "dtype": z_dtype,
            "book_dtype": book_dtype,
            "exponents": (e_z, e_book, e_cot),
            "seed": draw(st.integers(0, 2**31 - 1)),
        },
    )
    if op.noise_std:
        case.noise_std = draw(st.sampled_from(NOISE_STDS))
    return case


def _call_args(backend: Adapter, case: Case) -> tuple[tuple[Any, Any], dict[str, Any]]:
    args = (
        _convert(backend, case.z, case.extra["dtype"]),
        _convert(backend, case.books, case.extra["book_dtype"]),
    )
    kwargs = {k: v for k, v in case.draws().items() if v is not None}
    if case.op.stochastic:
        kwargs.update(backend.rng_kwargs(case.extra["seed"]))
    return args, kwargs


def _gradient_bound(
    op: Op, z: np.ndarray, books: np.ndarray, cot: np.ndarray, tau: float = 1.0
) -> float:
    """Bound on every gradient entry of ``op``, from the exact (float64) inputs.

    DiVeQ-type estimators (SF, composite, NSVQ and STE included) give each row ``|dz| <= 2
    |g|`` and each codeword at most ``|g|`` per row that selects it. The rotation trick gives
    ``|dz| = s |g|`` (``R`` is orthogonal) with ``s = ||c_k|| / max(||z||, 1e-12)``, which can
    exceed every dtype (bounded here with the largest codeword). Finite gradients are required
    only where this bound is representable. The Gumbel-softmax sends each row's ``g`` through
    the logits: ``|dz| <= |g| 4 max||c|| (max||c|| + ||z||) / tau``, plus ``|g|`` directly.
    """
    g = np.linalg.norm(cot.reshape(-1, cot.shape[-1]), axis=-1)
    if op.gumbel:
        zn = np.linalg.norm(z.reshape(-1, z.shape[-1]), axis=-1)
        cmax = float(np.max(np.linalg.norm(books, axis=-1), initial=0.0))
        return float(np.sum(g * (1 + 4 * cmax * (cmax + zn) / tau)))
    if op.name != "rotation_trick":
        return 2.0 * float(g.sum())
    zn = np.linalg.norm(z.reshape(-1, z.shape[-1]), axis=-1)
    largest = float(np.max(np.linalg.norm(books, axis=-1)))
    return float(np.max(largest / np.maximum(zn, 1e-12) * g, initial=0.0))


def _check_indices(idx: np.ndarray, shape: tuple[int, ...], high: int, what: str) -> None:
    if idx.shape != shape:
        raise AssertionError(f"{what}: indices shape {idx.shape} != {shape}")
    if idx.dtype.kind != "i":
        raise AssertionError(f"{what}: indices dtype {idx.dtype} is not integer")
    if idx.size and (idx.min() < 0 or idx.max() >= high):
        raise AssertionError(f"{what}: indices outside [0, {high}): {idx!r}")


def check_function(backend: Adapter, op: Op, case: Case) -> None:
    """Indices in range; values, weights and (where representable) gradients finite."""
    fn = getattr(backend.module, op.name)
    args, kwargs = _call_args(backend, case)
    what = (
        f"{backend.name}.{op.name}[z {case.extra['dtype']}, books {case.extra['book_dtype']}, "
        f"10**e for z, books, cotangent = {case.extra['exponents']}]"
    )
    out = backend.call(fn, args, kwargs)
    lead = case.z.shape[:-1] + (() if op.books == "single" else (case.books.shape[0],))
    high = case.books.shape[-2] - (1 if op.space_filling else 0)
    if op.name == "nearest":
        _check_indices(backend.to_numpy(out), lead, high, what)
        return
    _check_indices(backend.to_numpy(out.indices), lead, high, what)
    if _dtype_name(out.values) != case.extra["dtype"] or out.values.shape != args[0].shape:
        raise AssertionError(f"{what}: values {out.values.dtype} {out.values.shape}")
    _finite(backend.to_numpy(out.values), f"{what} values")
    if op.space_filling:
        weights = backend.to_numpy(out.weights)
        _finite(weights, f"{what} weights")
        if weights.size and (weights.min() < 0 or weights.max() > 1):
            raise AssertionError(f"{what}: weights outside [0, 1]: {weights!r}")
    if not op.train:
        return

    def values(*a: Any, **kw: Any) -> Any:
        return fn(*a, **kw).values

    cot = _convert(backend, case.cotangent, case.extra["dtype"])
    dz, dbooks = backend.vjp(values, args, kwargs, cot)
    arrays = (backend.to_numpy(a).astype(np.float64) for a in (*args, cot))
    bound = _gradient_bound(op, *arrays, tau=case.tau)
    if bound < LARGEST[case.extra["dtype"]] / 4:
        _finite(np.asarray(dz), f"{what} dz")
    if bound < LARGEST[case.extra["book_dtype"]] / 4:
        _finite(np.asarray(dbooks), f"{what} dcodebook")


def check_statistics(backend: Adapter, case: Case) -> None:
    """code_usage sums to N, perplexity in [1, K], commitment loss finite where representable."""
    module = backend.module
    args, _ = _call_args(backend, case)
    k = case.books.shape[0]
    what = f"{backend.name}[{case.extra['dtype']}, exponents {case.extra['exponents']}]"
    idx = backend.call(module.quantize, args, {}).indices
    counts = backend.to_numpy(backend.call(module.code_usage, (idx,), {"num_codes": k}))
    rows = int(np.prod(case.z.shape[:-1]))
    if counts.shape != (k,) or counts.sum() != rows or counts.min() < 0:
        raise AssertionError(f"{what}: code_usage {counts!r} for {rows} rows")
    ppl = float(backend.to_numpy(backend.call(module.perplexity, (idx,), {"num_codes": k})))
    if not 1 - 1e-5 <= ppl <= k * (1 + 1e-5):
        raise AssertionError(f"{what}: perplexity {ppl} outside [1, {k}]")

    def loss(z: Any, books: Any) -> Any:
        return module.commitment_loss(z, books, idx)

    out = backend.call(loss, args, {})
    # A mean of squares: finite whenever the exact value is representable (with a margin).
    zr = backend.to_numpy(args[0]).astype(np.float64).reshape(-1, case.z.shape[-1])
    ck = backend.to_numpy(args[1]).astype(np.float64)[backend.to_numpy(idx).reshape(-1)]
    exact = 1.25 * float(np.mean((zr - ck) ** 2)) if rows else 0.0
    if exact < LARGEST[_dtype_name(out)] / 16:
        _finite(backend.to_numpy(out), f"{what} commitment_loss")
        scalar = _convert(backend, np.asarray(1.0), _dtype_name(out))
        dz, dbook = backend.vjp(loss, args, {}, scalar)
        _finite(np.asarray(dz), f"{what} commitment_loss dz")
        _finite(np.asarray(dbook), f"{what} commitment_loss dcodebook")


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
@pytest.mark.parametrize("backend", ADAPTERS, ids=[a.name for a in ADAPTERS])
def test_functions_stay_finite_and_in_range(backend: Adapter, op: Op) -> None:
    _given(
        _examples(backend.compiles, scale=FUNCTION_SCALE),
        fuzz_cases(op, few_shapes=backend.compiles),
        functools.partial(check_function, backend, op),
    )


@pytest.mark.parametrize("backend", ADAPTERS, ids=[a.name for a in ADAPTERS])
def test_usage_perplexity_and_commitment_stay_consistent(backend: Adapter) -> None:
    _given(
        _examples(backend.compiles, scale=FUNCTION_SCALE),
        fuzz_cases(Op("quantize"), few_shapes=backend.compiles),
        functools.partial(check_statistics, backend),
    )


# ------------------------------------------------------------------------------ layers
