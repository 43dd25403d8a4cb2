"""Every documented error for every reference function, plus the reference-only value checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import diveq.reference as ref
from diveq._ops import OPS, Op

N, D, K, M = 3, 4, 3, 2


@dataclass(frozen=True)
class Fn:
    """A reference function: an op of the table, or its VJP."""

    op: Op
    vjp: bool = False

    @property
    def fn(self) -> Callable[..., Any]:
        return getattr(ref, self.name)

    @property
    def name(self) -> str:
        return self.op.name + ("_vjp" if self.vjp else "")

    @property
    def books(self) -> str:
        return self.op.books

    @property
    def sf(self) -> bool:  # needs K >= 2
        return self.op.space_filling

    @property
    def noise_std(self) -> bool:
        return self.op.noise_std

    @property
    def noise(self) -> str | None:
        return self.op.noise

    @property
    def dither(self) -> bool:
        return self.op.dither

    def books_shape(self, d: int = D) -> tuple[int, ...]:
        return self.op.book_shape(M, K, d)

    def noise_shape(self, z_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        return self.op.noise_shape(z_shape)

    def dither_shape(self) -> tuple[int, ...] | None:
        return self.op.dither_shape(self.books_shape())

    def call(self, z: Any = None, books: Any = None, **overrides: Any) -> Any:
        """Call with valid defaults for everything that is not overridden."""
        rng = np.random.default_rng(0)
        z = rng.standard_normal((N, D)) if z is None else z
        z_shape = np.shape(z)
        books = rng.standard_normal(self.books_shape()) if books is None else books
        kw: dict[str, Any] = {}
        if self.noise_std:
            kw["noise_std"] = 0.1
        if self.noise:
            kw["noise"] = rng.standard_normal(self.noise_shape(z_shape))
        if self.dither:
            kw["dither"] = rng.random(self.dither_shape())
        if self.op.gumbel and np.ndim(books) >= 2:
            kw["gumbel"] = rng.gumbel(size=self.op.gumbel_shape(z_shape, np.shape(books)))
        cot = overrides.pop("cotangent", np.ones(z_shape))
        kw.update(overrides)
        args = (z, books, cot) if self.vjp else (z, books)
        return self.fn(*args, **kw)


FUNCTIONS = [Fn(op) for op in OPS] + [Fn(op, vjp=True) for op in OPS if op.train]
IDS = [f.name for f in FUNCTIONS]


def by(predicate: Callable[[Fn], bool]) -> Any:
    chosen = [f for f in FUNCTIONS if predicate(f)]
    return pytest.mark.parametrize("f", chosen, ids=[f.name for f in chosen])


def msg(text: str) -> str:
    return re.escape(text)


def test_every_public_array_function_is_covered():
    covered = {f.name for f in FUNCTIONS} | {"commitment_loss", "commitment_loss_vjp"}
    state = {"code_usage", "perplexity", "update_usage", "dead_codes", "replace_dead_codes"}
    types = {"Quantized", "SFQuantized", "LayerOutput", "SFLayerOutput", "LayerDraws"}
    layers = {"DiVeQ", "SFDiVeQ", "ProductDiVeQ", "ResidualDiVeQ", "LayerState"}  # own tests
    layers |= {"GumbelVQ", "GumbelState"}
    ema = {"EMAState", "EMALayerOutput", "EMAVQ", "ema_init", "ema_statistics", "ema_update"}
    public = set(ref.__all__) - types - layers - {"warmup_codebook"} - state - ema
    assert public == covered


@pytest.mark.parametrize("f", FUNCTIONS, ids=IDS)
def test_valid_call_works(f: Fn):
    f.call()
    f.call(z=np.zeros((2, 5, D)))


# --- shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("f", FUNCTIONS, ids=IDS)
def test_feature_size_mismatch(f: Fn):
    z = np.ones((N, D))
    books = np.ones(f.books_shape(d=2 * D))
    with pytest.raises(ValueError, match="feature size mismatch") as info:
        f.call(z=z, books=books)
    assert str(books.shape) in str(info.value) and str(z.shape) in str(info.value)


@pytest.mark.parametrize("f", FUNCTIONS, ids=IDS)
def test_wrong_codebook_rank(f: Fn):
    rank = 2 if f.books == "single" else 3
    wrong = np.ones((K, D)) if rank == 3 else np.ones((M, K, D))
    with pytest.raises(ValueError, match=f"must have rank {rank}"):
        f.call(books=wrong)
    with pytest.raises(ValueError, match=f"must have rank {rank}"):
        f.call(books=np.ones(D))


@by(lambda f: f.sf)
def test_space_filling_needs_two_codewords(f: Fn):
    shape = (1, D) if f.books == "single" else (M, 1, f.books_shape()[-1])
    kw = {"dither": np.zeros((*shape[:-2], 0))} if f.dither else {}
    with pytest.raises(ValueError, match="at least 2 codewords"):
        f.call(books=np.ones(shape), **kw)


@by(lambda f: not f.sf)
def test_one_codeword_is_enough_without_space_filling(f: Fn):
    shape = (1, D) if f.books == "single" else (M, 1, f.books_shape()[-1])
    f.call(books=np.ones(shape))
    with pytest.raises(ValueError, match="at least 1 codewords"):
        f.call(books=np.ones((*shape[:-2], 0, shape[-1])))


@by(lambda f: f.books == "product")
def test_product_needs_d_divisible_by_m(f: Fn):
    with pytest.raises(ValueError, match=msg("D % M == 0")):
        f.call(z=np.ones((N, 5)), books=np.ones((M, K, 2)))


def test_zero_dimensional_z():
    with pytest.raises(ValueError, match="0-d"):
        ref.quantize(np.float64(1.0), np.ones((K, 1)))


# --- noise_std ---------------------------------------------------------------------------------


@by(lambda f: f.noise_std)
@pytest.mark.parametrize("bad", [-1e-3, float("nan"), float("inf"), np.float32(-1.0)])
def test_bad_noise_std(f: Fn, bad: Any):
    with pytest.raises(ValueError, match="noise_std"):
        f.call(noise_std=bad)


@by(lambda f: f.noise_std)
def test_noise_std_type(f: Fn):
    with pytest.raises(TypeError, match="noise_std"):
        f.call(noise_std=True)
    with pytest.raises(ValueError, match="noise_std"):
        f.call(noise_std=np.ones(2))


# --- explicit draws ----------------------------------------------------------------------------


@by(lambda f: f.noise is not None)
def test_noise_of_the_wrong_shape(f: Fn):
    want = f.noise_shape((N, D))
    got = (*want[:-1], D + 1)
    with pytest.raises(ValueError, match=msg(f"`noise` must have shape {want}; got shape {got}")):
        f.call(noise=np.ones(got))


@by(lambda f: f.dither)
def test_dither_of_the_wrong_shape(f: Fn):
    want = f.dither_shape()
    got = (*want[:-1], K)
    with pytest.raises(ValueError, match=msg(f"`dither` must have shape {want}; got shape {got}")):
        f.call(dither=np.full(got, 0.5))


@by(lambda f: f.dither)
@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_dither_out_of_range(f: Fn, bad: float):
    lam = np.full(f.dither_shape(), 0.5)
    lam.flat[-1] = bad
    with pytest.raises(ValueError, match=msg("`dither` must lie in [0, 1)")):
        f.call(dither=lam)


@by(lambda f: f.vjp)
def test_cotangent_of_the_wrong_shape(f: Fn):
    with pytest.raises(ValueError, match=msg(f"`cotangent` must have shape {(N, D)}; got shape")):
        f.call(cotangent=np.ones((N + 1, D)))


@by(lambda f: f.vjp and f.noise is not None)
def test_vjp_needs_the_noise(f: Fn):
    with pytest.raises(ValueError, match=r"`noise` .*required"):
        f.call(noise=None)
    if f.noise_std:  # ... unless noise_std == 0
        f.call(noise=None, noise_std=0.0)


@by(lambda f: f.vjp and f.dither)
def test_vjp_needs_the_dither(f: Fn):
    with pytest.raises(ValueError, match=r"`dither` .*required"):
        f.call(dither=None)


@by(lambda f: not f.vjp and (f.noise is not None or f.dither))
def test_forward_samples_missing_draws(f: Fn):
    kw = {"noise": None} if f.noise else {}
    if f.dither:
        kw["dither"] = None
    a = f.call(rng=np.random.default_rng(3), **kw)
    b = f.call(rng=np.random.default_rng(3), **kw)
    np.testing.assert_array_equal(a.values, b.values)


@by(lambda f: f.noise is not None or f.dither)
def test_draws_must_be_floating(f: Fn):
    name = "noise" if f.noise else "dither"
    shape = f.noise_shape((N, D)) if f.noise else f.dither_shape()
    with pytest.raises(TypeError, match=name):
        f.call(**{name: np.zeros(shape, dtype=np.int64)})


# --- dtypes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("f", FUNCTIONS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.complex128, np.bool_])
def test_non_real_floating_z_is_a_type_error(f: Fn, dtype: Any):
    with pytest.raises(TypeError, match="`z` must have a real floating dtype"):
        f.call(z=np.ones((N, D), dtype=dtype))


@pytest.mark.parametrize("f", FUNCTIONS, ids=IDS)
def test_integer_codebook_is_a_type_error(f: Fn):
    with pytest.raises(TypeError, match="real floating dtype"):
        f.call(books=np.ones(f.books_shape(), dtype=np.int64))


def test_integer_lists_are_a_type_error():
    with pytest.raises(TypeError, match="`z`"):
        ref.diveq([[1, 2]], [[0.0, 0.0]])


# --- non-finite values -------------------------------------------------------------------------


@pytest.mark.parametrize("f", FUNCTIONS, ids=IDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_z_and_codebook(f: Fn, bad: float):
    z = np.ones((N, D))
    z[1, 2] = bad
    with pytest.raises(ValueError, match="`z` must be finite"):
        f.call(z=z)
    books = np.ones(f.books_shape())
    books.flat[3] = bad
    name = "codebook" if f.books == "single" else "codebooks"
    with pytest.raises(ValueError, match=f"`{name}` must be finite"):
        f.call(books=books)


@by(lambda f: f.noise is not None or f.dither or f.vjp)
def test_non_finite_draws_and_cotangent(f: Fn):
    if f.noise:
        xi = np.ones(f.noise_shape((N, D)))
        xi.flat[0] = np.nan
        with pytest.raises(ValueError, match="`noise` must be finite"):
            f.call(noise=xi)
    if f.dither:
        lam = np.full(f.dither_shape(), 0.5)
        lam.flat[0] = np.inf
        with pytest.raises(ValueError, match="`dither` must be finite"):
            f.call(dither=lam)
    if f.vjp:
        with pytest.raises(ValueError, match="`cotangent` must be finite"):
            f.call(cotangent=np.full((N, D), np.nan))


def test_nearest_chunk_size():
    z, c = np.ones((N, D)), np.ones((K, D))
    ref.nearest(z, c, chunk_size=1)
    ref.nearest(z, c, chunk_size=np.int64(1000))
    with pytest.raises(ValueError, match="chunk_size"):
        ref.nearest(z, c, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        ref.nearest(z, c, chunk_size=2.0)


# --- commitment loss ---------------------------------------------------------------------------


def test_commitment_loss_errors():
    z, c, idx = np.ones((N, D)), np.ones((K, D)), np.zeros(N, dtype=np.int64)
    for fn, extra in ((ref.commitment_loss, ()), (ref.commitment_loss_vjp, (np.float64(1.0),))):
        with pytest.raises(ValueError, match="feature size mismatch"):
            fn(z, np.ones((K, D + 1)), idx, *extra)
        with pytest.raises(TypeError, match="`z`"):
            fn(z.astype(int), c, idx, *extra)
        with pytest.raises(TypeError, match="`indices`"):
            fn(z, c, idx.astype(float), *extra)
        with pytest.raises(ValueError, match=msg(f"`indices` must have shape {(N,)}; got shape")):
            fn(z, c, np.zeros(N + 1, dtype=np.int64), *extra)
        with pytest.raises(ValueError, match=msg("`indices` must lie in [0, K)")):
            fn(z, c, np.full(N, K), *extra)
        with pytest.raises(ValueError, match="`z` must be finite"):
            fn(np.full((N, D), np.nan), c, idx, *extra)
        with pytest.raises(ValueError, match="beta"):
            fn(z, c, idx, *extra, beta=float("inf"))
    with pytest.raises(ValueError, match=msg("`cotangent` must have shape (); got shape (1,)")):
        ref.commitment_loss_vjp(z, c, idx, np.ones(1))
