"""Fused nearest-codeword search and polyline projection as Triton kernels (opt-in).

Reached through ``chunk_size="fused"`` of :func:`diveq.backends.torch.nearest`, ``quantize``
and ``sf_quantize``: compiled for CUDA tensors, or run by Triton's interpreter on any device
when ``TRITON_INTERPRET=1`` was set before Triton's import (slow, for tests; ``"fused-interpret"``
insists on it); the operands, checks and decoding are
:mod:`diveq.core._fused`'s. Each program owns ``BLOCK_N`` rows, walks the codebook in tiles of
``BLOCK_K`` codewords and keeps the running minimum and its index in registers, so the
``N x K`` scores are never written to memory. Scores are exact fp32 (``input_precision="ieee"``,
never TF32), or fp64 for float64 input. Unmeasured on GPUs so far: it is not the default.
"""

from __future__ import annotations

import torch

from diveq.core._fused import Kernels

try:
    import triton
    import triton.language as tl
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "chunk_size='fused' needs Triton: pip install 'diveq[triton]' (a CUDA build of torch "
        "brings its matching Triton)"
    ) from err

__all__ = ["KERNELS"]

BLOCK_N = 32
BLOCK_K = 64


@triton.jit
def _dot_tiles(z_ptr, c_ptr, rows, row_ok, ks, k_ok, d, acc, BLOCK_D: tl.constexpr):
    """``acc + z[rows] . c[ks]`` over all ``d`` features, ``BLOCK_D`` at a time: exact fp32
    (``"ieee"``, never TF32) or fp64; rows and codewords outside the masks read as 0."""
    cols = tl.arange(0, BLOCK_D)
    starts = rows.to(tl.int64) * d  # N * D may pass 2^31
    for d0 in range(0, d, BLOCK_D):
        ds = d0 + cols
        d_ok = ds < d
        zt = tl.load(z_ptr + starts[:, None] + ds[None, :], row_ok[:, None] & d_ok[None, :], 0.0)
        ct = tl.load(c_ptr + ks[None, :] * d + ds[:, None], k_ok[None, :] & d_ok[:, None], 0.0)
        acc = tl.dot(zt, ct, acc, input_precision="ieee", out_dtype=acc.dtype)
    return acc


@triton.jit
def _running_min(best, best_i, scores, k0):
    """Fold one tile of ``scores`` into the running minimum: the first index on ties, within
    the tile (``tl.min``) and across tiles (strict ``<``: an earlier tile keeps a tie)."""
    tile_best, tile_i = tl.min(scores, axis=1, return_indices=True)
    better = tile_best < best
    return tl.where(better, tile_best, best), tl.where(better, k0 + tile_i, best_i), better, tile_i


@triton.jit
def _nearest_kernel(
    z_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    n,
    k,
    d,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n
    best = tl.full([BLOCK_N], float("inf"), b_ptr.dtype.element_ty)
    best_i = tl.zeros([BLOCK_N], tl.int32)
    for k0 in range(0, k, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < k
        acc = tl.zeros([BLOCK_N, BLOCK_K], b_ptr.dtype.element_ty)
        acc = _dot_tiles(z_ptr, w_ptr, rows, row_ok, ks, k_ok, d, acc, BLOCK_D)
        # padded codewords score +inf, so they never win against a finite score
        scores = acc + tl.load(b_ptr + ks, k_ok, other=float("inf"))[None, :]
        best, best_i, _, _ = _running_min(best, best_i, scores, k0)
    tl.store(out_ptr + rows, best_i.to(tl.int64), row_ok)


@triton.jit
def _project_kernel(
    z_ptr, p_ptr, sq_ptr, off_ptr, len_ptr, i_ptr, t_ptr, n, k, d,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n
    lanes = tl.arange(0, BLOCK_K)
    best = tl.full([BLOCK_N], float("inf"), t_ptr.dtype.element_ty)
    best_i = tl.zeros([BLOCK_N], tl.int32)
    best_t = tl.zeros([BLOCK_N], t_ptr.dtype.element_ty)
    segs = k - 1
    for j0 in range(0, segs, BLOCK_K):
        js = j0 + lanes
        j_ok = js < segs
        zero = tl.zeros([BLOCK_N, BLOCK_K], t_ptr.dtype.element_ty)
        ga = _dot_tiles(z_ptr, p_ptr, rows, row_ok, js, j_ok, d, zero, BLOCK_D)  # z . c_j
        gb = _dot_tiles(z_ptr, p_ptr, rows, row_ok, js + 1, j_ok, d, zero, BLOCK_D)  # z . c_j+1
        length = tl.load(len_ptr + js, j_ok, other=1.0)[None, :]
        num = gb - ga - tl.load(off_ptr + js, j_ok, other=0.0)[None, :]  # (z - a) . e
        has_len = length > 0
        t = tl.where(has_len, tl.clamp(num / tl.where(has_len, length, 1.0), 0.0, 1.0), 0.0)
        va = tl.load(sq_ptr + js, j_ok, other=0.0)[None, :] - 2.0 * ga
        vb = tl.load(sq_ptr + js + 1, j_ok, other=0.0)[None, :] - 2.0 * gb
        dist = tl.where(t >= 1.0, vb, tl.where(t <= 0.0, va, va - 2.0 * t * num + t * t * length))
        # A segment clipped to its first vertex (j >= 1) shares that point with segment j - 1,
        # which is at least as close and wins the tie; dropping it makes the structural tie
        # independent of how the two dot products holding that vertex were rounded.
        drop = ((t <= 0.0) & (js[None, :] >= 1)) | ~(j_ok[None, :])
        dist = tl.where(drop, float("inf"), dist)
        best, best_i, better, tile_i = _running_min(best, best_i, dist, j0)
        tile_t = tl.sum(tl.where(lanes[None, :] == tile_i[:, None], t, 0.0), axis=1)
        best_t = tl.where(better, tile_t, best_t)
    tl.store(i_ptr + rows, best_i.to(tl.int64), row_ok)
    tl.store(t_ptr + rows, best_t, row_ok)


def interpreting() -> bool:
    """Whether Triton was imported in interpreter mode (``TRITON_INTERPRET=1`` set before the
    first ``import triton``): its own helpers are then interpreted too, and every kernel runs
    on the host; otherwise kernels are compiled, for CUDA tensors only."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl.standard.zeros, InterpretedFunction)


def _check_device(z: torch.Tensor, interpret: bool) -> None:
    if interpret and not interpreting():
        raise RuntimeError(
            "chunk_size='fused-interpret' runs Triton's interpreter, which Triton enables only "
            "when TRITON_INTERPRET=1 is set before it is first imported (in this process it "
            "was not); chunk_size=None is the tiled search."
        )
    if not interpreting() and z.device.type != "cuda":
        raise RuntimeError(
            f"chunk_size='fused' runs a compiled Triton kernel, which needs a CUDA tensor; "
            f"`z` is on {z.device}. Triton's interpreter (TRITON_INTERPRET=1 set before Triton "
            "is imported) runs it on any device (slow, for tests); chunk_size=None is the "
            "tiled search."
        )


def _block_d(d: int) -> int:
    """Feature tile: a power of two, at least 16 (``tl.dot``'s minimum), at most 64."""
    return max(16, min(64, triton.next_power_of_2(d)))


def nearest_rows(
    z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, interpret: bool
) -> torch.Tensor:
    """``argmin_j bias_j + z . weight_j`` per row of ``z`` ``(N, D)``; int64 ``(N,)``."""
    _check_device(z, interpret)
    z, weight, bias = z.contiguous(), weight.contiguous(), bias.contiguous()
    (n, d), k = z.shape, weight.shape[0]
    out = torch.empty(n, dtype=torch.int64, device=z.device)
    grid = (triton.cdiv(n, BLOCK_N),)
    _nearest_kernel[grid](
        z, weight, bias, out, n, k, d, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, BLOCK_D=_block_d(d)
    )
    return out


def project_rows(
    z: torch.Tensor,
    points: torch.Tensor,
    sq_norms: torch.Tensor,
    offsets: torch.Tensor,
    lengths: torch.Tensor,
    interpret: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment index (int64) and clipped position ``t`` of the exact polyline projection."""
    _check_device(z, interpret)
    z, points = z.contiguous(), points.contiguous()
    (n, d), k = z.shape, points.shape[0]
    i = torch.empty(n, dtype=torch.int64, device=z.device)
    t = torch.empty(n, dtype=z.dtype, device=z.device)
    grid = (triton.cdiv(n, BLOCK_N),)
    _project_kernel[grid](
        z,
        points,
        sq_norms.contiguous(),
        offsets.contiguous(),
        lengths.contiguous(),
        i,
        t,
        n,
        k,
        d,
        BLOCK_N=BLOCK_N,
        BLOCK_K=BLOCK_K,
        BLOCK_D=_block_d(d),
    )
    return i, t


KERNELS = Kernels(nearest_rows, project_rows)
