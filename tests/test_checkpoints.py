"""Layer checkpoints cannot load wrongly: a state written by a layer of another kind, shape or
(mid-schedule) schedule is a ``ValueError`` naming both values, and leaves the layer as it was."""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny layers: threads only contend

import diveq.backends.torch as dq  # noqa: E402


def _trained(layer, calls: int, rows: int = 16):
    gen = torch.Generator().manual_seed(0)
    for _ in range(calls):
        layer(torch.randn(rows, layer.dim, generator=gen), generator=gen)
    return layer


def _refused(layer, state, *phrases: str) -> None:
    before = {k: v.clone() for k, v in layer.state_dict().items() if isinstance(v, torch.Tensor)}
    calls = layer.train_calls
    with pytest.raises(ValueError) as err:
        layer.load_state_dict(state)
    for phrase in phrases:
        assert phrase in str(err.value), (phrase, str(err.value))
    after = layer.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items()) and layer.train_calls == calls


@pytest.mark.parametrize(
    ("saved", "target", "names"),
    [
        (lambda: dq.SFDiVeQ(8, 2), lambda: dq.DiVeQ(8, 2), ("SFDiVeQ", "DiVeQ")),
        (lambda: dq.DiVeQ(8, 2), lambda: dq.SFDiVeQ(8, 2), ("DiVeQ", "SFDiVeQ")),
        # the same parameter shapes (2, 8, 2): only the recorded kind tells them apart
        (lambda: dq.ProductDiVeQ(2, 8, 4), lambda: dq.ResidualDiVeQ(2, 8, 2), ("Product", "Res")),
        (
            lambda: dq.ProductDiVeQ(2, 8, 4, space_filling=True),
            lambda: dq.ProductDiVeQ(2, 8, 4),
            ("ProductDiVeQ(space_filling=True)", "layer ProductDiVeQ"),
        ),
    ],
)
def test_another_kind_is_refused(saved, target, names):
    _refused(target(), saved().state_dict(), *names)


def test_another_shape_is_refused_by_name():
    _refused(dq.DiVeQ(8, 3), dq.DiVeQ(8, 2).state_dict(), "dim = 2", "dim = 3")


def test_sf_schedule_mismatch_mid_warmup_is_refused():
    state = _trained(dq.SFDiVeQ(8, 2, skip_iters=6, avg_iters=3), 4).state_dict()
    _refused(dq.SFDiVeQ(8, 2, skip_iters=10, avg_iters=3), state, "skip_iters = 6", "= 10")
    _refused(dq.SFDiVeQ(8, 2, skip_iters=6, avg_iters=2), state, "avg_iters = 3", "= 2")
    same = dq.SFDiVeQ(8, 2, skip_iters=6, avg_iters=3, noise_std=0.0, feature_axis=0)
    same.load_state_dict(state)  # options that shape neither state nor schedule may differ
    assert same.train_calls == 4 and not same.warmed_up


def test_sf_schedule_may_differ_once_both_warmups_are_over():
    state = _trained(dq.SFDiVeQ(8, 2, skip_iters=6, avg_iters=3), 8).state_dict()
    later = dq.SFDiVeQ(8, 2, skip_iters=4, avg_iters=2)
    later.load_state_dict(state)
    assert later.warmed_up
    # a longer schedule would warm up again and overwrite the trained codebook
    _refused(dq.SFDiVeQ(8, 2, skip_iters=20), state, "after its SF warm-up", "skip_iters = 20")


def test_replacement_window_mismatch_mid_window_is_refused():
    state = _trained(dq.DiVeQ(8, 2, replacement_iters=3), 4).state_dict()
    _refused(dq.DiVeQ(8, 2, replacement_iters=5), state, "replacement_iters = 3", "= 5")
    off = dq.DiVeQ(8, 2, replacement_iters=None)  # replacement off: the window is moot
    off.load_state_dict(state)
    boundary = _trained(dq.DiVeQ(8, 2, replacement_iters=3), 6).state_dict()
    dq.DiVeQ(8, 2, replacement_iters=5).load_state_dict(boundary)  # empty counters


def test_an_intended_change_is_an_assignment_after_loading():
    state = _trained(dq.SFDiVeQ(8, 2, skip_iters=6, avg_iters=3), 2).state_dict()
    layer = dq.SFDiVeQ(8, 2, skip_iters=6, avg_iters=3)
    layer.load_state_dict(state)
    layer.skip_iters = 10
    _trained(layer, 3)
    assert not layer.warmed_up  # the saved schedule would have initialised at call 5
    _trained(layer, 4)
    assert layer.warmed_up and layer.train_calls == 9
    assert layer.state_dict()["_extra_state"]["layer"]["skip_iters"] == 10


def test_checkpoints_without_the_record_load_as_before():
    """States saved before layers recorded their kind carry no ``layer`` entry: unchecked."""
    state = _trained(dq.DiVeQ(8, 2, replacement_iters=3), 4).state_dict()
    del state["_extra_state"]["layer"]
    layer = dq.DiVeQ(8, 2, replacement_iters=5)
    layer.load_state_dict(state)
    assert layer.train_calls == 4


def test_a_newer_format_is_refused():
    state = dq.DiVeQ(8, 2).state_dict()
    state["_extra_state"]["layer"]["format"] = 99
    _refused(dq.DiVeQ(8, 2), state, "newer diveq")


def _format_one(layer):
    """The layer's state as format 1 wrote it: the count and the kept calls' rows (lists, in
    call order) in the extra state, no ``calls`` buffer."""
    state, store, spec = layer.state_dict(), layer._warmup, layer.spec
    calls = int(state.pop("calls"))
    extra = state["_extra_state"]
    kept, p = calls - (spec.skip_iters - store.slots) + 1, store.per_call
    rows, valid = [], []
    if store.rows is not None and store.valid is not None:
        rows = list(store.rows.view(store.slots, p, *store.rows.shape[1:])[:kept])
        valid = list(store.valid.view(store.slots, p)[:kept])
    extra.update(train_calls=calls, warmup_rows=rows, warmup_valid=valid)
    extra["layer"]["format"] = 1
    return state


def test_a_format_one_checkpoint_loads_and_continues_bit_identically():
    def build():
        return dq.ResidualDiVeQ(2, 8, 2, space_filling=True, skip_iters=5, avg_iters=3)

    layer = _trained(build(), 3)  # mid warm-up: the rows of calls 2 and 3 kept
    old = _format_one(layer)
    assert len(old["_extra_state"]["warmup_rows"]) == 2
    again = build()
    again.load_state_dict(old)
    assert again.train_calls == 3 and torch.equal(again._warmup.valid, layer._warmup.valid)
    _trained(layer, 3), _trained(again, 3)  # through the init (call 4) and SF training
    assert torch.equal(layer.codebooks, again.codebooks) and torch.equal(layer.hits, again.hits)
    assert again.train_calls == 6 and again.state_dict()["_extra_state"]["layer"]["format"] == 2


def test_the_record_round_trips_through_torch_save(tmp_path):
    layer = _trained(dq.ResidualDiVeQ(2, 8, 2, space_filling=True, skip_iters=4), 2)
    torch.save(layer.state_dict(), tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert state["_extra_state"]["layer"]["kind"] == "ResidualDiVeQ(space_filling=True)"
    again = dq.ResidualDiVeQ(2, 8, 2, space_filling=True, skip_iters=4)
    again.load_state_dict(state)
    assert again.train_calls == 2


def test_official_argument_order_gets_a_hint():
    hint = re.escape("the official package's is (num_embeddings, embedding_dim, num_codebooks)")
    with pytest.raises(ValueError, match=r"dim % num_codebooks.*" + hint + r".*ProductDiVeQ\(4"):
        dq.ProductDiVeQ(256, 64, 4)
    with pytest.warns(UserWarning, match=hint + r".*ResidualDiVeQ\(4, 256, 64\)"):
        layer = dq.ResidualDiVeQ(256, 64, 4)
    with pytest.raises(ValueError, match=r"feature size mismatch.*" + hint):
        layer(torch.randn(10, 64))


def test_feature_size_mismatch_names_the_axis():
    with pytest.raises(ValueError, match="axis 1 has size 64: pass feature_axis=1"):
        dq.DiVeQ(256, 64)(torch.randn(8, 64, 4, 4))
    # when the last axis also has size dim, nothing can tell: feature_axis decides (documented)
    layer = dq.DiVeQ(16, 16)
    out = layer(torch.randn(8, 16, 16, 16))
    assert out.indices.shape == (8, 16, 16)
