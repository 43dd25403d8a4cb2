"""The Gumbel-softmax layers (torch, JAX eager and jitted) against the reference layer, call by
call with identical draws: masks, NaN and inf rows, a feature axis other than the last, eval
calls in between; plus their options, the temperature and sampling without explicit draws."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

import diveq.reference as ref
from diveq import GumbelState, LayerDraws
from diveq.testing._layer_drivers import ReferenceLayerDriver

K, D = 5, 3
KINDS = {
    "soft": {"tau": 0.7},
    "hard-axis1": {"tau": 0.4, "hard": True, "feature_axis": 1},
}


def _z(options: dict, rng: np.random.Generator, call: int) -> tuple[np.ndarray, ...]:
    axis1 = options.get("feature_axis") == 1
    z = rng.standard_normal((2, D, 4) if axis1 else (8, D))
    lead = (2, 4) if axis1 else (8,)
    bad = np.zeros(lead, dtype=bool)
    if call == 2:  # NaN and inf rows
        bad.flat[[1, 6]] = True
        zm = np.moveaxis(z, 1, -1) if axis1 else z
        zm[bad] = np.array([np.nan, 1.0, np.inf])
    mask = None if call != 3 else rng.random(lead) > 0.3
    draws = LayerDraws(gumbel=rng.gumbel(size=(8, K)))
    return z, mask, draws, rng.standard_normal(z.shape)


def _compare(what: str, got, want, rtol=1e-10):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if want.dtype.kind in "iub":
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("kind", list(KINDS))
def test_layer_matches_the_reference_layer(layer, kind):
    options = KINDS[kind]
    rng = np.random.default_rng(0)
    codebook = rng.standard_normal((K, D))
    base = ReferenceLayerDriver()
    mine, want = (
        layer.build("GumbelVQ", (K, D), options, codebook),
        base.build("GumbelVQ", (K, D), options, codebook),
    )
    for call in (1, 2, 3):
        z, mask, draws, cot = _z(options, rng, call)
        for train in (True, False):  # an eval call after each train call
            (out, grads), (ref_out, ref_grads) = (
                layer.call(mine, z, mask, draws, train, cot),
                base.call(want, z, mask, draws, train, cot),
            )
            where = f"{layer.name} {kind} call {call} train={train}"
            for name in ref_out:
                tol = 1e-6 if name == "perplexity" else 1e-10
                _compare(f"{where} {name}", out[name], ref_out[name], tol)
            if train:
                _compare(f"{where} dz", grads[0], ref_grads[0])
                _compare(f"{where} dcodebook", grads[1], ref_grads[1])
            else:
                assert grads is None
            # masked and non-finite rows: index -1, the input passed through
            zm = np.moveaxis(z, options.get("feature_axis", -1), -1)
            invalid = ~np.isfinite(zm).all(-1) | (False if mask is None else ~mask)
            assert invalid.any() == (call > 1)
            assert np.all(out["indices"][invalid] == -1) and np.all(out["indices"][~invalid] >= 0)
            values = np.moveaxis(out["values"], options.get("feature_axis", -1), -1)
            np.testing.assert_array_equal(values[invalid], zm[invalid])
    # no call changed the codebook (the optimiser trains it)
    books = mine[0].codebook.detach().numpy() if layer.name == "torch" else mine[1].codebook
    np.testing.assert_array_equal(np.asarray(books), codebook)


def test_layer_samples_its_own_draws(layer):
    handle = layer.build("GumbelVQ", (K, D), {"tau": 0.5}, np.eye(K, D), seed=3)
    z = np.random.default_rng(1).standard_normal((7, D))
    out, _ = layer.call(handle, z, None, None, True, None)
    assert np.all(np.isfinite(out["values"])) and out["values"].shape == z.shape
    assert out["indices"].min() >= 0 and out["indices"].max() < K
    again = layer.build("GumbelVQ", (K, D), {"tau": 0.5}, np.eye(K, D), seed=3)
    second, _ = layer.call(again, z, None, None, True, None)
    np.testing.assert_array_equal(second["values"], out["values"])


def test_reference_layer_state_and_options():
    vq = ref.GumbelVQ(K, D, tau=0.5)
    state = vq.init(rng=np.random.default_rng(0))
    assert isinstance(state, GumbelState) and state.codebook.shape == (K, D)
    assert np.all(np.abs(state.codebook) < 1 / K)
    z = np.random.default_rng(1).standard_normal((6, D))
    out, new = vq.apply(state, z, train=False)
    assert new is state
    np.testing.assert_array_equal(out.indices, ref.nearest(z, state.codebook))
    with pytest.raises(ValueError, match="`tau`"):
        ref.GumbelVQ(K, D, tau=0.0)
    with pytest.raises(TypeError, match="`hard`"):
        ref.GumbelVQ(K, D, hard="yes")
    with pytest.raises(ValueError, match="`num_codes`"):
        ref.GumbelVQ(0, D)
    with pytest.raises(ValueError, match="feature size mismatch"):
        vq.apply(state, np.ones((2, D + 1)))


def test_torch_layer_tau_is_settable_and_checked():
    torch = pytest.importorskip("torch")
    import diveq
    import diveq.backends.torch as dq

    vq = dq.GumbelVQ(K, D, tau=1.0, dtype=torch.float64)
    z = torch.randn(6, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    g = torch.zeros(6, K, dtype=torch.float64)
    soft = vq(z, draws=LayerDraws(gumbel=g)).values
    vq.tau = diveq.gumbel_temperature(10**6, end=1e-4)
    sharp = vq(z, draws=LayerDraws(gumbel=g)).values
    nearest = vq.codebook[dq.nearest(z, vq.codebook)]
    assert (sharp - nearest).abs().max() < (soft - nearest).abs().max()
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="`tau`"):
            vq.tau = bad
    with pytest.raises(ValueError, match="`tau`"):
        dq.GumbelVQ(K, D, tau=float("inf"))
    assert "tau=0.0001" in repr(vq)
    state = {k: v.clone() for k, v in vq.state_dict().items()}
    vq.eval()
    vq(z)
    assert all(torch.equal(state[k], v) for k, v in vq.state_dict().items())


def test_jax_layer_anneals_tau_without_recompiling():
    jax = pytest.importorskip("jax")
    import diveq
    import diveq.backends.jax as dq

    vq = dq.GumbelVQ(K, D, hard=True, dtype=jax.numpy.float64)
    state = vq.init(jax.random.key(0))
    z = jax.random.normal(jax.random.key(1), (6, D), dtype=jax.numpy.float64)
    traces = []

    @jax.jit
    def step(state, z, key, tau):
        traces.append(1)

        def loss(books):
            out, _ = vq.apply(GumbelState(books), z, key=key, tau=tau)
            return ((out.values - z) ** 2).sum()

        return jax.grad(loss)(state.codebook)

    for i in range(3):
        grad = step(state, z, jax.random.key(i), jax.numpy.asarray(diveq.gumbel_temperature(i)))
        assert np.all(np.isfinite(np.asarray(grad)))
    assert len(traces) == 1
    with pytest.raises(ValueError, match="`key` is required to sample `gumbel`"):
        vq.apply(state, z)
    with pytest.raises(ValueError, match="`tau`"):
        vq.apply(state, z, key=jax.random.key(0), tau=-1.0)
    out, same = vq.apply(state, z, train=False)
    assert same is state
    np.testing.assert_array_equal(np.asarray(out.indices), ref.nearest(z, state.codebook))


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_layer_examples_run(backend):
    pytest.importorskip(backend)
    module = importlib.import_module(f"diveq.backends.{backend}._gumbel")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 4
