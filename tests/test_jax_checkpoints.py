"""JAX layer states cannot load wrongly: a state written by a layer of another kind, shape or
(mid-schedule) schedule is refused with the torch layers' messages (``test_checkpoints.py``),
eagerly in ``apply`` / ``encode`` / ``decode`` and by ``check_state`` after a restore."""

from __future__ import annotations

import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import diveq.backends.jax as dq  # noqa: E402
from diveq.backends.jax import _signature  # noqa: E402

KEY = jax.random.key(0)


def _trained(layer, calls: int, rows: int = 16):
    state = layer.init(KEY)
    for i in range(calls):
        z = jax.random.normal(jax.random.key(100 + i), (rows, layer.spec.dim))
        _, state = layer.apply(state, z, key=jax.random.key(i))
    return state


def _refused(layer, state, *phrases: str) -> None:
    z = jnp.zeros((16, layer.spec.dim))
    for use in (
        layer.check_state,
        lambda s: layer.apply(s, z, key=KEY),
        lambda s: layer.apply(s, z, train=False),
        lambda s: layer.encode(s, z),
    ):
        with pytest.raises(ValueError) as err:
            use(state)
        for phrase in phrases:
            assert phrase in str(err.value), (phrase, str(err.value))


@pytest.mark.parametrize(
    ("saved", "target", "names"),
    [
        (dq.SFDiVeQ(8, 2, rows_per_call=16), dq.DiVeQ(8, 2), ("SFDiVeQ", "DiVeQ")),
        (dq.DiVeQ(8, 2), dq.SFDiVeQ(8, 2, rows_per_call=16), ("DiVeQ", "SFDiVeQ")),
        # the same state shapes: only the signature tells them apart
        (dq.ProductDiVeQ(2, 8, 4), dq.ResidualDiVeQ(2, 8, 2), ("Product", "Res")),
        (dq.DiVeQ(8, 2), dq.SFDiVeQ(8, 2, skip_iters=0), ("DiVeQ", "SFDiVeQ")),
    ],
)
def test_another_kind_is_refused(saved, target, names):
    _refused(target, saved.init(KEY), *names)


def test_another_shape_is_refused_by_name():
    with pytest.raises(ValueError, match="num_codes = 8; this layer has num_codes = 6"):
        dq.DiVeQ(6, 2).check_state(dq.DiVeQ(8, 2).init(KEY))


def test_sf_schedule_mismatch_mid_warmup_is_refused():
    state = _trained(dq.SFDiVeQ(8, 2, skip_iters=6, avg_iters=3, rows_per_call=16), 4)
    other = dq.SFDiVeQ(8, 2, skip_iters=10, avg_iters=3, rows_per_call=16)
    _refused(other, state, "skip_iters = 6", "= 10", "state._replace(signature=")
    same = dq.SFDiVeQ(8, 2, skip_iters=6, avg_iters=3, rows_per_call=16, noise_std=0.0)
    assert same.check_state(state) is state  # options that shape neither may differ
    # a deliberate change, as the message says
    adopted = state._replace(signature=other.init(KEY).signature)
    _, after = other.apply(adopted, jnp.ones((16, 2)), key=KEY)
    assert int(after.calls) == 5


def test_a_state_that_has_not_started_its_schedule_takes_the_layers():
    fresh = dq.SFDiVeQ(8, 2, skip_iters=6, rows_per_call=16).init(KEY)
    layer = dq.SFDiVeQ(8, 2, skip_iters=4, avg_iters=2, rows_per_call=8)
    relabelled = layer.check_state(fresh._replace(buffer=None, buffer_valid=None))
    np.testing.assert_array_equal(relabelled.signature, layer.init(KEY).signature)


def test_replacement_window_mismatch_mid_window_is_refused():
    state = _trained(dq.DiVeQ(8, 2, replacement_iters=3), 4)
    _refused(dq.DiVeQ(8, 2, replacement_iters=5), state, "replacement_iters = 3", "= 5")
    dq.DiVeQ(8, 2, replacement_iters=None).check_state(state)  # replacement off: moot
    boundary = _trained(dq.DiVeQ(8, 2, replacement_iters=3), 6)
    dq.DiVeQ(8, 2, replacement_iters=5).check_state(boundary)  # empty counters


def test_a_newer_format_is_refused():
    state = dq.DiVeQ(8, 2).init(KEY)
    state = state._replace(signature=state.signature.at[0].set(99))
    with pytest.raises(ValueError, match="newer diveq"):
        dq.DiVeQ(8, 2).check_state(state)


def test_batched_states_are_checked_and_jit_passes_through():
    layer = dq.DiVeQ(8, 2)
    states = jax.vmap(layer.init)(jax.random.split(KEY, 3))
    assert layer.check_state(states) is states
    with pytest.raises(ValueError, match="DiVeQ"):
        dq.SFDiVeQ(8, 2, rows_per_call=16).check_state(states)

    @jax.jit
    def step(state, z):  # traced: nothing read on the host, the signature passes through
        return layer.apply(state, z, key=KEY)[1]

    after = step(layer.init(KEY), jnp.ones((4, 2)))
    np.testing.assert_array_equal(after.signature, layer.init(KEY).signature)


def test_eager_loops_read_the_signature_once(monkeypatch):
    layer = dq.DiVeQ(8, 2)
    state = layer.check_state(layer.init(KEY))
    reads = []
    read = _signature._read
    monkeypatch.setattr(_signature, "_read", lambda leaf: reads.append(1) or read(leaf))
    for i in range(3):
        _, state = layer.apply(state, jnp.ones((4, 2)), key=jax.random.key(i))
    assert not reads
    dq.DiVeQ(8, 2).apply(layer.init(KEY), jnp.ones((4, 2)), key=KEY)  # a new state: read
    assert reads


def test_orbax_restore_into_another_layer_is_refused(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    saved = _trained(dq.SFDiVeQ(8, 2, skip_iters=6, avg_iters=3, rows_per_call=16), 4)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(tmp_path / "ckpt", saved)
    other = dq.SFDiVeQ(8, 2, skip_iters=9, avg_iters=3, rows_per_call=16)
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, other.init(KEY))
    with ocp.StandardCheckpointer() as ckptr:
        restored = ckptr.restore(tmp_path / "ckpt", target)
    with pytest.raises(ValueError, match="skip_iters = 6"):
        other.check_state(restored)


def test_a_mismatch_inside_jit_is_refused_with_the_message():
    saved = _trained(dq.SFDiVeQ(8, 2, skip_iters=6, avg_iters=3, rows_per_call=16), 4)
    other = dq.SFDiVeQ(8, 2, skip_iters=9, avg_iters=3, rows_per_call=16)

    @jax.jit
    def step(state, z):
        return other.apply(state, z, key=KEY)[1]

    with pytest.raises(Exception, match="skip_iters = 6") as err:
        jax.block_until_ready(step(saved, jnp.ones((16, 2))))
    assert not isinstance(err.value, AssertionError)
    fresh = other.init(KEY)  # matching states run without a callback
    assert int(jax.block_until_ready(step(fresh, jnp.ones((16, 2)))).calls) == 1
