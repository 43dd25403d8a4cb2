"""A layer's view of its input and its codes: rows in, user-shaped results out, codes decoded.

A layer call moves the feature axis last and flattens the latents to rows ``(N, D)``; rows that
are masked out or non-finite are *invalid*. Internally every codebook is stacked ``(M, K, D')``
and every per-row code is ``(N, M)`` (``M = 1`` for one codebook); these helpers translate to
and from the shapes users see. Written against the array API, shared by every backend.
"""

from __future__ import annotations

from typing import Any

from diveq._layer_spec import LayerSpec
from diveq.core._common import Array, cast, work_dtype
from diveq.core._composite import _sum
from diveq.core._search import segment_point

__all__ = [
    "decode",
    "decode_rows",
    "finish",
    "finite_rows",
    "from_rows",
    "to_rows",
    "user_codes",
]


def to_rows(
    spec: LayerSpec, xp: Any, z: Array, mask: Array | None
) -> tuple[Array, Array, tuple[int, ...]]:
    """``(rows (N, D), valid (N,), lead)``: ``z`` with the features last, flattened; ``valid``
    is False for masked and non-finite rows; ``lead`` is the shape of ``z`` without the
    feature axis. Raises the layer's input errors (see :meth:`LayerSpec.check_input`)."""
    lead = spec.check_input(z, mask)
    moved = xp.moveaxis(z, spec.feature_axis, -1)
    rows = xp.reshape(moved, (-1, spec.dim))
    valid = finite_rows(xp, rows)
    if mask is not None:
        valid = valid & xp.reshape(mask, (-1,))
    return rows, valid, lead


def finite_rows(xp: Any, rows: Array) -> Array:
    """Whether each row ``(N, D)`` is all finite, as ``sum(row * 0) == 0``.

    ``x * 0`` is ``0`` for finite ``x`` and NaN for ``inf`` and NaN, so the sum is ``0`` exactly
    when the row is finite (and never overflows, unlike a sum of the row itself). Two cheap
    passes, where torch's ``isfinite`` makes several and its boolean ``all`` is slow (docs:
    Performance).
    """
    return xp.sum(rows * 0.0, axis=-1) == 0.0


def from_rows(spec: LayerSpec, xp: Any, rows: Array, lead: tuple[int, ...]) -> Array:
    """Inverse of :func:`to_rows` for values ``(N, D)``: the shape and axis order of ``z``."""
    return xp.moveaxis(xp.reshape(rows, (*lead, spec.dim)), -1, spec.feature_axis)


def user_codes(spec: LayerSpec, xp: Any, codes: Array, lead: tuple[int, ...]) -> Array:
    """Per-row codes ``(N, M)`` (indices or weights) as users see them: ``lead`` for one
    codebook, ``lead + (M,)`` for composites."""
    if spec.composite:
        return xp.reshape(codes, (*lead, spec.num_codebooks))
    return xp.reshape(codes, lead)


def finish(
    spec: LayerSpec,
    xp: Any,
    rows: Array,
    valid: Array,
    lead: tuple[int, ...],
    values: Array,
    idx: Array,
    weights: Array,
    all_valid: bool = False,
) -> tuple[Array, Array, Array]:
    """A call's per-row results as users see them: invalid rows keep their input as value and
    get index ``-1`` and weight 0; values go back to the shape of ``z``. ``all_valid``: the
    caller knows every row is valid (no masking)."""
    if not all_valid:
        values = xp.where(valid[:, None], values, rows)
        idx = xp.where(valid[:, None], idx, -1)
        weights = xp.where(valid[:, None], weights, 0.0)
    return (
        from_rows(spec, xp, values, lead),
        user_codes(spec, xp, idx, lead),
        user_codes(spec, xp, weights, lead),
    )


def decode_rows(
    spec: LayerSpec,
    xp: Any,
    books: Array,
    idx: Array,
    weights: Array | None,
    like: Array = None,
    checked: bool = False,
) -> Array:
    """Rows ``(N, D)`` (in the work dtype) for codes ``(N, M)`` and, for space-filling layers,
    segment positions ``(N, M)``; index ``-1`` gives zeros (``checked``: the caller knows no
    code is ``-1``). The one decoding arithmetic of the layers: their hard inference returns
    these values too (computed at least in the dtype of ``like``, the latents)."""
    ok = idx >= 0
    dt = work_dtype(xp, *(a for a in (books, weights, like) if a is not None))
    parts = []
    for j in range(spec.num_codebooks):
        book = cast(xp, books[j, ...], dt)
        safe = xp.clip(idx[:, j], 0, spec.num_codes - 1)
        if weights is None:
            part = xp.take(book, safe, axis=0)
        else:
            part = segment_point(xp, book, safe, cast(xp, weights[:, j], dt))
        parts.append(part if checked else xp.where(ok[:, j : j + 1], part, 0.0))
    return _sum(parts) if spec.layout == "residual" else xp.concat(parts, axis=-1)


def decode(spec: LayerSpec, xp: Any, books: Array, indices: Array, weights: Array | None) -> Array:
    """Vectors for codes, with the features on ``feature_axis``; index ``-1`` gives zeros.

    ``books`` is stacked ``(M, K, D')``. DiVeQ layers decode ``c_k``; space-filling layers need
    the segment ``weights`` and decode with the same arithmetic as the hard inference, so
    ``decode(encode(z))`` equals ``encode(z).values`` bitwise when both run on one backend.
    """
    m = spec.num_codebooks
    shape = tuple(int(s) for s in indices.shape)
    if spec.composite and (len(shape) < 1 or shape[-1] != m):
        raise ValueError(
            f"`indices` must end with an axis of size M = {m} (one code per codebook); "
            f"got shape {shape}"
        )
    if spec.space_filling and weights is None:
        raise ValueError(
            "`weights` are required to decode space-filling codes (a segment index alone is "
            "not a point): pass the `weights` of the layer's output"
        )
    if not spec.space_filling and weights is not None:
        raise ValueError("`weights` are only meaningful for space-filling layers")
    if weights is not None and tuple(int(s) for s in weights.shape) != shape:
        raise ValueError(
            f"`weights` must have the shape of `indices` {shape}; got shape "
            f"{tuple(int(s) for s in weights.shape)}"
        )
    lead = shape[:-1] if spec.composite else shape
    idx = xp.reshape(indices, (-1, m))
    w = None if weights is None else xp.reshape(weights, (-1, m))
    vectors = decode_rows(spec, xp, books, idx, w)
    return from_rows(spec, xp, cast(xp, vectors, books.dtype), lead)
