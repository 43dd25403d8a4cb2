"""The contract as executable properties, each written once against an :class:`Adapter`.

Every property compares the implementation with :mod:`diveq.reference` on the same explicit
draws or checks an error / edge case of the public API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import diveq.reference as ref
from diveq._ops import OPS_BY_NAME, Op
from diveq.testing._adapters import Adapter
from diveq.testing._strategies import Case, cases

__all__ = [
    "check_empty",
    "check_edge_values",
    "check_errors",
    "check_forward",
    "check_gradient",
    "check_sampling",
    "check_usage",
    "tolerance",
]

RTOL = {"float64": 1e-10, "float32": 2e-5}


def tolerance(dtype: str) -> float:
    """Relative tolerance for ``dtype`` (applied to the magnitudes involved)."""
    return RTOL[dtype]


def assert_close(actual: Any, expected: Any, dtype: str, scale: float, what: str) -> None:
    """Elementwise ``|actual - expected| <= rtol (|expected| + scale)`` with a dtype rtol."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != reference {expected.shape}")
    rtol = tolerance(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def assert_equal(actual: Any, expected: Any, what: str) -> None:
    """Exact equality (indices), shapes included."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape or not np.array_equal(actual, expected):
        raise AssertionError(f"{what}: {actual!r} != reference {expected!r}")


def _run_given(strategy: Any, body: Callable[[Any], None], max_examples: int | None) -> None:
    options: dict[str, Any] = {"deadline": None}
    if max_examples is not None:
        options["max_examples"] = max_examples

    @settings(**options)
    @given(strategy)
    def run(case: Any) -> None:
        body(case)

    run()


def _args(adapter: Adapter, case: Case, dtype: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args = (adapter.asarray(case.z, dtype), adapter.asarray(case.books, dtype))
    kwargs = {
        k: (adapter.asarray(v, dtype) if isinstance(v, np.ndarray) else v)
        for k, v in case.draws().items()
    }
    return args, kwargs


def _scale(*arrays: np.ndarray) -> float:
    return max([1.0] + [float(np.max(np.abs(a))) for a in arrays if a is not None and a.size])


def _conditioning(case: Case) -> float:
    """How much an op amplifies the rounding of its inputs beyond their magnitude: 1, but for
    the Gumbel-softmax ``1 + max |l| / tau`` (a softmax turns an absolute error ``e`` of the
    logits ``l = -||z - c||^2`` into a relative error ``e / tau`` of the sample)."""
    if not case.op.gumbel:
        return 1.0
    x = case.z.reshape(-1, case.z.shape[-1])
    dist = ((x[:, None, :] - case.books[None]) ** 2).sum(-1)
    return 1.0 + float(np.max(dist, initial=0.0)) / case.tau


def check_forward(
    adapter: Adapter, op: Op, dtype: str = "float64", *, max_examples: int | None = None
) -> None:
    """Values, indices (exact) and weights equal the reference on identical draws."""
    fn = getattr(adapter.module, op.name)

    def body(case: Case) -> None:
        args, kwargs = _args(adapter, case, dtype)
        got = adapter.call(fn, args, kwargs)
        want = getattr(ref, op.name)(case.z, case.books, **case.draws())
        what = f"{adapter.name}.{op.name}[{dtype}]"
        if op.name == "nearest":
            assert_equal(adapter.to_numpy(got), want, f"{what} indices")
            return
        assert_equal(adapter.to_numpy(got.indices), want.indices, f"{what} indices")
        scale = _scale(case.z, case.books) * _conditioning(case)
        assert_close(adapter.to_numpy(got.values), want.values, dtype, scale, f"{what} values")
        if got.values.dtype != args[0].dtype:
            raise AssertionError(f"{what}: values dtype {got.values.dtype} != z dtype")
        if op.space_filling:
            assert_close(adapter.to_numpy(got.weights), want.weights, dtype, 1.0, f"{what} weights")

    _run_given(cases(op, dtype, few_shapes=adapter.compiles), body, max_examples)


def check_gradient(
    adapter: Adapter, op: Op, dtype: str = "float64", *, max_examples: int | None = None
) -> None:
    """Autodiff gradients w.r.t. ``z`` and the codebook(s) equal the reference VJP."""
    if not (adapter.differentiable and op.train):
        return
    fn = getattr(adapter.module, op.name)

    def values(*a: Any, **kw: Any) -> Any:
        return fn(*a, **kw).values

    def body(case: Case) -> None:
        args, kwargs = _args(adapter, case, dtype)
        g = adapter.asarray(case.cotangent, dtype)
        dz, dc = adapter.vjp(values, args, kwargs, g)
        want_dz, want_dc = getattr(ref, op.name + "_vjp")(
            case.z, case.books, case.cotangent, **case.draws()
        )
        what = f"{adapter.name}.{op.name}[{dtype}]"
        cond = _conditioning(case) ** 2 if op.gumbel else 1.0  # the softmax and its gradient
        scale = _scale(case.cotangent) * max(1, case.z.size // max(case.z.shape[-1], 1)) * cond
        assert_close(dz, want_dz, dtype, _scale(case.cotangent) * cond, f"{what} dz")
        assert_close(dc, want_dc, dtype, scale, f"{what} dcodebook")

    _run_given(cases(op, dtype, few_shapes=adapter.compiles), body, max_examples)


@contextlib.contextmanager
def raises(exc: type[BaseException], *needles: str) -> Iterator[None]:
    """Like ``pytest.raises`` (no pytest dependency): the message must contain each needle."""
    try:
        yield
    except exc as err:
        message = str(err)
        for needle in needles:
            if needle not in message:
                raise AssertionError(
                    f"{exc.__name__} message {message!r} lacks {needle!r}"
                ) from err
    else:
        raise AssertionError(f"expected {exc.__name__} mentioning {needles}")


def _fixed_case(op: Op, k: int = 4, m: int = 2, width: int = 2, lead: tuple[int, ...] = (3,)):
    rng = np.random.default_rng(0)
    d = m * width if op.books == "product" else width
    m_eff = 1 if op.books == "single" else m
    z = rng.standard_normal((*lead, d))
    case = Case(op, z, rng.standard_normal(op.book_shape(m_eff, k, d)), np.ones_like(z))
    case.noise_std = 0.1 if op.noise_std else 0.0
    noise_shape, dither_shape = op.noise_shape(z.shape), op.dither_shape(case.books.shape)
    if noise_shape is not None:
        case.noise = rng.standard_normal(noise_shape)
    if dither_shape is not None:
        case.dither = rng.random(dither_shape)
    if op.gumbel:
        case.gumbel = rng.gumbel(size=op.gumbel_shape(z.shape, case.books.shape))
    return case


def check_errors(adapter: Adapter, op: Op) -> None:
    """Every public API error: the exception type, the argument and both shapes."""
    fn = getattr(adapter.module, op.name)
    case = _fixed_case(op)
    a = adapter.asarray

    def call(z: np.ndarray, books: np.ndarray, **over: Any) -> Any:
        kw = {**case.draws(), **over}
        kw = {k: (a(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        return fn(a(z), a(books), **kw)

    z, books = case.z, case.books
    bad_z = np.zeros((3, z.shape[-1] + (2 if op.books == "product" else 1)))
    with raises(ValueError, str(bad_z.shape), str(books.shape)):
        call(bad_z, books, **_redraw(case, bad_z))
    with raises(ValueError, str(books[None].shape)):
        call(z, books[None])
    if op.space_filling:
        few = books[:1] if op.books == "single" else books[:, :1]
        with raises(ValueError, "K = 1"):
            call(z, few, **({"dither": np.zeros((*few.shape[:-2], 0))} if op.dither else {}))
    if op.books == "product":
        odd = np.zeros((3, z.shape[-1] + 1))
        with raises(ValueError, "D % M"):
            call(odd, books, **_redraw(case, odd))
    if op.noise_std:
        for bad in (-1.0, float("nan"), float("inf")):
            with raises(ValueError, "noise_std"):
                call(z, books, noise_std=bad)
    if op.noise is not None:
        wrong = np.zeros((*case.noise.shape, 1))
        with raises(ValueError, "noise", str(case.noise.shape), str(wrong.shape)):
            call(z, books, noise=wrong)
    if op.dither:
        wrong = np.zeros((*case.dither.shape[:-1], case.dither.shape[-1] + 1))
        with raises(ValueError, "dither", str(case.dither.shape), str(wrong.shape)):
            call(z, books, dither=wrong)
    book_name = "codebook" if op.books == "single" else "codebooks"
    for bad_dtype in (np.int64, np.complex128, np.bool_):
        with raises(TypeError, "`z`", str(z.shape)):
            call(z.astype(bad_dtype), books)
        with raises(TypeError, f"`{book_name}`", str(books.shape)):
            call(z, books.astype(bad_dtype))
    with raises(ValueError, "`z`", "0-d"):
        call(np.zeros(()), books, **_redraw(case, np.zeros(())))
    if op.gumbel:
        for bad_tau in (0.0, -1.0, float("nan"), float("inf")):
            with raises(ValueError, "tau"):
                call(z, books, tau=bad_tau)
        wrong = np.zeros((*case.gumbel.shape[:-1], case.gumbel.shape[-1] + 1))
        with raises(ValueError, "gumbel", str(case.gumbel.shape), str(wrong.shape)):
            call(z, books, gumbel=wrong)
    names = ("noise", "dither", "gumbel")
    for draw in [name for name in names if case.draws().get(name) is not None]:
        with raises(TypeError, f"`{draw}`"):
            call(z, books, **{draw: case.draws()[draw].astype(np.int64)})


def _redraw(case: Case, z: np.ndarray) -> dict[str, Any]:
    """Draws of the right shape for a differently shaped ``z``."""
    shape = case.op.noise_shape(z.shape)
    if case.op.gumbel and z.ndim:
        return {"gumbel": np.zeros(case.op.gumbel_shape(z.shape, case.books.shape))}
    return {} if shape is None else {"noise": np.zeros(shape)}


def check_empty(adapter: Adapter, op: Op) -> None:
    """``N = 0`` rows (with and without leading axes) give empty results of the right shape."""
    fn = getattr(adapter.module, op.name)
    for lead in ((0,), (2, 0)):
        case = _fixed_case(op, lead=lead)
        args, kwargs = _args(adapter, case, "float64")
        got = adapter.call(fn, args, kwargs)
        want = getattr(ref, op.name)(case.z, case.books, **case.draws())
        if op.name == "nearest":
            assert_equal(adapter.to_numpy(got), want, f"{adapter.name}.{op.name} empty")
            continue
        for field in got._fields:
            shape = tuple(getattr(got, field).shape)
            if shape != getattr(want, field).shape:
                raise AssertionError(f"{adapter.name}.{op.name} empty {field}: shape {shape}")


def check_sampling(adapter: Adapter, op: Op) -> None:
    """Without explicit draws the module samples in its own idiom, reproducibly per seed."""
    if not (adapter.samples and op.stochastic):
        return
    fn = getattr(adapter.module, op.name)
    case = _fixed_case(op)
    z, books = adapter.asarray(case.z), adapter.asarray(case.books)
    opts = {"noise_std": 0.1} if op.noise_std else {}
    first = fn(z, books, **opts, **adapter.rng_kwargs(7))
    second = fn(z, books, **opts, **adapter.rng_kwargs(7))
    for field in first._fields:
        a, b = adapter.to_numpy(getattr(first, field)), adapter.to_numpy(getattr(second, field))
        if not np.array_equal(a, b):
            raise AssertionError(f"{adapter.name}.{op.name}: same seed, different {field}")
    if not np.all(np.isfinite(adapter.to_numpy(first.values))):
        raise AssertionError(f"{adapter.name}.{op.name}: sampled values are not finite")


def check_usage(adapter: Adapter, *, max_examples: int | None = None) -> None:
    """``code_usage`` and ``perplexity`` equal the reference (``-1`` entries ignored)."""
    mod = adapter.module

    @st.composite
    def idx(draw: Any) -> tuple[np.ndarray, int]:
        k = draw(st.integers(1, 9))
        n = draw(st.integers(0, 30))
        values = draw(st.lists(st.integers(-1, k - 1), min_size=n, max_size=n))
        return np.asarray(values, dtype=np.int64).reshape(-1), k

    def body(item: tuple[np.ndarray, int]) -> None:
        indices, k = item
        x = adapter.asarray(indices)
        assert_equal(
            adapter.to_numpy(mod.code_usage(x, k)),
            ref.code_usage(indices, k),
            f"{adapter.name}.code_usage",
        )
        got = adapter.to_numpy(mod.perplexity(x, k))
        assert_close(got, ref.perplexity(indices, k), "float32", 1.0, f"{adapter.name}.perplexity")

    _run_given(idx(), body, max_examples)


def check_commitment(
    adapter: Adapter, dtype: str = "float64", *, max_examples: int | None = None
) -> None:
    """``commitment_loss`` (value and, with autodiff, gradients) equals the reference."""
    fn = adapter.module.commitment_loss
    beta = 0.25

    def body(case: Case) -> None:
        indices = ref.nearest(case.z, case.books)
        idx = adapter.asarray(indices)
        args = (adapter.asarray(case.z, dtype), adapter.asarray(case.books, dtype))
        got = adapter.call(lambda z, c: fn(z, c, idx, beta=beta), args, {})
        want = ref.commitment_loss(case.z, case.books, indices, beta=beta)
        scale = _scale(case.z, case.books) ** 2
        what = f"{adapter.name}.commitment_loss[{dtype}]"
        assert_close(adapter.to_numpy(got), want, dtype, scale, what)
        if adapter.differentiable:
            g = adapter.asarray(np.asarray(1.5), dtype)
            dz, dc = adapter.vjp(lambda z, c: fn(z, c, idx, beta=beta), args, {}, g)
            want_dz, want_dc = ref.commitment_loss_vjp(case.z, case.books, indices, 1.5, beta=beta)
            assert_close(dz, want_dz, dtype, _scale(case.z, case.books), f"{what} dz")
            assert_close(dc, want_dc, dtype, _scale(case.z, case.books), f"{what} dcodebook")

    _run_given(cases(OPS_BY_NAME["ste"], dtype, few_shapes=adapter.compiles), body, max_examples)


def check_edge_values(adapter: Adapter, op: Op) -> None:
    """The documented results for legal but awkward input (docs: Reliability).

    - duplicate codewords: the first copy wins, as in the reference;
    - a float32 ``z`` with a float64 codebook: computed in the promoted dtype, returned in the
      dtype of ``z``, equal to the reference within float32 tolerance;
    - float32 magnitudes ``1e-30`` and ``1e30``: finite values, indices equal the reference;
    - non-finite rows: the reference raises ``ValueError`` naming ``z``; the backends (which do
      not inspect values, to stay sync-free) return indices in range and every finite row
      exactly as without the bad rows.
    """
    fn = getattr(adapter.module, op.name)
    case = _fixed_case(op, lead=(5,))
    name = f"{adapter.name}.{op.name}"

    def run(z: np.ndarray, books: np.ndarray, dtype: str, book_dtype: str, **over: Any) -> Any:
        args = (adapter.asarray(z, dtype), adapter.asarray(books, book_dtype))
        kw = {**case.draws(), **over}
        kw = {
            k: (adapter.asarray(v, dtype) if isinstance(v, np.ndarray) else v)
            for k, v in kw.items()
        }
        return adapter.call(fn, args, kw)

    def want(z: np.ndarray, books: np.ndarray, **over: Any) -> Any:
        return getattr(ref, op.name)(z, books, **{**case.draws(), **over})

    def idx(out: Any, backend: bool = True) -> np.ndarray:
        got = out if op.name == "nearest" else out.indices
        return adapter.to_numpy(got) if backend else np.asarray(got)

    # Duplicate codewords 0 and 1 in every codebook; every row sits on codeword 0.
    books = case.books.copy()
    books[..., 1, :] = books[..., 0, :]
    first = books[0] if op.books == "single" else books[:, 0, :]
    row = (
        first.reshape(-1)
        if op.books == "product"
        else first[0]
        if op.books == "residual"
        else first
    )
    z_dup = np.broadcast_to(row, case.z.shape).copy()
    got = run(z_dup, books, "float64", "float64")
    assert_equal(idx(got), idx(want(z_dup, books), False), f"{name} duplicate codewords")

    # float32 latents with a float64 codebook.
    z32 = case.z.astype(np.float32).astype(np.float64)
    got, expect = run(case.z, case.books, "float32", "float64"), want(z32, case.books)
    assert_equal(idx(got), idx(expect, False), f"{name} mixed dtypes")
    if op.name != "nearest":
        if not str(got.values.dtype).endswith("float32"):
            raise AssertionError(f"{name}: mixed dtypes gave {got.values.dtype}, not z's dtype")
        scale = _scale(case.z, case.books)
        assert_close(adapter.to_numpy(got.values), expect.values, "float32", scale, name)

    # Huge and tiny float32 magnitudes.
    for factor in (1e-30, 1e30):
        zs = (case.z * factor).astype(np.float32).astype(np.float64)
        bs = (case.books * factor).astype(np.float32).astype(np.float64)
        over = {"noise_std": 0.1 * factor} if op.noise_std else {}
        got = run(zs, bs, "float32", "float32", **over)
        assert_equal(idx(got), idx(want(zs, bs, **over), False), f"{name} at {factor:g}")
        if op.name != "nearest" and not np.all(np.isfinite(adapter.to_numpy(got.values))):
            raise AssertionError(f"{name} at {factor:g}: non-finite values")

    # Rows with NaN / inf.
    bad = case.z.copy()
    bad[1, 0], bad[3, -1] = np.nan, np.inf
    if adapter.name == "reference":
        with raises(ValueError, "`z`", "finite"):
            run(bad, case.books, "float64", "float64")
        return
    with np.errstate(all="ignore"):  # NumPy namespaces warn about the NaN they propagate
        got = idx(run(bad, case.books, "float64", "float64"))
    high = case.books.shape[-2] - (1 if op.space_filling else 0)
    if np.any(got < 0) or np.any(got >= high):
        raise AssertionError(f"{name} with non-finite rows: indices {got} outside [0, {high})")
    keep = [0, 2, 4]
    assert_equal(got[keep], idx(want(case.z, case.books), False)[keep], f"{name} finite rows")
