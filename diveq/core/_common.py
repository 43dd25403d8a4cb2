"""Small array-API building blocks shared by the core estimators."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from array_api_compat import array_namespace, device, is_jax_namespace, is_torch_namespace

from diveq._checks import check_draw

Array = Any
StopGradient = Callable[[Array], Array]

#: Floor of ``||z||`` in the rotation trick's scale ``||c_k|| / max(||z||, UNIT_EPS)``.
UNIT_EPS = 1e-12

#: Default number of distance-matrix entries one search tile may hold. On accelerators a tile
#: is large, so a search is few kernel launches; on CPUs it is small enough to stay in the
#: last-level cache, so the N x K scores are never written to memory (docs: Performance).
TILE_ENTRIES = 1 << 24
TILE_ENTRIES_CPU = 1 << 21


def identity(x: Array) -> Array:
    """The stop-gradient of a namespace without autodiff (NumPy, array-api-strict)."""
    return x


class Native:
    """A backend's stop-gradient that also carries its native versions of core formulas.

    The binding (:func:`diveq.core._bind.bind`) hands it to the core as ``stop_gradient``: it is
    called like the plain one, and the core uses its ``reparam`` in place of the generic
    :func:`diveq.core._estimators.reparam`. Riding on the existing argument, the native path
    reaches every core function that takes a stop-gradient without a new parameter.
    """

    __slots__ = ("reparam", "stop_gradient")

    def __init__(self, stop_gradient: StopGradient, reparam: Callable[..., Array]) -> None:
        self.stop_gradient = stop_gradient
        self.reparam = reparam

    def __call__(self, x: Array) -> Array:
        return self.stop_gradient(x)


def matmul(xp: Any, a: Array, b: Array, bias: Array | None = None) -> Array:
    """``a @ b (+ bias)`` in the operands' dtype.

    torch: one fused ``addmm`` when there is a bias, and with autocast turned off, which would
    otherwise run it in bfloat16/float16: distances are computed in at least float32, or the
    search picks wrong codes. Elsewhere the compiler (XLA) fuses the add or it costs one pass.
    """
    if is_torch_namespace(xp):
        torch = sys.modules["torch"]
        with torch.autocast(a.device.type, enabled=False):
            return a @ b if bias is None else torch.addmm(bias, a, b)
    return a @ b if bias is None else a @ b + bias


def cast(xp: Any, x: Array, dtype: Any) -> Array:
    """``astype`` without a copy when ``x`` already has ``dtype``."""
    return xp.astype(x, dtype, copy=False)


def work_dtype(xp: Any, *arrays: Array) -> Any:
    """Floating dtype used for distances and estimator arithmetic: at least float32."""
    return xp.result_type(*(a.dtype for a in arrays), xp.float32)


def row_scale(xp: Any, v: Array) -> Array:
    """Per-row inverse powers of two ``1 / s`` with ``max |v_row| / s`` in ``[1, 2)``.

    Norms computed on ``v / s`` neither overflow (float32 ``|v| > 1.8e19``) nor underflow
    (``|v| < 1e-19``), and since ``s`` is a power of two the scaling changes no rounding: in the
    range where the plain formula is finite, the result is bit-identical to it. Pass a detached
    ``v``; the scale is a constant of the gradient.
    """
    m = xp.max(xp.abs(v), axis=-1, keepdims=True)  # torch's ord=inf norm is 20x slower
    info = xp.finfo(v.dtype)
    m = xp.where(xp.isfinite(m), xp.clip(m, info.smallest_normal, None), 1.0)
    return 2.0 ** (-xp.floor(xp.log2(m)))


def _l2(xp: Any, w: Array) -> Array:
    """``||w||`` per row (keepdims), not differentiated; one fused kernel on torch."""
    if is_torch_namespace(xp):
        return sys.modules["torch"].linalg.vector_norm(w, dim=-1, keepdim=True)
    return xp.sqrt(xp.sum(w * w, axis=-1, keepdims=True))


def safe_norm(xp: Any, v: Array, sg: Callable[[Array], Array]) -> Array:
    """Row norm ``||v||`` (keepdims) whose gradient is exactly ``v / ||v||`` (``0`` at ``0``).

    Written as ``sum(v * sg(v / ||v||))`` with the direction computed on ``v / s``
    (:func:`row_scale`): finite for every finite ``v``, and the backward never forms a product
    larger than the gradient itself.
    """
    return xp.sum(v * sg(unit(xp, sg(v))), axis=-1, keepdims=True)


def unit(xp: Any, v: Array) -> Array:
    """``v / ||v||`` row-wise and ``unit(0) = 0`` (no gradient is meant to flow through it).

    Computed on ``v / s`` (:func:`row_scale`), so finite for every finite ``v``, and a unit
    vector for a row of any nonzero length (no floor on the norm).
    """
    w = v * row_scale(xp, v)  # max |w| in [1, 2), so ||w|| >= 1 unless v = 0
    return w / xp.clip(_l2(xp, w), 1.0, None)


def rows(xp: Any, z: Array) -> Array:
    """View ``z`` of shape ``(..., D)`` as a matrix of rows ``(N, D)``."""
    return xp.reshape(z, (-1, z.shape[-1]))


def unrows(xp: Any, x: Array, lead: Sequence[int]) -> Array:
    """Inverse of :func:`rows` for a per-row result with trailing shape ``x.shape[1:]``."""
    return xp.reshape(x, (*lead, *x.shape[1:]))


def on_cpu(like: Array) -> bool:
    """Whether ``like`` lives on (or, traced by JAX, will run on) a CPU."""
    where = device(like)
    if where is None and "jax" in sys.modules:  # a tracer: JAX places it on the default backend
        return bool(sys.modules["jax"].default_backend() == "cpu")
    kind = getattr(where, "type", None) or getattr(where, "platform", None) or str(where)
    return str(kind).lower().startswith("cpu")


def default_chunk(num_points: int, chunk_size: int | None, like: Array = None) -> int:
    """Rows per search tile: explicit values are honoured, ``None`` bounds the tile size
    (smaller on CPUs, see :data:`TILE_ENTRIES_CPU`, when ``like`` says where it runs)."""
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"`chunk_size` must be None or a positive int; got {chunk_size!r}")
        return chunk_size
    entries = TILE_ENTRIES_CPU if like is not None and on_cpu(like) else TILE_ENTRIES
    return max(1, entries // max(num_points, 1))


def map_row_chunks(
    xp: Any, fn: Callable[[Array], tuple[Array, ...]], z: Array, chunk: int
) -> tuple[Array, ...]:
    """Apply ``fn`` to blocks of at most ``chunk`` rows of ``z`` and concatenate the outputs.

    On JAX the blocks run under ``jax.lax.map`` (rows padded to a whole number of blocks), so a
    jitted program holds one block however large ``N`` is, instead of an unrolled loop.
    """
    n = z.shape[0]
    if n <= chunk:
        return fn(z)
    if is_jax_namespace(xp):
        pad = (-n) % chunk
        if pad:
            z = xp.concat([z, xp.zeros((pad, *z.shape[1:]), dtype=z.dtype)], axis=0)
        blocks = xp.reshape(z, (-1, chunk, *z.shape[1:]))
        outs = sys.modules["jax"].lax.map(fn, blocks)
        return tuple(xp.reshape(o, (-1, *o.shape[2:]))[:n, ...] for o in outs)
    # Elsewhere each block's outputs are copied into preallocated results at once: keeping them
    # alive between blocks would pin a freed tile below each one, and glibc's malloc would then
    # take a fresh tile every block (the resident set grew to the whole N x K matrix).
    first = fn(z[:chunk, ...])
    outs = tuple(xp.empty((n, *f.shape[1:]), dtype=f.dtype, device=device(f)) for f in first)
    for out, part in zip(outs, first, strict=True):
        out[:chunk, ...] = part
    for start in range(chunk, n, chunk):
        stop = min(start + chunk, n)
        for out, part in zip(outs, fn(z[start:stop, ...]), strict=True):
            out[start:stop, ...] = part
    return outs


def need_draw(
    name: str, draw: Array | None, noise_std: Any, shape: tuple[int, ...], like: Array = None
) -> Array | None:
    """Validate an explicit noise draw; ``None`` is only allowed for ``noise_std == 0``."""

    if draw is None:
        if isinstance(noise_std, (int, float)) and noise_std == 0:
            return None
        raise ValueError(
            f"`{name}` of shape {shape} is required when noise_std > 0: diveq.core takes "
            "explicit draws (the backends sample them for you)"
        )
    check_draw(name, draw, shape, like)
    return draw


def need_dither(draw: Array | None, shape: tuple[int, ...], like: Array = None) -> Array:
    """Validate an explicit dither draw (always required by the core)."""

    if draw is None:
        raise ValueError(
            f"`dither` of shape {shape} is required: diveq.core takes explicit draws "
            "(the backends sample them for you)"
        )
    check_draw("dither", draw, shape, like)
    return draw


def namespace(*arrays: Array) -> Any:
    """The array-API namespace of the given arrays (``None`` entries are ignored)."""
    return array_namespace(*[a for a in arrays if a is not None])
