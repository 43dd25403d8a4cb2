"""Product and residual composites of DiVeQ / SF-DiVeQ, and their hard inference.

Every composite is one loop over the ``M`` codebooks: each block (product) or stage (residual)
selects a codeword or a point on a segment, the selections form ``q``, and -- in training -- one
DiVeQ step moves ``z`` towards ``q``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from diveq._checks import check_codebooks, check_noise_std
from diveq._types import Quantized, SFQuantized
from diveq.core._common import (
    Array,
    StopGradient,
    cast,
    identity,
    namespace,
    need_dither,
    need_draw,
    rows,
    unrows,
    work_dtype,
)
from diveq.core._estimators import dithered_points, reparam
from diveq.core._search import nearest_rows, project_rows, segment_point

__all__ = [
    "product_diveq",
    "product_quantize",
    "product_sf_diveq",
    "product_sf_quantize",
    "residual_diveq",
    "residual_quantize",
    "residual_sf_diveq",
    "residual_sf_quantize",
]

# select(x_m, C_m, m) -> (index, weight or None, q_m); x_m carries no gradient, q_m does.
Select = Callable[[Array, Array, int], "tuple[Array, Array | None, Array]"]


def _run(
    xp: Any, zr: Array, cbs: Array, product: bool, select: Select, sg: StopGradient
) -> tuple[Array, list[Array | None], Array]:
    m_books = cbs.shape[0]
    width = cbs.shape[-1]
    x = sg(zr)
    picks, weights, parts = [], [], []
    for m in range(m_books):
        xm = x[:, m * width : (m + 1) * width] if product else x
        idx, w, qm = select(xm, cbs[m, ...], m)
        picks.append(idx)
        weights.append(w)
        parts.append(qm)
        if not product:
            x = x - sg(qm)
    q = xp.concat(parts, axis=-1) if product else _sum(parts)
    return xp.stack(picks, axis=-1), weights, q


def _sum(parts: list[Array]) -> Array:
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def _hard(xp: Any, sg: StopGradient, chunk: int | None) -> Select:
    def select(x: Array, c: Array, m: int) -> tuple[Array, None, Array]:
        k = nearest_rows(xp, x, sg(c), chunk)
        return k, None, xp.take(c, k, axis=0)

    return select


def _exact(xp: Any, sg: StopGradient, chunk: int | None) -> Select:
    def select(x: Array, c: Array, m: int) -> tuple[Array, Array, Array]:
        i, t = project_rows(xp, x, sg(c), chunk)
        return i, t, segment_point(xp, c, i, t)

    return select


def _dithered(xp: Any, lam: Array, sg: StopGradient, chunk: int | None) -> Select:
    def select(x: Array, c: Array, m: int) -> tuple[Array, Array, Array]:
        i = nearest_rows(xp, x, dithered_points(xp, sg(c), lam[m, ...]), chunk)
        l = xp.take(lam[m, ...], i, axis=0)[:, None]  # noqa: E741
        return i, l[:, 0], (1.0 - l) * xp.take(c, i, axis=0) + l * xp.take(c, i + 1, axis=0)

    return select


def _train(
    z: Array,
    codebooks: Array,
    *,
    product: bool,
    space_filling: bool,
    noise_std: Any,
    noise: Array | None,
    dither: Array | None,
    stop_gradient: StopGradient,
    chunk_size: int | None,
) -> Any:
    check_codebooks(z, codebooks, product=product, min_codes=2 if space_filling else 1)
    check_noise_std(noise_std)
    m_books, k = int(codebooks.shape[0]), int(codebooks.shape[1])
    lam = need_dither(dither, (m_books, k - 1), z) if space_filling else None
    noise = need_draw("noise", noise, noise_std, tuple(z.shape), z)
    xp = namespace(z, codebooks, lam, noise)
    dt = work_dtype(xp, z, codebooks)
    zr, cbs = cast(xp, rows(xp, z), dt), cast(xp, codebooks, dt)
    sg = stop_gradient
    if lam is not None:
        select = _dithered(xp, cast(xp, lam, dt), sg, chunk_size)
    else:
        select = _hard(xp, sg, chunk_size)
    idx, weights, q = _run(xp, zr, cbs, product, select, sg)
    xi = None if noise is None else cast(xp, rows(xp, noise), dt)
    values = reparam(xp, zr, [q], None, noise_std, [xi], sg)
    return _result(xp, z, values, idx, weights if space_filling else None)


def _result(xp: Any, z: Array, values: Array, idx: Array, weights: list[Array] | None) -> Any:
    lead = z.shape[:-1]
    values = unrows(xp, cast(xp, values, z.dtype), lead)
    idx = unrows(xp, idx, lead)
    if weights is None:
        return Quantized(values, idx)
    w = cast(xp, xp.stack(weights, axis=-1), z.dtype)
    return SFQuantized(values, idx, unrows(xp, w, lead))


def _infer(
    z: Array,
    codebooks: Array,
    *,
    product: bool,
    space_filling: bool,
    stop_gradient: StopGradient,
    chunk_size: int | None,
) -> Any:
    check_codebooks(z, codebooks, product=product, min_codes=2 if space_filling else 1)
    xp = namespace(z, codebooks)
    dt = work_dtype(xp, z, codebooks)
    zr, cbs = cast(xp, rows(xp, z), dt), cast(xp, codebooks, dt)
    sg = stop_gradient
    select = _exact(xp, sg, chunk_size) if space_filling else _hard(xp, sg, chunk_size)
    idx, weights, q = _run(xp, zr, cbs, product, select, sg)
    return _result(xp, z, q, idx, weights if space_filling else None)


def product_diveq(
    z: Array,
    codebooks: Array,
    *,
    noise_std: Any = 1e-3,
    noise: Array | None = None,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> Quantized:
    """Product DiVeQ with an explicit ``noise`` draw (shape ``z.shape``).

    Semantics: :func:`diveq.reference.product_diveq`.
    """
    return _train(
        z,
        codebooks,
        product=True,
        space_filling=False,
        noise_std=noise_std,
        noise=noise,
        dither=None,
        stop_gradient=stop_gradient,
        chunk_size=chunk_size,
    )


def residual_diveq(
    z: Array,
    codebooks: Array,
    *,
    noise_std: Any = 1e-3,
    noise: Array | None = None,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> Quantized:
    """Residual DiVeQ with an explicit ``noise`` draw (shape ``z.shape``).

    Semantics: :func:`diveq.reference.residual_diveq`.
    """
    return _train(
        z,
        codebooks,
        product=False,
        space_filling=False,
        noise_std=noise_std,
        noise=noise,
        dither=None,
        stop_gradient=stop_gradient,
        chunk_size=chunk_size,
    )


def product_sf_diveq(
    z: Array,
    codebooks: Array,
    *,
    noise_std: Any = 1e-3,
    dither: Array | None = None,
    noise: Array | None = None,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> SFQuantized:
    """Product SF-DiVeQ with explicit draws: ``dither`` ``(M, K-1)``, ``noise`` ``z.shape``.

    Semantics: :func:`diveq.reference.product_sf_diveq`.
    """
    return _train(
        z,
        codebooks,
        product=True,
        space_filling=True,
        noise_std=noise_std,
        noise=noise,
        dither=dither,
        stop_gradient=stop_gradient,
        chunk_size=chunk_size,
    )


def residual_sf_diveq(
    z: Array,
    codebooks: Array,
    *,
    noise_std: Any = 1e-3,
    dither: Array | None = None,
    noise: Array | None = None,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> SFQuantized:
    """Residual SF-DiVeQ with explicit draws: ``dither`` ``(M, K-1)``, ``noise`` ``z.shape``.

    Semantics: :func:`diveq.reference.residual_sf_diveq`.
    """
    return _train(
        z,
        codebooks,
        product=False,
        space_filling=True,
        noise_std=noise_std,
        noise=noise,
        dither=dither,
        stop_gradient=stop_gradient,
        chunk_size=chunk_size,
    )


def product_quantize(
    z: Array,
    codebooks: Array,
    *,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> Quantized:
    """Hard product quantisation; see :func:`diveq.reference.product_quantize`."""
    return _infer(
        z,
        codebooks,
        product=True,
        space_filling=False,
        stop_gradient=stop_gradient,
        chunk_size=chunk_size,
    )


def residual_quantize(
    z: Array,
    codebooks: Array,
    *,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> Quantized:
    """Hard residual quantisation; see :func:`diveq.reference.residual_quantize`."""
    return _infer(
        z,
        codebooks,
        product=False,
        space_filling=False,
        stop_gradient=stop_gradient,
        chunk_size=chunk_size,
    )


def product_sf_quantize(
    z: Array,
    codebooks: Array,
    *,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> SFQuantized:
    """Exact per-block polyline projection; see :func:`diveq.reference.product_sf_quantize`."""
    return _infer(
        z,
        codebooks,
        product=True,
        space_filling=True,
        stop_gradient=stop_gradient,
        chunk_size=chunk_size,
    )


def residual_sf_quantize(
    z: Array,
    codebooks: Array,
    *,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> SFQuantized:
    """Exact per-stage polyline projection; see :func:`diveq.reference.residual_sf_quantize`."""
    return _infer(
        z,
        codebooks,
        product=False,
        space_filling=True,
        stop_gradient=stop_gradient,
        chunk_size=chunk_size,
    )
