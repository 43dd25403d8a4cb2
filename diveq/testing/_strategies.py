"""Hypothesis strategies: well-separated inputs plus explicit draws and cotangents.

Inputs are generated once in NumPy float64 (rounded to the dtype under test, so the reference
sees exactly the numbers the backend sees) and converted per backend by an adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from diveq._ops import Op

__all__ = ["Case", "cases", "separation_tolerance"]


@dataclass
class Case:
    """One generated input for ``op``: latents, codebook(s), draws and a cotangent."""

    op: Op
    z: np.ndarray
    books: np.ndarray
    cotangent: np.ndarray
    noise_std: float = 0.0
    noise: np.ndarray | None = None
    dither: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    gumbel: np.ndarray | None = None
    tau: float = 1.0
    hard: bool = False

    def draws(self) -> dict[str, Any]:
        """The op's keyword arguments: ``noise_std``, ``noise``, ``dither`` (and ``tau``,
        ``hard``, ``gumbel`` for the Gumbel-softmax), arrays as NumPy arrays."""
        kw: dict[str, Any] = {}
        if self.op.gumbel:  # tau as an array: compiled backends trace it (no recompiles)
            kw.update(tau=np.asarray(self.tau), hard=self.hard, gumbel=self.gumbel)
        if self.op.noise_std:
            kw["noise_std"] = self.noise_std
        if self.op.noise is not None:
            kw["noise"] = self.noise
        if self.op.dither:
            kw["dither"] = self.dither
        return kw


def separation_tolerance(dtype: str) -> float:
    """Relative gap between best and second-best squared distance that counts as no tie."""
    return 1e-6 if dtype == "float64" else 1e-3


def _round(x: np.ndarray, dtype: str) -> np.ndarray:
    return np.asarray(x, dtype=dtype).astype(np.float64)


@st.composite
def cases(
    draw: Any,
    op: Op,
    dtype: str = "float64",
    rows: tuple[int, int] = (1, 12),
    few_shapes: bool = False,
) -> Case:
    """Strategy for one :class:`Case` of ``op`` in ``dtype`` with 1-2 leading axes.

    ``few_shapes`` draws the shapes from a small fixed set (values stay random), for
    implementations that compile per shape.
    """
    if few_shapes:
        lead = draw(st.sampled_from([(5,), (2, 3)]))
        m = 1 if op.books == "single" else draw(st.sampled_from([1, 2]))
        k = draw(st.sampled_from([op.min_codes, 6]))
        width = draw(st.sampled_from([1, 3]))
        d = m * width if op.books == "product" else draw(st.sampled_from([1, 4]))
    else:
        axes = draw(st.integers(1, 2))
        lead = tuple(draw(st.lists(st.integers(1, 4), min_size=axes, max_size=axes)))
        if int(np.prod(lead)) > rows[1]:
            lead = (draw(st.integers(*rows)),)
        m = 1 if op.books == "single" else draw(st.integers(1, 3))
        k = draw(st.integers(op.min_codes, 8))
        width = draw(st.integers(1, 4))
        d = m * width if op.books == "product" else draw(st.integers(1, 6))
    scale = draw(st.sampled_from([1.0, 1.0, 0.05, 20.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    z = rng.standard_normal((*lead, d)) * scale
    books = rng.standard_normal(op.book_shape(m, k, d)) * scale
    if op.books == "residual":  # later stages refine: smaller codewords
        books = books * (0.5 ** np.arange(m))[:, None, None]
    case = Case(
        op, _round(z, dtype), _round(books, dtype), _round(rng.standard_normal(z.shape), dtype)
    )
    if op.noise_std:
        case.noise_std = draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0]))
    noise_shape, dither_shape = op.noise_shape(z.shape), op.dither_shape(books.shape)
    if noise_shape is not None:
        case.noise = _round(rng.standard_normal(noise_shape), dtype)
    if dither_shape is not None:
        case.dither = _round(rng.random(dither_shape), dtype)
    if op.gumbel:  # a temperature on the logits' scale, so the sample is soft at every scale
        case.gumbel = _round(rng.gumbel(size=op.gumbel_shape(z.shape, books.shape)), dtype)
        case.tau = float(_round(draw(st.sampled_from([0.2, 1.0, 5.0])) * scale**2, dtype))
        # compiled backends: one `hard` per shape (both occur), so one compilation per shape
        case.hard = lead == (5,) if few_shapes else draw(st.booleans())
    assume(separated(case, separation_tolerance(dtype)))
    return case


def _sq(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return ((x[:, None, :] - p[None, :, :]) ** 2).sum(-1)


def _segment_sq(x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, e = c[:-1], c[1:] - c[:-1]
    ee = (e * e).sum(-1)
    num = ((x[:, None, :] - a[None]) * e[None]).sum(-1)
    t = np.where(ee > 0, np.clip(num / np.where(ee > 0, ee, 1), 0, 1), 0)
    pts = np.where(t[..., None] >= 1, c[1:][None], a[None] + t[..., None] * e[None])
    return ((x[:, None, :] - pts) ** 2).sum(-1), pts, t


def _stage(op: Op, x: np.ndarray, c: np.ndarray, lam: np.ndarray | None, tol: float):
    """Check one search; return the selected point per row (or None when too close to call)."""
    if op.space_filling and lam is not None:
        pts = (1 - lam[:, None]) * c[:-1] + lam[:, None] * c[1:]
        dist = _sq(x, pts)
        i = dist.argmin(-1)
        l = lam[i][:, None]  # noqa: E741
        chosen = (1 - l) * c[i] + l * c[i + 1]
        vertices = [c[i], c[i + 1]]
        pool = pts
    elif op.space_filling:
        dist, proj, t = _segment_sq(x, c)
        chosen = proj[np.arange(len(x)), dist.argmin(-1)]
        # A vertex shared by two segments is one candidate point, not a tie: compare the
        # distinct candidates (vertices and interior projections) only.
        interior = np.where((t > 0) & (t < 1), dist, np.inf)
        dist = np.concatenate([_sq(x, c), interior], axis=-1)
        vertices, pool = [], c
    else:
        dist = _sq(x, c)
        chosen = c[dist.argmin(-1)]
        vertices, pool = [chosen], c
    scale = (x * x).sum(-1) + (pool * pool).sum(-1).max() + 1e-30
    if dist.shape[1] >= 2:
        best2 = np.sort(dist, axis=-1)[:, :2]
        if np.any(best2[:, 1] - best2[:, 0] <= tol * scale):
            return None
    for v in vertices:  # the error direction unit(c - z) must be well conditioned
        if np.any(((v - x) ** 2).sum(-1) <= tol * scale):
            return None
    return chosen


def _antiparallel(x: np.ndarray, c: np.ndarray, tol: float) -> bool:
    """Near-antiparallel ``z`` and ``c_k``: ``w = unit(zh + ch)`` is ill-conditioned there."""
    ck = c[_sq(x, c).argmin(-1)]
    norms = np.linalg.norm(x, axis=-1) * np.linalg.norm(ck, axis=-1) + 1e-300
    return bool(np.any((x * ck).sum(-1) / norms <= -1 + tol))


def _gumbel_separated(x: np.ndarray, c: np.ndarray, g: np.ndarray, tol: float) -> bool:
    """No near-tie in ``argmax(l + g)`` (the sampled code) nor in ``argmin`` (inference)."""
    dist = _sq(x, c)
    scale = (x * x).sum(-1) + (c * c).sum(-1).max() + np.abs(g).max(initial=0.0) + 1e-30
    for score in (g - dist, -dist):
        if score.shape[1] >= 2:
            best2 = -np.sort(-score, axis=-1)[:, :2]
            if np.any(best2[:, 0] - best2[:, 1] <= tol * scale):
                return False
    return True


def separated(case: Case, tol: float) -> bool:
    """Whether every search of ``case`` is free of near-ties."""
    op = case.op
    x = case.z.reshape(-1, case.z.shape[-1])
    if x.shape[0] == 0:
        return True
    if op.gumbel and case.gumbel is not None:
        return _gumbel_separated(x, case.books, case.gumbel.reshape(len(x), -1), tol)
    if op.books == "single":
        lam = case.dither if op.dither else None
        if op.name == "rotation_trick" and _antiparallel(x, case.books, tol):
            return False
        return _stage(op, x, case.books, lam, tol) is not None
    z, width, parts = x, case.books.shape[-1], []
    for m in range(case.books.shape[0]):
        lam = case.dither[m] if case.dither is not None else None
        xm = x[:, m * width : (m + 1) * width] if op.books == "product" else x
        q = _stage(op, xm, case.books[m], lam, tol)
        if q is None:
            return False
        parts.append(q)
        if op.books == "residual":
            x = x - q
    q = np.concatenate(parts, -1) if op.books == "product" else np.sum(parts, axis=0)
    # the final DiVeQ step needs a well-conditioned direction unit(q - z)
    scale = (z * z).sum(-1) + (q * q).sum(-1) + 1e-30
    return not (op.train and np.any(((q - z) ** 2).sum(-1) <= tol * scale))
