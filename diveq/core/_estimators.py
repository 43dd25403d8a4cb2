"""DiVeQ and SF-DiVeQ on one codebook, given explicit draws."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diveq._checks import check_codebook, check_noise_std
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
    safe_norm,
    unit,
    unrows,
    work_dtype,
)
from diveq.core._search import nearest_rows

__all__ = ["diveq", "reparam", "reparam_offset", "sf_diveq"]


def reparam_offset(
    xp: Any, z: Array, q: Array, noise_std: Any, noise: Array | None, sg: StopGradient
) -> Array:
    """``||q - z|| sg(unit(q - z + s xi))`` row-wise: the DiVeQ error vector.

    Its length carries the gradient of the distance; its direction is a constant. ``noise=None``
    means the deterministic direction ``unit(q - z)``.
    """
    d = q - z
    d_fixed = sg(d)
    if noise is not None:
        d_fixed = d_fixed + noise_std * noise
    return safe_norm(xp, d, sg) * sg(unit(xp, d_fixed))


def reparam(
    xp: Any,
    z: Array,
    vertices: Sequence[Array],
    lam: Array | None,
    noise_std: Any,
    noises: Sequence[Array | None],
    sg: StopGradient,
) -> Array:
    """The quantised rows: ``z + e(q)`` for one vertex (DiVeQ, ``lam=None``), or
    ``z + (1 - l) e(q_1) + l e(q_2)`` for the two vertices of an SF-DiVeQ segment (``lam``: the
    rows' ``l``, shape ``(N, 1)``, a constant), ``e`` being :func:`reparam_offset` with the
    vertex's draw.

    A backend may bring a native version (a fused kernel with a hand-written backward): the
    binding hands the core a :class:`~diveq.core._common.Native` stop-gradient, whose
    ``reparam`` then replaces these formulas.
    """
    native = getattr(sg, "reparam", None)
    if native is not None:
        return native(z, vertices, lam, noise_std, noises)
    steps = [
        reparam_offset(xp, z, q, noise_std, xi, sg) for q, xi in zip(vertices, noises, strict=True)
    ]
    if lam is None:
        return z + steps[0]
    return z + (1.0 - lam) * steps[0] + lam * steps[1]


def dithered_points(xp: Any, codebook: Array, lam: Array) -> Array:
    """``p_j = (1 - lam_j) c_j + lam_j c_{j+1}`` for ``j = 0 .. K-2``."""
    lam = lam[:, None]
    return (1.0 - lam) * codebook[:-1, ...] + lam * codebook[1:, ...]


def diveq(
    z: Array,
    codebook: Array,
    *,
    noise_std: Any = 1e-3,
    noise: Array | None = None,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> Quantized:
    """DiVeQ with an explicit standard-normal draw ``noise`` (shape ``z.shape``).

    ``noise`` may be omitted only when ``noise_std == 0``. ``stop_gradient`` is the
    namespace's stop-gradient (identity for NumPy). Semantics: :func:`diveq.reference.diveq`.
    """
    check_codebook(z, codebook)
    check_noise_std(noise_std)
    noise = need_draw("noise", noise, noise_std, tuple(z.shape), z)
    xp = namespace(z, codebook, noise)
    dt = work_dtype(xp, z, codebook)
    zr, cb = cast(xp, rows(xp, z), dt), cast(xp, codebook, dt)
    xi = None if noise is None else cast(xp, rows(xp, noise), dt)
    sg = stop_gradient
    k = nearest_rows(xp, sg(zr), sg(cb), chunk_size)
    values = reparam(xp, zr, [xp.take(cb, k, axis=0)], None, noise_std, [xi], sg)
    lead = z.shape[:-1]
    return Quantized(unrows(xp, cast(xp, values, z.dtype), lead), unrows(xp, k, lead))


def sf_diveq(
    z: Array,
    codebook: Array,
    *,
    noise_std: Any = 1e-3,
    dither: Array | None = None,
    noise: Array | None = None,
    stop_gradient: StopGradient = identity,
    chunk_size: int | None = None,
) -> SFQuantized:
    """SF-DiVeQ with explicit draws: ``dither`` ``(K-1,)`` in ``[0, 1)``, ``noise``
    ``(2, *z.shape)``. Semantics: :func:`diveq.reference.sf_diveq`."""
    check_codebook(z, codebook, min_codes=2)
    check_noise_std(noise_std)
    lam = need_dither(dither, (int(codebook.shape[0]) - 1,), z)
    noise = need_draw("noise", noise, noise_std, (2, *z.shape), z)
    xp = namespace(z, codebook, lam, noise)
    dt = work_dtype(xp, z, codebook)
    zr, cb, lam = cast(xp, rows(xp, z), dt), cast(xp, codebook, dt), cast(xp, lam, dt)
    sg = stop_gradient
    i = nearest_rows(xp, sg(zr), dithered_points(xp, sg(cb), lam), chunk_size)
    l = xp.take(lam, i, axis=0)[:, None]  # noqa: E741 (the paper's name)
    xi = [None, None] if noise is None else [cast(xp, rows(xp, noise[j, ...]), dt) for j in (0, 1)]
    # Each vertex of the chosen segment gets its own error vector, weighted by the dither.
    vertices = [xp.take(cb, i, axis=0), xp.take(cb, i + 1, axis=0)]
    values = reparam(xp, zr, vertices, l, noise_std, xi, sg)
    lead = z.shape[:-1]
    return SFQuantized(
        unrows(xp, cast(xp, values, z.dtype), lead),
        unrows(xp, i, lead),
        unrows(xp, cast(xp, l[:, 0], z.dtype), lead),
    )
