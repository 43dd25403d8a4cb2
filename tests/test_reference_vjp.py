"""Every reference VJP against central finite differences of its *frozen surrogate* (docs:
Semantics, how the gradients are checked).

The surrogate holds the discrete choices (``k``, ``i``, ``l``) and the stopped vectors (``u``,
``u1``, ``u2``, ``unit(xi)``, ``w``, ``zh``, ``ch``, ``s``) at their values for the base
inputs, so ``z, C -> values`` is smooth there. The surrogates below are written independently
of :mod:`diveq.reference`, from the formulas of the Semantics page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import diveq.reference as ref
from diveq._ops import OPS, Op

H = 1e-6  # finite-difference step
RTOL = 1e-6
MIN_R = 0.1  # keep every differentiated norm away from 0
GAP = 1e-6  # relative gap between best and second-best squared distance

Surrogate = Callable[[np.ndarray, np.ndarray], np.ndarray]


def unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def norm(v: np.ndarray) -> np.ndarray:
    return np.linalg.norm(v, axis=-1, keepdims=True)


def argmin_separated(x: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Brute-force nearest point per row; rejects the example on a near-tie."""
    dist = np.array([[np.sum((row - p) ** 2) for p in points] for row in x])
    if points.shape[0] > 1:
        best2 = np.sort(dist, axis=1)[:, :2]
        assume(np.all(best2[:, 1] - best2[:, 0] > GAP * np.maximum(best2[:, 1], 1e-300)))
    return np.argmin(dist, axis=1)


def dithered(c: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return (1 - lam)[:, None] * c[:-1] + lam[:, None] * c[1:]


# --- frozen surrogates: (z0, C0, s, xi, lam) -> f(z, C) ---------------------------------------


def frozen_diveq(z0, c0, s, xi, lam) -> Surrogate:
    k = argmin_separated(z0, c0)
    assume(np.all(norm(c0[k] - z0) > MIN_R))
    u0 = unit(c0[k] - z0 + s * xi)
    return lambda z, c: z + norm(c[k] - z) * u0


def frozen_sf_diveq(z0, c0, s, xi, lam) -> Surrogate:
    i = argmin_separated(z0, dithered(c0, lam))
    l = lam[i][:, None]  # noqa: E741 -- the paper's name
    assume(np.all(norm(c0[i] - z0) > MIN_R) and np.all(norm(c0[i + 1] - z0) > MIN_R))
    u1 = unit(c0[i] - z0 + s * xi[0])
    u2 = unit(c0[i + 1] - z0 + s * xi[1])
    return lambda z, c: z + (1 - l) * norm(c[i] - z) * u1 + l * norm(c[i + 1] - z) * u2


def _composite(z0, c0, s, xi, lam, *, product: bool, sf: bool) -> Surrogate:
    m_books, _, dm = c0.shape

    def part(c: np.ndarray, m: int, i: np.ndarray, w: np.ndarray) -> np.ndarray:
        return (1 - w) * c[m][i] + w * c[m][i + 1] if sf else c[m][i]

    picks = []  # per book: (index, weight l_m); the weight is unused for hard selection
    x = z0
    for m in range(m_books):
        target = z0[:, m * dm : (m + 1) * dm] if product else x
        if sf:
            i = argmin_separated(target, dithered(c0[m], lam[m]))
            w = lam[m][i][:, None]
        else:
            i, w = argmin_separated(target, c0[m]), None
        picks.append((i, w))
        if not product:
            x = x - part(c0, m, i, w)

    def q_of(c: np.ndarray) -> np.ndarray:
        parts = [part(c, m, i, w) for m, (i, w) in enumerate(picks)]
        return np.concatenate(parts, axis=1) if product else np.sum(parts, axis=0)

    q0 = q_of(c0)
    assume(np.all(norm(q0 - z0) > MIN_R))
    u0 = unit(q0 - z0 + s * xi)
    return lambda z, c: z + norm(q_of(c) - z) * u0


def frozen_ste(z0, c0, s, xi, lam) -> Surrogate:
    k = argmin_separated(z0, c0)
    shift = c0[k] - z0
    return lambda z, c: z + shift


def frozen_nsvq(z0, c0, s, xi, lam) -> Surrogate:
    k = argmin_separated(z0, c0)
    assume(np.all(norm(c0[k] - z0) > MIN_R))
    direction = unit(xi)
    return lambda z, c: z + norm(c[k] - z) * direction


def frozen_rotation(z0, c0, s, xi, lam) -> Surrogate:
    k = argmin_separated(z0, c0)
    zh, ch = unit(z0), unit(c0[k])
    w = unit(zh + ch)
    scale = norm(c0[k]) / np.maximum(norm(z0), 1e-12)

    def f(z: np.ndarray, c: np.ndarray) -> np.ndarray:
        dot = lambda a, b: np.sum(a * b, axis=-1, keepdims=True)  # noqa: E731
        return scale * (z - 2 * dot(z, w) * w + 2 * dot(z, zh) * ch)

    return f


def frozen_gumbel(z0, c0, s, xi, lam, *, gumbel, tau, hard) -> Surrogate:
    """Soft: smooth as it is. Hard: ``(onehot(k) + y(z, C) - y0) @ C`` (straight-through)."""

    def soft(z: np.ndarray, c: np.ndarray) -> np.ndarray:
        dist = np.sum((z[:, None, :] - c[None]) ** 2, axis=-1)
        a = (gumbel - dist) / tau
        e = np.exp(a - a.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    if not hard:
        return lambda z, c: soft(z, c) @ c
    dist0 = np.sum((z0[:, None, :] - c0[None]) ** 2, axis=-1)
    score = np.sort(gumbel - dist0, axis=1)
    if score.shape[1] > 1:
        assume(np.all(score[:, -1] - score[:, -2] > GAP * (1 + np.abs(score[:, -1]))))
    k = np.argmax(gumbel - dist0, axis=1)
    onehot, y0 = np.eye(c0.shape[0])[k], soft(z0, c0)
    return lambda z, c: (onehot + soft(z, c) - y0) @ c


@dataclass(frozen=True)
class Case:
    """An estimator of the table with its independently written frozen surrogate."""

    op: Op
    surrogate: Callable[..., Surrogate]

    @property
    def forward(self) -> Callable[..., Any]:
        return getattr(ref, self.op.name)

    @property
    def vjp(self) -> Callable[..., Any]:
        return getattr(ref, self.op.name + "_vjp")


def _composite_surrogate(op: Op) -> Callable[..., Surrogate]:
    product, sf = op.books == "product", op.space_filling
    return lambda *a: _composite(*a, product=product, sf=sf)


SURROGATES: dict[str, Callable[..., Surrogate]] = {
    "diveq": frozen_diveq,
    "sf_diveq": frozen_sf_diveq,
    "ste": frozen_ste,
    "nsvq": frozen_nsvq,
    "rotation_trick": frozen_rotation,
    "gumbel_softmax": frozen_gumbel,
}
CASES = {
    op.name: Case(op, SURROGATES[op.name] if op.books == "single" else _composite_surrogate(op))
    for op in OPS
    if op.train
}


def fd_grad(loss: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Central finite differences of a scalar function, entry by entry."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += H
        minus[idx] -= H
        grad[idx] = (loss(plus) - loss(minus)) / (2 * H)
    return grad


def assert_close_rel(actual: np.ndarray, expected: np.ndarray) -> None:
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    err = float(np.max(np.abs(actual - expected), initial=0.0))
    assert err <= RTOL * scale, f"max error {err:.3e} > {RTOL:.0e} * {scale:.3e}"


@st.composite
def problems(draw: Any, case: Case) -> dict[str, Any]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 4))
    op = case.op
    k = draw(st.integers(op.min_codes, 5))
    m = 1 if op.books == "single" else draw(st.integers(1, 3))
    d = m * draw(st.integers(1, 2)) if op.books == "product" else draw(st.integers(1, 4))
    shape = op.book_shape(m, k, d)
    z = rng.standard_normal((n, d))
    out: dict[str, Any] = {"z": z, "c": rng.standard_normal(shape)}
    out["g"] = rng.standard_normal(z.shape)
    out["s"] = draw(st.sampled_from([0.0, 1e-3, 0.5])) if op.noise_std else 0.0
    out["xi"] = rng.standard_normal(op.noise_shape(z.shape) or z.shape)
    lam_shape = op.dither_shape(shape)
    out["lam"] = None if lam_shape is None else rng.random(lam_shape)
    if op.gumbel:
        out["extra"] = {
            "gumbel": rng.gumbel(size=op.gumbel_shape(z.shape, shape)),
            "tau": draw(st.sampled_from([0.3, 1.0, 3.0])),
            "hard": draw(st.booleans()),
        }
    return out


def _options(case: Case, p: dict[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if case.op.noise_std:
        kw["noise_std"] = p["s"]
    if case.op.noise is not None:
        kw["noise"] = p["xi"]
    if case.op.dither:
        kw["dither"] = p["lam"]
    return {**kw, **p.get("extra", {})}


@pytest.mark.parametrize("name", list(CASES))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_vjp_matches_finite_differences_of_frozen_surrogate(name: str, data: st.DataObject):
    case = CASES[name]
    p = data.draw(problems(case))
    z0, c0, g = p["z"], p["c"], p["g"]
    f = case.surrogate(z0, c0, p["s"], p["xi"], p["lam"], **p.get("extra", {}))
    kw = _options(case, p)

    # the surrogate reproduces the forward pass at the base point
    np.testing.assert_allclose(case.forward(z0, c0, **kw).values, f(z0, c0), rtol=1e-12, atol=1e-12)

    dz, dc = case.vjp(z0, c0, g, **kw)
    assert dz.dtype == np.float64 and dc.dtype == np.float64
    assert dz.shape == z0.shape and dc.shape == c0.shape
    assert_close_rel(dz, fd_grad(lambda z: float(np.sum(g * f(z, c0))), z0))
    assert_close_rel(dc, fd_grad(lambda c: float(np.sum(g * f(z0, c))), c0))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 5),
    k=st.integers(1, 5),
    d=st.integers(1, 4),
    beta=st.sampled_from([0.0, 0.25, 1.5]),
)
def test_commitment_loss_vjp_matches_finite_differences(seed, n, k, d, beta):
    rng = np.random.default_rng(seed)
    z0, c0 = rng.standard_normal((n, d)), rng.standard_normal((k, d))
    idx = rng.integers(0, k, size=n)  # any assignment, not only the nearest
    cot = float(rng.standard_normal())

    def frozen(z: np.ndarray, c: np.ndarray) -> float:
        return cot * (np.mean((z0 - c[idx]) ** 2) + beta * np.mean((z - c0[idx]) ** 2))

    np.testing.assert_allclose(
        cot * ref.commitment_loss(z0, c0, idx, beta=beta), frozen(z0, c0), rtol=1e-12
    )
    dz, dc = ref.commitment_loss_vjp(z0, c0, idx, np.float64(cot), beta=beta)
    assert_close_rel(dz, fd_grad(lambda z: frozen(z, c0), z0))
    assert_close_rel(dc, fd_grad(lambda c: frozen(z0, c), c0))


@pytest.mark.parametrize("name", list(CASES))
def test_vjp_is_linear_in_the_cotangent(name: str):
    case = CASES[name]
    rng = np.random.default_rng(7)
    m, k, d = 2, 4, 4
    z, c = rng.standard_normal((3, 2, d)), rng.standard_normal(case.op.book_shape(m, k, d))
    lam_shape = case.op.dither_shape(c.shape)
    p = {
        "s": 0.1,
        "xi": rng.standard_normal(case.op.noise_shape(z.shape) or z.shape),
        "lam": None if lam_shape is None else rng.random(lam_shape),
    }
    if case.op.gumbel:
        gumbel = rng.gumbel(size=case.op.gumbel_shape(z.shape, c.shape))
        p["extra"] = {"gumbel": gumbel, "tau": 0.5, "hard": True}
    kw = _options(case, p)
    g1, g2 = rng.standard_normal(z.shape), rng.standard_normal(z.shape)
    a1, b1 = case.vjp(z, c, g1, **kw)
    a2, b2 = case.vjp(z, c, g2, **kw)
    a3, b3 = case.vjp(z, c, 2 * g1 - 3 * g2, **kw)
    np.testing.assert_allclose(a3, 2 * a1 - 3 * a2, atol=1e-12)
    np.testing.assert_allclose(b3, 2 * b1 - 3 * b2, atol=1e-12)
