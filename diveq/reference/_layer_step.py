"""One call of a reference layer: rows, draws, the estimator of the phase, output, VJP, decode.

A call flattens ``z`` to rows ``x`` ``(N, D)`` (features moved last, C order), runs the
estimator of its phase on the valid rows (finite and not masked out) and puts the results back;
invalid rows keep ``x`` with index ``-1`` and weight ``0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from diveq import _checks
from diveq._layer_spec import LayerSpec
from diveq._types import LayerDraws
from diveq.reference import _validate as v
from diveq.reference._composite import (
    product_diveq,
    product_diveq_vjp,
    residual_diveq,
    residual_diveq_vjp,
)
from diveq.reference._composite_inference import (
    product_quantize,
    product_sf_quantize,
    residual_quantize,
    residual_sf_quantize,
)
from diveq.reference._composite_sf import (
    product_sf_diveq,
    product_sf_diveq_vjp,
    residual_sf_diveq,
    residual_sf_diveq_vjp,
)
from diveq.reference._diveq import diveq, diveq_vjp
from diveq.reference._search import quantize, sf_quantize
from diveq.reference._sf_diveq import sf_diveq, sf_diveq_vjp
from diveq.reference._usage import perplexity

__all__ = [
    "Rows",
    "assemble",
    "decode",
    "draw_shapes",
    "estimate",
    "phase",
    "resolve_draws",
    "rows",
    "vjp_rows",
]

#: The estimator and its VJP per (layout, kind of a train-mode call).
TRAIN: dict[tuple[str, str], tuple[Callable[..., Any], Callable[..., Any]]] = {
    ("single", "diveq"): (diveq, diveq_vjp),
    ("product", "diveq"): (product_diveq, product_diveq_vjp),
    ("residual", "diveq"): (residual_diveq, residual_diveq_vjp),
    ("single", "sf"): (sf_diveq, sf_diveq_vjp),
    ("product", "sf"): (product_sf_diveq, product_sf_diveq_vjp),
    ("residual", "sf"): (residual_sf_diveq, residual_sf_diveq_vjp),
}
#: The hard inference per (layout, space_filling).
INFER: dict[tuple[str, bool], Callable[..., Any]] = {
    ("single", False): quantize,
    ("product", False): product_quantize,
    ("residual", False): residual_quantize,
    ("single", True): sf_quantize,
    ("product", True): product_sf_quantize,
    ("residual", True): residual_sf_quantize,
}
#: Draws that are uniform in [0, 1); the others are standard normal.
UNIFORM = ("dither", "donors")


def phase(spec: LayerSpec, c: int, train: bool) -> str:
    """The kind of call ``c``: ``"eval"``, ``"diveq"``, ``"sf"`` or ``"identity"``."""
    if not train:
        return "eval"
    if not spec.space_filling:
        return "diveq"
    if spec.skip_iters <= 1 or c >= spec.skip_iters:
        return "sf"
    return "diveq" if spec.composite else "identity"


class Rows(NamedTuple):
    """A call's rows: ``x`` ``(N, D)`` float64, ``valid`` ``(N,)``, and the shapes to restore."""

    x: v.F64
    valid: Any
    lead: tuple[int, ...]
    moved: tuple[int, ...]


def rows(spec: LayerSpec, z: Any, mask: Any) -> Rows:
    """Check the input and flatten it to rows; ``valid`` = finite and not masked out."""
    z = np.asarray(z)
    mask = None if mask is None else np.asarray(mask)
    lead = spec.check_input(z, mask)
    moved = np.moveaxis(z, spec.feature_axis, -1)
    x = moved.reshape(-1, spec.dim).astype(np.float64)
    valid = np.all(np.isfinite(x), axis=-1)
    if mask is not None:
        valid &= mask.reshape(-1)
    return Rows(x, valid, lead, moved.shape)


def draw_shapes(
    spec: LayerSpec, kind: str, n: int, *, replacing: bool
) -> dict[str, tuple[int, ...]]:
    """The draws a call of ``kind`` on ``n`` rows needs, in sampling order, with their shapes
    (``donors`` and ``perturbation`` only when it runs a replacement)."""
    m, k, w = spec.num_codebooks, spec.num_codes, spec.width
    single = not spec.composite
    shapes: dict[str, tuple[int, ...]] = {}
    if kind == "sf":
        shapes["dither"] = (k - 1,) if single else (m, k - 1)
    if kind in ("diveq", "sf") and spec.noise_std > 0:
        shapes["noise"] = (2, n, spec.dim) if kind == "sf" and single else (n, spec.dim)
    if replacing:
        shapes["donors"] = (k,) if single else (m, k)
        shapes["perturbation"] = (k, w) if single else (m, k, w)
    return shapes


def resolve_draws(shapes: dict[str, tuple[int, ...]], draws: Any, rng: Any, why: str) -> dict:
    """The needed draws: given ones checked (shape, dtype, finite, range), missing ones sampled
    from ``rng`` in the order of ``shapes``."""
    if draws is not None and not isinstance(draws, LayerDraws):
        raise TypeError(f"`draws` must be a LayerDraws or None; got {type(draws).__name__}")
    given = draws if draws is not None else LayerDraws()
    out, gen = {}, None
    for name, shape in shapes.items():
        draw = getattr(given, name)
        if draw is not None:
            out[name] = v.optional_draw(f"draws.{name}", draw, shape, unit_interval=name in UNIFORM)
            continue
        if rng is None:
            raise ValueError(f"this call needs `draws.{name}` of shape {shape}: {why}")
        gen = np.random.default_rng(rng) if gen is None else gen
        out[name] = gen.random(shape) if name in UNIFORM else gen.standard_normal(shape)
    return out


def _estimator_args(spec: LayerSpec, kind: str, valid: Any, d: dict) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"noise_std": spec.noise_std}
    noise = d.get("noise")
    if noise is not None:
        kwargs["noise"] = noise[:, valid] if noise.ndim == 3 else noise[valid]
    if kind == "sf":
        kwargs["dither"] = d["dither"]
    return kwargs


def _books(spec: LayerSpec, books: v.F64) -> v.F64:
    return books if spec.composite else books[0]


def estimate(
    spec: LayerSpec, kind: str, books: v.F64, r: Rows, d: dict
) -> tuple[v.F64, v.I64, v.F64]:
    """The estimator of ``kind`` on the valid rows: ``(values (n, D), idx (n, M), w (n, M))``."""
    xv = r.x[r.valid]
    n, m_books = xv.shape[0], spec.num_codebooks
    if kind == "identity":
        return xv, np.full((n, m_books), -1, dtype=np.int64), np.zeros((n, m_books))
    if kind == "eval":
        out = INFER[spec.layout, spec.space_filling](xv, _books(spec, books))
    else:
        fn = TRAIN[spec.layout, kind][0]
        out = fn(xv, _books(spec, books), **_estimator_args(spec, kind, r.valid, d))
    weights = getattr(out, "weights", np.zeros(out.indices.shape))
    return out.values, out.indices.reshape(n, m_books), weights.reshape(n, m_books)


def assemble(spec: LayerSpec, r: Rows, est: tuple[v.F64, v.I64, v.F64]) -> tuple:
    """``(values, indices, weights, perplexity)`` with the shapes of the call's input."""
    m_books = spec.num_codebooks
    values = r.x.copy()
    idx = np.full((r.x.shape[0], m_books), -1, dtype=np.int64)
    weights = np.zeros(idx.shape)
    values[r.valid], idx[r.valid], weights[r.valid] = est
    perp = np.mean([perplexity(idx[:, m], spec.num_codes) for m in range(m_books)])
    values = np.moveaxis(values.reshape(r.moved), -1, spec.feature_axis)
    lead = (*r.lead, m_books) if spec.composite else r.lead
    return values, idx.reshape(lead), weights.reshape(lead), np.asarray(perp)


def vjp_rows(
    spec: LayerSpec, books: v.F64, kind: str, r: Rows, g: v.F64, d: dict
) -> tuple[v.F64, v.F64]:
    """``(dz, dbooks)``: rows ``(N, D)`` and stacked ``(M, K, D')``; ``dz = g`` off the
    estimator (invalid rows, identity warm-up)."""
    dz, dbooks = g.copy(), np.zeros(books.shape)
    if kind == "identity":
        return dz, dbooks
    fn = TRAIN[spec.layout, kind][1]
    kwargs = _estimator_args(spec, kind, r.valid, d)
    dz[r.valid], db = fn(r.x[r.valid], _books(spec, books), g[r.valid], **kwargs)
    return dz, db.reshape(books.shape)


def decode(spec: LayerSpec, books: v.F64, indices: Any, weights: Any) -> v.F64:
    """Points of ``indices`` (and ``weights`` for SF layers); ``-1`` entries give zeros."""
    idx = v.integer_array("indices", indices)
    m_books, k, w = books.shape
    if spec.composite and (idx.ndim < 1 or idx.shape[-1] != m_books):
        raise ValueError(
            f"`indices` of a layer with M = {m_books} codebooks must have shape (..., {m_books}) "
            f"(a trailing axis of length M); got shape {idx.shape}"
        )
    if spec.space_filling and weights is None:
        raise ValueError(
            "`weights` are required to decode space-filling codes: an index names a segment "
            "and its weight the position on it (pass the `weights` returned with the indices)"
        )
    if not spec.space_filling and weights is not None:
        raise ValueError("`weights` are only for space-filling layers; got weights for DiVeQ")
    if idx.size and (idx.min() < -1 or idx.max() >= k):
        raise ValueError(
            f"`indices` must lie in [-1, {k}); got values in [{idx.min()}, {idx.max()}]"
        )
    lead = idx.shape[:-1] if spec.composite else idx.shape
    ir = idx.reshape(-1, m_books)
    if spec.space_filling:
        wa = np.asarray(weights)
        _checks.check_draw("weights", wa, idx.shape)
        wr = v.finite("weights", wa).reshape(-1, m_books)
    out = np.zeros((ir.shape[0], spec.dim))
    for m in range(m_books):
        used = ir[:, m] >= 0
        j = np.where(used, ir[:, m], 0)
        part = books[m][j]
        if spec.space_filling:
            # the point formula of sf_quantize: c_j + t (c_{j+1} - c_j), c_{j+1} itself at t = 1;
            # index K - 1 (a codeword of a composite warm-up call, weight 0) is c_{K-1}
            t, nxt = wr[:, m : m + 1], books[m][np.minimum(j + 1, k - 1)]
            part = np.where(t >= 1.0, nxt, part + t * (nxt - part))
        part = np.where(used[:, None], part, 0.0)
        if spec.layout == "product":
            out[:, m * w : (m + 1) * w] = part
        else:
            out = out + part
    return np.moveaxis(out.reshape(*lead, spec.dim), -1, spec.feature_axis)
