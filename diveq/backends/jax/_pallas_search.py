"""Fused nearest-codeword search and polyline projection as Pallas kernels (opt-in).

Reached through ``chunk_size="fused"`` (a GPU or TPU: Pallas compiles the kernel) or
``"fused-interpret"`` (``interpret=True``: any backend, slow, for tests) of
:func:`diveq.backends.jax.nearest`, ``quantize`` and ``sf_quantize``; the operands, checks and
decoding are :mod:`diveq.core._fused`'s. Each program owns ``BLOCK_N`` rows and walks the
codebook in tiles of ``BLOCK_K`` codewords (``lax.fori_loop``), keeping the running minimum and
its index on chip, so the ``N x K`` scores are never written to memory. Scores use
``Precision.HIGHEST`` (exact fp32, no TF32/bf16 passes). Unmeasured on GPUs so far: it is not
the default.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from diveq.core._common import on_cpu
from diveq.core._fused import Kernels

__all__ = ["KERNELS"]

BLOCK_N = 32
BLOCK_K = 64
_HIGHEST = jax.lax.Precision.HIGHEST


def _pad_rows(x: jax.Array, rows: int, value: float = 0.0) -> jax.Array:
    """``x`` with its first axis padded to ``rows`` entries of ``value``."""
    pad = [(0, rows - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
    return jnp.pad(x, pad, constant_values=value)


def _pad_cols(x: jax.Array, cols: int) -> jax.Array:
    """``x`` ``(rows, D)`` with zero features appended up to ``cols`` (exact: they add 0)."""
    return jnp.pad(x, [(0, 0), (0, cols - x.shape[1])])


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


def _pow2(n: int) -> int:
    """The smallest power of two ``>= n``: Pallas's GPU lowering (Triton) wants block shapes
    that are powers of two; zero features and ``+inf``-scored codewords change no result."""
    return 1 << max(n - 1, 0).bit_length()


def _index_dtype() -> Any:
    """JAX's default integer (int64 under x64), the dtype of ``jnp.argmin``."""
    return jnp.argmin(jnp.zeros((1,))).dtype


def _dot_t(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a @ b.T`` at full precision, accumulated in the operands' dtype (float32 or 64)."""
    dims = (((1,), (1,)), ((), ()))
    return jax.lax.dot_general(a, b, dims, precision=_HIGHEST, preferred_element_type=a.dtype)


def _nearest_kernel(z_ref, w_ref, b_ref, out_ref, *, tiles: int):
    z = z_ref[...]

    def tile(j, carry):
        best, best_i = carry
        w = w_ref[pl.ds(j * BLOCK_K, BLOCK_K), :]
        scores = _dot_t(z, w) + b_ref[pl.ds(j * BLOCK_K, BLOCK_K)]
        tile_i = jax.lax.argmin(scores, 1, jnp.int32)  # first on ties
        tile_best = jnp.min(scores, axis=1)
        better = tile_best < best  # strict: an earlier tile keeps a tie
        return jnp.where(better, tile_best, best), jnp.where(better, j * BLOCK_K + tile_i, best_i)

    init = (jnp.full((z.shape[0],), jnp.inf, z.dtype), jnp.zeros((z.shape[0],), jnp.int32))
    out_ref[...] = jax.lax.fori_loop(0, tiles, tile, init)[1].astype(out_ref.dtype)


def _project_kernel(z_ref, p_ref, sq_ref, off_ref, len_ref, i_ref, t_ref, *, tiles, segs):
    z = z_ref[...]
    lanes = jnp.arange(BLOCK_K)

    def tile(j, carry):
        best, best_i, best_t = carry
        at = pl.ds(j * BLOCK_K, BLOCK_K)
        nxt = pl.ds(j * BLOCK_K + 1, BLOCK_K)
        ga = _dot_t(z, p_ref[at, :])
        gb = _dot_t(z, p_ref[nxt, :])
        length = len_ref[at]
        num = gb - ga - off_ref[at]  # (z - a) . e
        has_len = length > 0
        t = jnp.where(has_len, jnp.clip(num / jnp.where(has_len, length, 1.0), 0.0, 1.0), 0.0)
        va = sq_ref[at] - 2.0 * ga
        vb = sq_ref[nxt] - 2.0 * gb
        dist = jnp.where(t >= 1.0, vb, jnp.where(t <= 0.0, va, va - 2.0 * t * num + t * t * length))
        # As in the Triton kernel: a segment clipped to its first vertex (j >= 1) loses the
        # structural tie to segment j - 1 whatever the rounding of the two dot products.
        js = j * BLOCK_K + lanes
        drop = ((t <= 0.0) & (js >= 1)) | (js >= segs)
        dist = jnp.where(drop, jnp.inf, dist)
        tile_i = jax.lax.argmin(dist, 1, jnp.int32)  # first on ties
        tile_best = jnp.min(dist, axis=1)
        tile_t = jnp.sum(jnp.where(lanes[None, :] == tile_i[:, None], t, 0.0), axis=1)
        better = tile_best < best
        return (
            jnp.where(better, tile_best, best),
            jnp.where(better, j * BLOCK_K + tile_i, best_i),
            jnp.where(better, tile_t, best_t),
        )

    n = z.shape[0]
    init = (jnp.full((n,), jnp.inf, z.dtype), jnp.zeros((n,), jnp.int32), jnp.zeros((n,), z.dtype))
    _, best_i, best_t = jax.lax.fori_loop(0, tiles, tile, init)
    i_ref[...] = best_i.astype(i_ref.dtype)
    t_ref[...] = best_t


def _rows_spec(d: int | None = None) -> Any:
    if d is None:
        return pl.BlockSpec((BLOCK_N,), lambda r: (r,))
    return pl.BlockSpec((BLOCK_N, d), lambda r: (r, 0))


def _whole(shape: tuple[int, ...]) -> Any:
    return pl.BlockSpec(shape, lambda r: (0,) * len(shape))


@functools.partial(jax.jit, static_argnames=("interpret",))
def _nearest(z: jax.Array, weight: jax.Array, bias: jax.Array, interpret: bool) -> jax.Array:
    (n, d), k = z.shape, weight.shape[0]
    rows, codes, d = _round_up(n, BLOCK_N), _pow2(_round_up(k, BLOCK_K)), _pow2(max(d, 16))
    # padded codewords score +inf, so they never win against a finite score
    weight, bias = _pad_rows(_pad_cols(weight, d), codes), _pad_rows(bias, codes, jnp.inf)
    out = pl.pallas_call(
        functools.partial(_nearest_kernel, tiles=-(-k // BLOCK_K)),
        out_shape=jax.ShapeDtypeStruct((rows,), _index_dtype()),
        grid=(rows // BLOCK_N,),
        in_specs=[_rows_spec(d), _whole((codes, d)), _whole((codes,))],
        out_specs=_rows_spec(),
        interpret=interpret,
    )(_pad_rows(_pad_cols(z, d), rows), weight, bias)
    return out[:n]


@functools.partial(jax.jit, static_argnames=("interpret",))
def _project(
    z: jax.Array,
    points: jax.Array,
    sq_norms: jax.Array,
    offsets: jax.Array,
    lengths: jax.Array,
    interpret: bool,
) -> tuple[jax.Array, jax.Array]:
    (n, d), segs = z.shape, points.shape[0] - 1
    rows, d = _round_up(n, BLOCK_N), _pow2(max(d, 16))
    span = _pow2(_round_up(segs, BLOCK_K) + 1)  # tile j reads vertices up to j * BLOCK_K + 64
    i, t = pl.pallas_call(
        functools.partial(_project_kernel, tiles=-(-segs // BLOCK_K), segs=segs),
        out_shape=(
            jax.ShapeDtypeStruct((rows,), _index_dtype()),
            jax.ShapeDtypeStruct((rows,), z.dtype),
        ),
        grid=(rows // BLOCK_N,),
        in_specs=[_rows_spec(d), _whole((span, d)), *[_whole((span,))] * 3],
        out_specs=(_rows_spec(), _rows_spec()),
        interpret=interpret,
    )(
        _pad_rows(_pad_cols(z, d), rows),
        _pad_rows(_pad_cols(points, d), span),
        _pad_rows(sq_norms, span),
        _pad_rows(offsets, span),
        _pad_rows(lengths, span, 1.0),
    )
    return i[:n], t[:n]


def _checked(run: Callable[..., Any]) -> Callable[..., Any]:
    """``run(z, *operands, interpret)`` that first says so when the kernel cannot run."""

    @functools.wraps(run)
    def launch(z: jax.Array, *operands: Any) -> Any:
        interpret = operands[-1]
        if not interpret and on_cpu(z):
            raise RuntimeError(
                "chunk_size='fused' compiles a Pallas kernel, which needs a GPU or TPU; `z` is "
                "on a CPU. chunk_size='fused-interpret' runs it in Pallas's interpreter (slow, "
                "for tests); chunk_size=None is the tiled search."
            )
        return run(z, *operands[:-1], interpret=interpret)

    return launch


#: ``nearest_rows(z, weight, bias, interpret)`` and
#: ``project_rows(z, points, sq_norms, offsets, lengths, interpret)`` (:mod:`diveq.core._fused`)
KERNELS = Kernels(_checked(_nearest), _checked(_project))
