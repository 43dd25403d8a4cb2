"""The Gumbel-softmax quantiser beyond the conformance kit: its limits (hard mode, ``tau -> 0``,
no Gumbel noise), large inputs, bad temperatures, JAX under ``jit``, and the schedule helper.
(Backends vs the reference and the VJP vs finite differences run in ``test_conformance.py`` and
``test_reference_vjp.py``, which take every op of the table.)"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import diveq
import diveq.core as core
import diveq.reference as ref


def _inputs(seed: int = 0, n: int = 6, k: int = 5, d: int = 3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((k, d)), rng.gumbel(size=(n, k))


@pytest.fixture(scope="module", params=["core-numpy", "torch", "jax"])
def fw(request):
    """``(module, to-array, to-numpy)`` of an implementation."""
    if request.param == "core-numpy":
        return core, np.asarray, np.asarray
    if request.param == "torch":
        torch = pytest.importorskip("torch")
        import diveq.backends.torch as dq

        return dq, torch.as_tensor, lambda x: x.detach().numpy()
    jnp = pytest.importorskip("jax.numpy")
    import diveq.backends.jax as dq

    return dq, jnp.asarray, np.asarray


def test_hard_values_are_the_sampled_codewords(fw):
    mod, a, n = fw
    z, c, g = _inputs()
    out = mod.gumbel_softmax(a(z), a(c), tau=0.3, hard=True, gumbel=a(g))
    k = n(out.indices)
    np.testing.assert_array_equal(k, np.argmax(g - ((z[:, None] - c[None]) ** 2).sum(-1), 1))
    np.testing.assert_array_equal(n(out.values), c[k])  # exactly the codeword, not near it


def test_without_noise_the_sample_is_the_nearest_codeword(fw):
    mod, a, n = fw
    z, c, g = _inputs(1)
    out = mod.gumbel_softmax(a(z), a(c), hard=True, gumbel=a(np.zeros_like(g)))
    np.testing.assert_array_equal(n(out.indices), ref.nearest(z, c))
    np.testing.assert_array_equal(n(out.values), ref.quantize(z, c).values)


@pytest.mark.parametrize("seed", range(3))
def test_soft_values_tend_to_the_argmax_codeword_as_tau_falls(seed):
    z, c, g = _inputs(seed)
    want = ref.gumbel_softmax(z, c, hard=True, gumbel=g).values
    errors = [
        np.abs(ref.gumbel_softmax(z, c, tau=tau, gumbel=g).values - want).max()
        for tau in (1.0, 1e-1, 1e-2, 1e-3)
    ]
    assert errors[-1] < 1e-6 * np.abs(c).max()
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(errors))


def test_large_latents_give_no_nan(fw):
    """``||z||^2`` overflows float32 from ``|z| ~ 2e19``: the logits never form it."""
    mod, a, n = fw
    z, c, g = _inputs(2)
    for scale in (1e20, 1e30):
        zs = (z * scale).astype(np.float32)
        out = mod.gumbel_softmax(a(zs), a(c.astype(np.float32)), gumbel=a(g.astype(np.float32)))
        assert np.all(np.isfinite(n(out.values)))
        # one-hot on the nearest codeword (the noise is negligible next to the logits); the
        # reference's ||z - c||^2 cannot tell the codewords apart here, even in float64
        c64 = c.astype(np.float32).astype(np.float64)
        nearest = np.argmax(2 * zs.astype(np.float64) @ c64.T - (c64**2).sum(-1), axis=1)
        np.testing.assert_array_equal(n(out.indices), nearest)
        np.testing.assert_allclose(n(out.values), c[n(out.indices)], rtol=1e-6)


def test_large_latents_give_finite_gradients():
    torch = pytest.importorskip("torch")
    import diveq.backends.torch as dq

    z, c, g = _inputs(3)
    zt = torch.tensor(z * 1e20, dtype=torch.float32, requires_grad=True)
    ct = torch.tensor(c, dtype=torch.float32, requires_grad=True)
    for hard in (False, True):
        out = dq.gumbel_softmax(zt, ct, hard=hard, gumbel=torch.tensor(g, dtype=torch.float32))
        dz, dc = torch.autograd.grad(out.values.sum(), (zt, ct))
        assert torch.isfinite(dz).all() and torch.isfinite(dc).all()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_tau_is_a_value_error_naming_it(fw, bad):
    mod, a, _ = fw
    z, c, g = _inputs()
    with pytest.raises(ValueError, match="`tau`"):
        mod.gumbel_softmax(a(z), a(c), tau=bad, gumbel=a(g))
    with pytest.raises(ValueError, match="`tau`"):
        ref.gumbel_softmax(z, c, tau=bad, gumbel=g)
    with pytest.raises(ValueError, match="`tau`"):
        ref.gumbel_softmax_vjp(z, c, np.ones_like(z), tau=bad, gumbel=g)
    with pytest.raises(ValueError, match="`tau`"):
        ref.gumbel_softmax(z, c, tau=np.asarray(bad), gumbel=g)


def test_tau_and_hard_types():
    z, c, g = _inputs()
    with pytest.raises(TypeError, match="`tau`"):
        ref.gumbel_softmax(z, c, tau=True, gumbel=g)
    with pytest.raises(TypeError, match="`hard`"):
        core.gumbel_softmax(z, c, hard=1, gumbel=g)
    with pytest.raises(ValueError, match="`tau` must be a scalar"):
        core.gumbel_softmax(z, c, tau=np.ones(2), gumbel=g)


def test_reference_draws_and_requires_them_in_the_vjp():
    z, c, g = _inputs()
    a = ref.gumbel_softmax(z, c, rng=np.random.default_rng(4))
    b = ref.gumbel_softmax(z, c, gumbel=np.random.default_rng(4).gumbel(size=g.shape))
    np.testing.assert_array_equal(a.values, b.values)
    with pytest.raises(ValueError, match=r"`gumbel` .*required"):
        ref.gumbel_softmax_vjp(z, c, np.ones_like(z))
    with pytest.raises(ValueError, match=r"`gumbel` must be finite"):
        ref.gumbel_softmax(z, c, gumbel=np.full_like(g, np.inf))
    with pytest.raises(ValueError, match=r"`gumbel` .*required"):
        core.gumbel_softmax(z, c)


def test_torch_samples_gumbel_draws_from_the_generator():
    torch = pytest.importorskip("torch")
    import diveq.backends.torch as dq

    z, c, _ = _inputs()
    zt, ct = torch.tensor(z), torch.tensor(c)
    got = dq.gumbel_softmax(zt, ct, generator=torch.Generator().manual_seed(3))
    u = torch.rand((6, 5), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    want = dq.gumbel_softmax(zt, ct, gumbel=-torch.log(-torch.log(u)))
    assert torch.equal(got.values, want.values)


def test_jax_under_jit_traces_tau():
    jax = pytest.importorskip("jax")
    import diveq.backends.jax as dq

    z, c, g = (jax.numpy.asarray(x) for x in _inputs())
    traces = []

    @jax.jit
    def step(z, c, g, tau):
        traces.append(1)

        def loss(z, c):
            return (dq.gumbel_softmax(z, c, tau=tau, hard=True, gumbel=g).values ** 2).sum()

        return loss(z, c), jax.grad(loss, argnums=(0, 1))(z, c)

    for tau in (1.0, 0.7, 0.5):
        value, (dz, dc) = step(z, c, g, jax.numpy.asarray(tau))
        want = ref.gumbel_softmax(z, c, tau=tau, hard=True, gumbel=g)
        want_dz, want_dc = ref.gumbel_softmax_vjp(
            z, c, 2 * want.values, tau=tau, hard=True, gumbel=g
        )
        np.testing.assert_allclose(float(value), (want.values**2).sum(), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(dz), want_dz, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(dc), want_dc, rtol=1e-10, atol=1e-12)
    assert len(traces) == 1  # a new temperature is a new value, not a new program
    with pytest.raises(ValueError, match="`key` is required to sample `gumbel`"):
        dq.gumbel_softmax(z, c)


# ------------------------------------------------------------------ the temperature schedule


def test_temperature_schedule_of_jang_et_al():
    t = diveq.gumbel_temperature
    assert t(0) == 1.0
    assert t(1000, rate=1e-4) == pytest.approx(math.exp(-0.1))
    assert t(999, rate=1e-4, every=500) == pytest.approx(math.exp(-0.05))  # held at step 500
    assert t(10**6) == 0.5 and t(10**6, end=1 / 16) == pytest.approx(1 / 16)
    assert t(7, rate=0.0, start=2.0) == 2.0
    values = [t(s, rate=1e-3) for s in range(0, 2000, 100)]
    assert all(b <= a for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"step": -1}, ValueError, "step"),
        ({"step": 1.5}, TypeError, "step"),
        ({"step": 1, "every": 0}, ValueError, "every"),
        ({"step": 1, "rate": -1.0}, ValueError, "rate"),
        ({"step": 1, "end": 0.0}, ValueError, "end"),
        ({"step": 1, "start": float("nan")}, ValueError, "start"),
        ({"step": 1, "start": True}, TypeError, "start"),
    ],
)
def test_temperature_schedule_errors(kwargs, error, name):
    step = kwargs.pop("step")
    with pytest.raises(error, match=f"`{name}`"):
        diveq.gumbel_temperature(step, **kwargs)
