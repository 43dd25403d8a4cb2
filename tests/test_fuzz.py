"""Fuzzing over shapes, dtypes and magnitudes on every backend (no reference comparison).

The conformance suite checks *what* the backends compute on well-separated inputs; this suite
checks that nothing breaks anywhere else: empty and scalar-like shapes, float16 / bfloat16 /
float32 / float64 (and low-precision latents with a float32 codebook), and every array drawn as
a standard-normal sample times its own ``10**e`` -- over the whole exponent range the dtype
represents. Properties: no exception, integer indices in range, finite values and weights,
finite gradients wherever the exact gradient is representable in the dtype, consistent usage
statistics; for the layers also masks, non-finite rows, the SF warm-up and an optimiser step.

JAX compiles once per shape and dtype, so it draws a few examples from a small fixed shape set;
torch runs the profile's full example count.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace
from hypothesis import given, settings
from hypothesis import strategies as st

from diveq.testing import OPS, Adapter, Case, Op, available_adapters
from diveq.testing._strategies import book_shape

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


# ------------------------------------------------------------------------------ functions


def leads() -> st.SearchStrategy[tuple[int, ...]]:
    """Leading shapes of 0-2 axes up to 4 long; N = 0 and z of shape ``(D,)`` drawn often."""
    edge = st.sampled_from([(), (0,), (3, 0)])
    return st.one_of(edge, st.lists(st.integers(0, 4), max_size=2).map(tuple))


def exponents(dtype: str) -> st.SearchStrategy[int]:
    """Decimal exponents for ``dtype``, the extremes drawn often."""
    top = EXPONENTS[dtype]
    return st.one_of(st.sampled_from([-top, top]), st.integers(-top, top))


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
        _scaled(rng, book_shape(op, m, k, d), e_book),
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


def _gradient_bound(op: Op, z: np.ndarray, books: np.ndarray, cot: np.ndarray) -> float:
    """Bound on every gradient entry of ``op``, from the exact (float64) inputs.

    DiVeQ-type estimators (SF, composite, NSVQ and STE included) give each row ``|dz| <= 2
    |g|`` and each codeword at most ``|g|`` per row that selects it. The rotation trick gives
    ``|dz| = s |g|`` (``R`` is orthogonal) with ``s = ||c_k|| / max(||z||, 1e-12)``, which can
    exceed every dtype (bounded here with the largest codeword). Finite gradients are required
    only where this bound is representable.
    """
    g = np.linalg.norm(cot.reshape(-1, cot.shape[-1]), axis=-1)
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
    bound = _gradient_bound(op, *(backend.to_numpy(a).astype(np.float64) for a in (*args, cot)))
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

#: Train-mode calls per example: SF warm-ups with ``skip_iters <= 3`` end within them.
TRAIN_CALLS = 4
#: Learning rate of the plain gradient step on the codebook(s).
LR = 0.1


@dataclass(frozen=True)
class LayerKind:
    """A public layer class and whether it runs the space-filling estimator."""

    cls: str
    space_filling: bool = False

    @property
    def composite(self) -> bool:
        return self.cls in ("ProductDiVeQ", "ResidualDiVeQ")

    @property
    def id(self) -> str:
        return self.cls + ("-SF" if self.space_filling and self.composite else "")


LAYER_KINDS = [
    LayerKind("DiVeQ"),
    LayerKind("SFDiVeQ", True),
    LayerKind("ProductDiVeQ"),
    LayerKind("ResidualDiVeQ"),
    LayerKind("ProductDiVeQ", True),
    LayerKind("ResidualDiVeQ", True),
]


@dataclass
class LayerCase:
    """A layer configuration and the per-call latents (the last call runs in eval mode)."""

    kind: LayerKind
    m: int
    k: int
    d: int
    options: dict[str, Any]
    zs: list[np.ndarray]
    masks: list[np.ndarray | None]
    cotangents: list[np.ndarray]
    seed: int
    exponent: int = 0
    lead: tuple[int, ...] = field(default_factory=tuple)

    def args(self) -> tuple[int, ...]:
        return (self.m, self.k, self.d) if self.kind.composite else (self.k, self.d)

    def valid(self, call: int) -> np.ndarray:
        """Rows (lead shape) that are neither masked out nor non-finite."""
        mask = self.masks[call]
        finite = np.all(np.isfinite(self.zs[call]), axis=-1)
        return finite if mask is None else finite & mask

    def index_bound(self, call: int | None) -> int:
        """Indices of train call ``call`` (1-based; ``None``: eval) lie in ``[0, bound)``; 0
        while a one-codebook SF layer warms up (not quantised: every index is -1)."""
        if not self.kind.space_filling:
            return self.k
        if call is not None and call < self.options["skip_iters"]:  # composites run DiVeQ
            return self.k if self.kind.composite else 0
        return self.k - 1

    def warmup_failure(self) -> int | None:
        """The 1-based train call whose SF warm-up init must raise (too few valid rows)."""
        skip, avg = self.options.get("skip_iters", 0), self.options.get("avg_iters", 1)
        if not self.kind.space_filling or skip < 2:
            return None
        kept = sum(int(self.valid(c - 1).sum()) for c in range(max(1, skip - avg), skip))
        return skip - 1 if kept < self.k else None


@st.composite
def layer_cases(draw: Any, kind: LayerKind, few_shapes: bool) -> LayerCase:
    """Latents ``N(0, 1) 10**e`` with masked and non-finite rows, for ``TRAIN_CALLS + 1`` calls."""
    min_codes = 2 if kind.space_filling else 1
    m = draw(st.sampled_from([2]) if few_shapes else st.integers(1, 3)) if kind.composite else 1
    if few_shapes:
        lead = draw(st.sampled_from([(6,), (2, 3)]))
        k, d = 5, 4
    else:
        lead = draw(leads())
        k = draw(st.integers(min_codes, 9))
        width = draw(st.integers(1, 8 // m))
        d = m * width if kind.cls == "ProductDiVeQ" else draw(st.integers(1, 8))
    options: dict[str, Any] = {"noise_std": draw(st.sampled_from(NOISE_STDS))}
    if kind.composite:
        options["space_filling"] = kind.space_filling
    if kind.cls != "SFDiVeQ":
        options["replacement_iters"] = draw(st.sampled_from([1, 2, None]))
    if kind.space_filling:
        options["skip_iters"] = draw(st.integers(0, 3))
        options["avg_iters"] = draw(st.integers(1, 2))
    exponent = draw(exponents("float32"))
    p_mask = draw(st.sampled_from([None, 0.0, 0.3, 0.8]))
    p_bad = draw(st.sampled_from([0.0, 0.2, 0.5]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    zs, masks, cots = [], [], []
    rows = int(np.prod(lead))
    for _ in range(TRAIN_CALLS + 1):
        z = _scaled(rng, (rows, d), exponent)
        bad = np.flatnonzero(rng.random(rows) < p_bad)
        z[bad, rng.integers(0, d, size=bad.size)] = rng.choice([np.nan, np.inf, -np.inf], bad.size)
        zs.append(z.reshape(*lead, d).astype(np.float32))
        masks.append(None if p_mask is None else (rng.random(rows) >= p_mask).reshape(lead))
        cots.append(rng.standard_normal((*lead, d)).astype(np.float32))
    return LayerCase(kind, m, k, d, options, zs, masks, cots, seed, exponent, lead)


class TorchLayer:
    """Drives a torch layer: forward, ``sum(values * cotangent)`` backward, an SGD step."""

    backend = "torch"
    compiles = False

    def __init__(self, case: LayerCase) -> None:
        import torch

        import diveq.backends.torch as dq

        self.torch = torch
        with torch.random.fork_rng():
            torch.manual_seed(case.seed)
            self.layer = getattr(dq, case.kind.cls)(*case.args(), **case.options)
        self.opt = torch.optim.SGD(self.layer.parameters(), lr=LR)

    def codebook(self) -> np.ndarray:
        (param,) = self.layer.parameters()
        return param.detach().numpy().copy()

    def step(self, case: LayerCase, call: int, *, train: bool) -> tuple[np.ndarray, ...]:
        """Values, indices and (train mode) the latent gradient of call ``call`` (0-based)."""
        torch = self.torch
        z = torch.from_numpy(case.zs[call]).requires_grad_(train)
        mask = case.masks[call]
        mask_t = None if mask is None else torch.from_numpy(np.asarray(mask))
        generator = torch.Generator().manual_seed(case.seed + call)
        self.layer.train(train)
        if not train:
            with torch.no_grad():
                out = self.layer(z, mask_t, generator=generator)
            return out.values.numpy(), out.indices.numpy()
        self.opt.zero_grad()
        out = self.layer(z, mask_t, generator=generator)
        keep = torch.from_numpy(np.asarray(case.valid(call)))[..., None]
        cot = torch.from_numpy(case.cotangents[call])
        (torch.where(keep, out.values, 0.0) * cot).sum().backward()
        self.opt.step()
        assert z.grad is not None
        return out.values.detach().numpy(), out.indices.numpy(), z.grad.numpy()


class JaxLayer:
    """Drives a JAX layer eagerly: ``apply``, ``jax.value_and_grad``, a plain gradient step."""

    backend = "jax"
    compiles = True

    def __init__(self, case: LayerCase) -> None:
        import jax

        import diveq.backends.jax as dq

        self.jax, self.dq = jax, dq
        options = dict(case.options)
        if case.kind.space_filling:  # the static warm-up buffer holds this many rows per call
            options["rows_per_call"] = max(1, int(np.prod(case.lead)))
        self.layer = getattr(dq, case.kind.cls)(*case.args(), **options)
        self.state = self.layer.init(jax.random.key(case.seed))

    def codebook(self) -> np.ndarray:
        return np.asarray(self.dq.split_params(self.state)[0])

    def step(self, case: LayerCase, call: int, *, train: bool) -> tuple[np.ndarray, ...]:
        """Values, indices and (train mode) the latent gradient of call ``call`` (0-based)."""
        jax, dq, jnp = self.jax, self.dq, self.jax.numpy
        z = jnp.asarray(case.zs[call])
        mask = case.masks[call]
        mask_j = None if mask is None else jnp.asarray(mask)
        if not train:
            out, state = self.layer.apply(self.state, z, mask=mask_j, train=False)
            assert state is self.state
            return np.asarray(out.values), np.asarray(out.indices)
        params, rest = dq.split_params(self.state)
        keep = jnp.asarray(case.valid(call))[..., None]
        cot = jnp.asarray(case.cotangents[call])
        key = jax.random.key(case.seed + call)

        def loss(book: Any, x: Any) -> Any:
            out, new = self.layer.apply(dq.merge_params(book, rest), x, key=key, mask=mask_j)
            return jnp.sum(jnp.where(keep, out.values, 0.0) * cot), (out, new)

        grad = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
        (_, (out, new)), (dbook, dz) = grad(params, z)
        book, rest = dq.split_params(new)  # replacement / warm-up init may have moved rows
        self.state = dq.merge_params(book - LR * dbook, rest)
        return np.asarray(out.values), np.asarray(out.indices), np.asarray(dz)


LAYER_DRIVERS = [d for d in (TorchLayer, JaxLayer) if d.backend in {a.name for a in ADAPTERS}]


def _check_layer_output(
    case: LayerCase, call: int, values: np.ndarray, indices: np.ndarray, high: int, what: str
) -> None:
    """Bad rows unchanged with index -1; valid rows finite with indices in ``[0, high)``
    (``high = 0``: an SF warm-up call, not quantised, every index -1)."""
    z, valid = case.zs[call], case.valid(call)
    if values.shape != z.shape or values.dtype != z.dtype:
        raise AssertionError(f"{what}: values {values.dtype} {values.shape} for z {z.shape}")
    if not np.array_equal(values[~valid], z[~valid], equal_nan=True):
        raise AssertionError(f"{what}: masked / non-finite rows changed: {values[~valid]!r}")
    _finite(values[valid], f"{what} values of valid rows")
    shape = case.lead + ((case.m,) if case.kind.composite else ())
    if indices.shape != shape or indices.dtype.kind != "i":
        raise AssertionError(f"{what}: indices {indices.dtype} {indices.shape} != {shape}")
    idx = indices.reshape(*case.lead, case.m)
    if np.any(idx[~valid] != -1):
        raise AssertionError(f"{what}: masked / non-finite rows got indices {idx[~valid]!r}")
    good = idx[valid]
    if high == 0 and np.any(good != -1):
        raise AssertionError(f"{what}: SF warm-up call quantised: {good!r}")
    if high and good.size and (good.min() < 0 or good.max() >= high):
        raise AssertionError(f"{what}: valid rows' indices outside [0, {high}): {good!r}")


def check_layer(driver: Any, case: LayerCase) -> None:
    """Train calls (SF warm-up included) then eval: -1 exactly on bad rows, all finite."""
    layer = driver(case)
    what = f"{driver.backend}.{case.kind.id}{case.args()} {case.options} 10**{case.exponent}"
    failing = case.warmup_failure()
    for call in range(TRAIN_CALLS):
        where = f"{what} train call {call + 1}"
        if call + 1 == failing:  # too few valid rows to initialise: a clear error
            with pytest.raises(ValueError, match="SF warm-up needs at least K"):
                layer.step(case, call, train=True)
            return
        values, indices, dz = layer.step(case, call, train=True)
        _check_layer_output(case, call, values, indices, case.index_bound(call + 1), where)
        _finite(dz, f"{where}: latent gradient")
        _finite(layer.codebook(), f"{where}: codebook after the gradient step")
    before = layer.codebook()
    values, indices = layer.step(case, TRAIN_CALLS, train=False)
    _check_layer_output(case, TRAIN_CALLS, values, indices, case.index_bound(None), what)
    np.testing.assert_array_equal(layer.codebook(), before, err_msg=f"{what}: eval changed it")


@pytest.mark.parametrize("kind", LAYER_KINDS, ids=[k.id for k in LAYER_KINDS])
@pytest.mark.parametrize("driver", LAYER_DRIVERS, ids=[d.backend for d in LAYER_DRIVERS])
def test_layers_survive_masks_bad_rows_and_training(driver: Any, kind: LayerKind) -> None:
    _given(
        _examples(driver.compiles),
        layer_cases(kind, few_shapes=driver.compiles),
        functools.partial(check_layer, driver),
    )
