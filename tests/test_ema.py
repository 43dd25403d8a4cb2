"""The EMA codebook (issue 13): the reference against hand-computed numbers, every
implementation against the reference, and the edge cases (unused codes, empty statistics)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import diveq.core as core
import diveq.reference as ref
from diveq import EMAState
from diveq.testing import check_ema, check_ema_layers


def test_reference_update_by_hand():
    # K = 3, D = 2; rows 0, 1 on code 0, row 2 on code 2, code 1 unused; decay 0.5, eps 0.1
    z = np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0], [np.nan, 1.0]])
    counts, sums = ref.ema_statistics(z, [0, 0, 2, -1], 3)
    np.testing.assert_array_equal(counts, [2.0, 0.0, 1.0])
    np.testing.assert_array_equal(sums, [[4.0, 6.0], [0.0, 0.0], [10.0, 0.0]])
    state = ref.ema_init([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    new = ref.ema_update(state, counts, sums, decay=0.5, eps=0.1)
    # N = 0.5 * 1 + 0.5 * n = (1.5, 0.5, 1.0), sum 3; m = 0.5 c + 0.5 s
    np.testing.assert_allclose(new.cluster_size, [1.5, 0.5, 1.0], rtol=0, atol=0)
    np.testing.assert_allclose(new.embed_sum, [[2.0, 3.0], [0.5, 0.5], [6.0, 1.0]])
    smoothed = np.array([1.6, 0.6, 1.1]) / 3.3 * 3.0
    want = np.array([[2.0, 3.0], [0.5, 0.5], [6.0, 1.0]]) / smoothed[:, None]
    np.testing.assert_allclose(new.codebook, want, rtol=1e-15)


def test_init_is_a_fixed_point_without_data():
    """With no rows, decay keeps N = 1 shares equal: the codebook does not move."""
    state = ref.ema_init([[0.5, -1.0], [2.0, 3.0]])
    for _ in range(5):
        state = ref.ema_update(state, np.zeros(2), np.zeros((2, 2)), decay=0.9, eps=1e-5)
    np.testing.assert_allclose(state.codebook, [[0.5, -1.0], [2.0, 3.0]], rtol=1e-12)


@pytest.mark.parametrize("impl", [ref, core], ids=["reference", "core"])
def test_unused_codes_stay_finite(impl):
    """A code no row ever hits decays smoothly towards 0, never NaN or inf, over a long run;
    an all-zero cluster_size (or eps = 0 on an empty code) keeps the codewords."""
    rng = np.random.default_rng(0)
    state = impl.ema_init(np.array([[0.0, 0.0], [5.0, 5.0], [-50.0, 50.0]]))
    for _ in range(1200):
        z = rng.standard_normal((8, 2))
        counts, sums = impl.ema_statistics(z, impl.nearest(z, state.codebook), 3)
        state = impl.ema_update(state, counts, sums)
    books = np.asarray(state.codebook)
    assert np.all(np.isfinite(books)) and np.all(np.isfinite(np.asarray(state.cluster_size)))
    assert 0 < np.linalg.norm(books[2]) < np.linalg.norm([-50.0, 50.0])
    empty = EMAState(np.ones((2, 1)), np.zeros(2), np.zeros((2, 1)))
    for eps in (0.0, 1e-5):
        got = impl.ema_update(empty, np.zeros(2), np.zeros((2, 1)), decay=0.5, eps=eps)
        np.testing.assert_array_equal(np.asarray(got.codebook), np.ones((2, 1)))
    one = EMAState(np.array([[1.0], [7.0]]), np.array([1.0, 0.0]), np.ones((2, 1)))
    got = impl.ema_update(one, np.zeros(2), np.zeros((2, 1)), decay=0.5, eps=0.0)
    np.testing.assert_array_equal(np.asarray(got.codebook), [[1.0], [7.0]])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ema_functions_match_reference(backend, dtype):
    check_ema(backend, dtype, max_examples=15)


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (
            lambda m: m.ema_update(m.ema_init(np.ones((2, 1))), np.ones(3), np.ones((2, 1))),
            ValueError,
            "`counts` must have shape (2,)",
        ),
        (
            lambda m: m.ema_update(m.ema_init(np.ones((2, 1))), np.ones(2), np.ones((2, 2))),
            ValueError,
            "`sums` must have shape (2, 1)",
        ),
        (
            lambda m: m.ema_update(
                m.ema_init(np.ones((2, 1))), np.ones(2), np.ones((2, 1)), decay=1.5
            ),
            ValueError,
            "`decay` must be in [0, 1]",
        ),
        (
            lambda m: m.ema_update(
                m.ema_init(np.ones((2, 1))), np.ones(2), np.ones((2, 1)), eps=-1.0
            ),
            ValueError,
            "`eps` must be finite and >= 0",
        ),
        (
            lambda m: m.ema_update((np.ones((2, 1)),), np.ones(2), np.ones((2, 1))),
            TypeError,
            "`state` must be an EMAState",
        ),
        (
            lambda m: m.ema_statistics(np.ones((3, 2)), np.zeros(2, dtype=np.int64), 2),
            ValueError,
            "`indices` must have shape (3,)",
        ),
        (
            lambda m: m.ema_statistics(np.ones((3, 2)), np.zeros(3), 2),
            TypeError,
            "`indices` must have an integer dtype",
        ),
        (lambda m: m.ema_init(np.ones(3)), ValueError, "`codebook` must have shape (K, D)"),
    ],
)
@pytest.mark.parametrize("impl", [ref, core], ids=["reference", "core"])
def test_errors_name_the_argument(impl, call, error, text):
    with pytest.raises(error, match=re.escape(text)):
        call(impl)


def test_reference_checks_values():
    with pytest.raises(ValueError, match="`indices` must lie in"):
        ref.ema_statistics(np.ones((2, 1)), [0, 2], 2)
    with pytest.raises(ValueError, match="`z` must be finite"):
        ref.ema_statistics(np.array([[np.nan]]), [0], 1)
    with pytest.raises(ValueError, match="`counts` must be >= 0"):
        ref.ema_update(ref.ema_init(np.ones((2, 1))), [-1.0, 0.0], np.ones((2, 1)))


@pytest.mark.parametrize("name", ["torch", "jax-jit"])
def test_layers_match_the_reference_layer(name):
    pytest.importorskip(name.split("-")[0])
    check_ema_layers(name)


def test_the_layer_check_sees_a_planted_bug(monkeypatch):
    import diveq.backends.torch._ema_layer as torch_layer
    from diveq.testing import LayerMismatch

    pytest.importorskip("torch")
    real = torch_layer.ema_update
    monkeypatch.setattr(
        torch_layer, "ema_update", lambda s, n, m, *, decay, eps: real(s, n, m, decay=decay, eps=0)
    )
    with pytest.raises(LayerMismatch, match=r"state\.codebook"):
        check_ema_layers("torch")


def _two_workers(rng):
    z = rng.standard_normal((2, 6, 3))
    z[1, 2, 0] = np.nan
    layer = ref.EMAVQ(4, 3, decay=0.9)
    state = layer.init(rng.standard_normal((4, 3)))
    _, want = layer.apply(state, z.reshape(12, 3))  # one worker with every row
    return z, state, want


def test_torch_layer_reduces_the_statistics(monkeypatch):
    """The all-reduce hook: two workers with the same rows see the doubled statistics, which
    is the update of one worker with both workers' rows."""
    torch = pytest.importorskip("torch")
    import diveq.backends.torch._ema_layer as torch_layer
    from diveq.backends.torch import EMAVQ

    z, state, _ = _two_workers(np.random.default_rng(0))
    both = np.concatenate([z[0], z[0]])
    _, want = ref.EMAVQ(4, 3, decay=0.9).apply(state, both)
    monkeypatch.setattr(torch_layer, "active_group", lambda group: "two workers")
    monkeypatch.setattr(torch_layer, "all_reduce_sum", lambda t, group: t.mul_(2))
    layer = EMAVQ(4, 3, decay=0.9, dtype=torch.float64)
    layer.reset_parameters(torch.as_tensor(state.codebook))
    out = layer(torch.as_tensor(z[0]))
    for got, expected in zip(layer.state, want, strict=True):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    assert float(out.perplexity) == pytest.approx(float(ref.perplexity(out.indices.numpy(), 4)))
    layer.eval()
    before = [b.clone() for b in layer.state]
    layer(torch.as_tensor(z[1]))
    assert all(torch.equal(a, b) for a, b in zip(before, layer.state, strict=True))
    assert not any(b.requires_grad for b in layer.buffers()) and not list(layer.parameters())


def test_jax_layer_sums_over_axis_name():
    """Under ``vmap`` with ``axis_name`` every device writes the update of all devices' rows."""
    jax = pytest.importorskip("jax")
    import diveq.backends.jax as dq

    z, state, want = _two_workers(np.random.default_rng(1))
    layer = dq.EMAVQ(4, 3, decay=0.9, axis_name="d", dtype=jax.numpy.float64)
    jstate = dq.EMAState(*(jax.numpy.asarray(a) for a in state))
    apply = jax.jit(jax.vmap(lambda s, z: layer.apply(s, z), in_axes=(None, 0), axis_name="d"))
    _, new = apply(jstate, jax.numpy.asarray(z))
    for got, expected in zip(new, want, strict=True):
        np.testing.assert_allclose(np.asarray(got)[0], expected, rtol=1e-12)
        np.testing.assert_array_equal(np.asarray(got)[0], np.asarray(got)[1])
    plain = dq.EMAVQ(4, 3, decay=0.9, dtype=jax.numpy.float64)
    _, same = plain.apply(jstate, jax.numpy.asarray(z[0]), train=False)
    assert same is jstate
