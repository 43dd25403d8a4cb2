"""The torch backend's native DiVeQ step (``diveq/backends/torch/_reparam.py``) against the
reference: values and gradients in float32 and float64 with explicit draws, rows on a codeword,
the deterministic variant, and norms at extreme magnitudes."""

from __future__ import annotations

import numpy as np
import pytest

import diveq.reference as ref

torch = pytest.importorskip("torch")
dq = pytest.importorskip("diveq.backends.torch")

from diveq.backends.torch._reparam import _unit_rows  # noqa: E402

RTOL = {torch.float32: 2e-5, torch.float64: 1e-12}


def _case(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    z, c = rng.standard_normal((6, 2, 5)) * scale, rng.standard_normal((4, 5)) * scale
    z[0, 0] = c[1]  # d = 0 for DiVeQ
    z[1, 1] = c[2]  # a vertex of SF-DiVeQ's segment, for some dither
    draws = {"noise": rng.standard_normal((2, *z.shape)), "dither": rng.random(3)}
    return {"z": z, "c": c, "g": rng.standard_normal(z.shape), **draws}


def _graph(fn: object, depth: int = 4) -> set[str]:
    """Names of the autograd nodes up to ``depth`` steps before ``fn``."""
    if fn is None or depth == 0:
        return set()
    names = {type(fn).__name__}
    for nxt, _ in fn.next_functions:  # type: ignore[attr-defined]
        names |= _graph(nxt, depth - 1)
    return names


def _run(name: str, case: dict[str, np.ndarray], dtype: torch.dtype, noise_std: float) -> tuple:
    draws = {"noise": case["noise"][0]} if name == "diveq" else dict(case)
    draws = {k: draws[k] for k in ("noise", "dither") if k in draws}
    if noise_std == 0:
        draws.pop("noise")
    if dtype == torch.float32:  # the reference sees the rounded inputs
        case = {k: v.astype(np.float32).astype(np.float64) for k, v in case.items()}
        draws = {k: v.astype(np.float32).astype(np.float64) for k, v in draws.items()}
    z = torch.tensor(case["z"], dtype=dtype, requires_grad=True)
    c = torch.tensor(case["c"], dtype=dtype, requires_grad=True)
    kw = {k: torch.tensor(v, dtype=dtype) for k, v in draws.items()}
    out = getattr(dq, name)(z, c, noise_std=noise_std, **kw)
    assert "_StepBackward" in _graph(out.values.grad_fn)  # the native path ran
    out.values.backward(torch.tensor(case["g"], dtype=dtype))
    want = getattr(ref, name)(case["z"], case["c"], noise_std=noise_std, **draws)
    dz, dc = getattr(ref, f"{name}_vjp")(
        case["z"], case["c"], case["g"], noise_std=noise_std, **draws
    )
    got = (out.values.detach(), z.grad, c.grad)
    return tuple(t.double().numpy() for t in got), (want.values, dz, dc), out.indices


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["diveq", "sf_diveq"])
@pytest.mark.parametrize("noise_std", [0.0, 0.3])
def test_values_and_gradients_match_the_reference(name, dtype, noise_std):
    case = _case(0)
    got, want, _ = _run(name, case, dtype, noise_std)
    for what, a, b in zip(("values", "dz", "dcodebook"), got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype] * 4, err_msg=what)


@pytest.mark.parametrize("name", ["diveq", "sf_diveq"])
@pytest.mark.parametrize("scale", [1e25, 1e36, 1e-8])
def test_float32_extreme_magnitudes_are_finite_and_match(name, scale):
    """Squares overflow (``1e25``, ``1e36``) or leave few digits (``1e-8``: ``||d||^2 ~ 1e-16``
    is fine, but the plain path is still checked) in float32; values and gradients stay exact."""
    case = _case(1, scale)
    got, want, _ = _run(name, case, torch.float32, 0.1 * scale)
    for what, a, b in zip(("values", "dz", "dcodebook"), got, want, strict=True):
        assert np.isfinite(a).all(), what
        peak = np.abs(b).max()
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * peak, err_msg=what)


@pytest.mark.parametrize("name", ["diveq", "sf_diveq"])
@pytest.mark.parametrize("scale", [1e-30, 1e-41, 3e37])
def test_float32_limits_give_finite_values_and_gradients(name, scale):
    case = _case(2, scale)
    z = torch.tensor(case["z"], dtype=torch.float32, requires_grad=True)
    c = torch.tensor(case["c"], dtype=torch.float32, requires_grad=True)
    kw = {"noise": torch.tensor(case["noise"][0] if name == "diveq" else case["noise"])}
    if name == "sf_diveq":
        kw["dither"] = torch.tensor(case["dither"])
    out = getattr(dq, name)(z, c, noise_std=0.1 * scale, **{k: v.float() for k, v in kw.items()})
    out.values.backward(torch.tensor(case["g"], dtype=torch.float32) * 1e30)
    for t in (out.values, z.grad, c.grad):
        assert torch.isfinite(t).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_unit_rows_are_safe_at_every_magnitude(dtype):
    info = torch.finfo(dtype)
    mags = [0.0, info.tiny * 2**-20, info.tiny, 1e-30, 1e-19, 1.0, 1e19, 1e30, info.max / 8]
    rng = np.random.default_rng(3)
    base = rng.standard_normal((len(mags), 7))
    rows = torch.tensor(base * np.array(mags)[:, None], dtype=torch.float64)
    v = rows.to(dtype)
    m = np.abs(v.double().numpy()).max(axis=1, keepdims=True)
    exact = m[:, 0] * np.linalg.norm(v.double().numpy() / np.where(m > 0, m, 1.0), axis=1)
    norms = _unit_rows(v)
    assert torch.isfinite(norms).all() and torch.isfinite(v).all()
    assert norms[0, 0] == 0 and torch.all(v[0] == 0)
    rtol = 8 * info.eps
    normal = exact >= info.tiny  # a subnormal norm has fewer digits itself
    np.testing.assert_allclose(norms[normal, 0].double().numpy(), exact[normal], rtol=rtol)
    length = torch.linalg.vector_norm(v[1:].double(), dim=-1)
    np.testing.assert_allclose(length.numpy(), 1.0, rtol=rtol)


@pytest.mark.parametrize("name", ["diveq", "sf_diveq"])
@pytest.mark.parametrize("noise_std", [0.0, 0.3, "tensor"])
def test_row_chunks_give_the_same_bits_as_one_pass(name, noise_std, monkeypatch):
    """Large CPU steps run in row chunks and recompute the units in the backward; forced onto
    tiny chunks (with a ragged last one) they equal the one-pass step bit for bit."""
    import diveq.backends.torch._reparam as step

    gen = torch.Generator().manual_seed(3)
    z = torch.randn(37, 2, 6, generator=gen, dtype=torch.float64)
    c = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    g = torch.randn(z.shape, generator=gen, dtype=torch.float64)
    z[3, 0] = c[2]  # d = 0 on one row
    std = torch.tensor(0.2, dtype=torch.float64) if noise_std == "tensor" else noise_std
    draws = {"noise": torch.randn((2, *z.shape) if name == "sf_diveq" else z.shape, generator=gen)}
    if name == "sf_diveq":
        draws["dither"] = torch.rand(4, generator=gen)
    if noise_std == 0.0:
        draws.pop("noise")
    runs = []
    for whole, chunk in ((1 << 21, 1 << 18), (0, 5 * 6)):  # one pass; chunks of 5 rows
        monkeypatch.setattr(step, "WHOLE_ELEMENTS", whole)
        monkeypatch.setattr(step, "CHUNK_ELEMENTS", chunk)
        zz, cc = z.clone().requires_grad_(True), c.clone().requires_grad_(True)
        out = getattr(dq, name)(zz, cc, noise_std=std, **draws)
        out.values.backward(g)
        runs.append((out.values.detach(), zz.grad, cc.grad))
    assert len(step._chunks(torch.empty(74, 6))) == 15
    for what, a, b in zip(("values", "dz", "dcodebook"), *runs, strict=True):
        assert torch.equal(a, b), what


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_unit_rows_without_a_rescue_give_the_same_bits(dtype):
    """With no row to rescue the second norm pass is skipped; the plain rows come out the same
    as when an overflowing and an underflowing row force both passes. A zero row, or one whose
    squares underflow to a norm of 0, is rescued: it gets 0 or its unit vector."""
    gen = torch.Generator().manual_seed(5)
    scales = 10.0 ** torch.linspace(-6, 12, 50, dtype=dtype)[:, None]  # none to rescue
    plain = torch.randn(50, 7, generator=gen, dtype=dtype) * scales
    info = torch.finfo(dtype)
    extreme = torch.tensor([[info.max / 2] * 7, [info.tiny**0.75] * 7], dtype=dtype)
    alone, mixed = plain.clone(), torch.cat([plain, extreme])
    n_alone, n_mixed = _unit_rows(alone), _unit_rows(mixed)
    assert torch.equal(alone, mixed[:50]) and torch.equal(n_alone, n_mixed[:50])
    assert torch.isfinite(mixed).all()
    edge = torch.tensor([[0.0, 0.0], [info.tiny**0.75, 0.0], [3.0, 4.0]], dtype=dtype)
    _unit_rows(edge)
    assert edge[0].tolist() == [0.0, 0.0] and edge[1, 1] == 0.0
    assert abs(float(edge[1, 0]) - 1.0) <= 2 * info.eps
