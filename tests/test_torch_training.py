"""torch layers over many calls: the SF warm-up schedule and checkpoint round trips."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diveq.backends.torch as dq  # noqa: E402
import diveq.reference as ref  # noqa: E402


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _z(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed))


def test_sf_warmup_schedule_call_by_call():
    layer = dq.SFDiVeQ(2, 3, skip_iters=4, avg_iters=2)
    initial = layer.codebook.detach().clone()
    batches = [_z(3, 3, seed=1), _z(4, 3, seed=2), _z(5, 3, seed=3)]
    masks = [None, None, torch.tensor([True, False, True, True, True])]
    for call, (z, mask) in enumerate(zip(batches, masks, strict=True), start=1):
        assert not layer.warmed_up
        zr = z.clone().requires_grad_(True)
        out = layer(zr, mask=mask, generator=_gen(call))
        assert torch.equal(out.values, z) and (out.indices == -1).all()
        assert not out.weights.any()
        out.values.sum().backward()
        assert torch.equal(zr.grad, torch.ones_like(z))  # identity gradient
        assert layer.train_calls == call
        if call < 3:
            assert torch.equal(layer.codebook, initial)
            kept = layer.state_dict()["_extra_state"]["warmup_valid"]  # the rows of call 2
            assert (0 if kept is None else int(kept.sum())) == [0, 4][call - 1]
    rows = torch.cat(batches[1:]).double().numpy()
    valid = np.array([True] * 4 + [True, False, True, True, True])
    want = ref.warmup_codebook(rows, 2, valid=valid)
    np.testing.assert_allclose(layer.codebook.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    assert layer.warmed_up and layer.state_dict()["_extra_state"]["warmup_rows"] is None
    out = layer(_z(6, 3, seed=4), generator=_gen(4))
    assert (out.indices >= 0).all() and out.weights.any()


@pytest.mark.parametrize("skip", [0, 1])
def test_sf_without_warmup_quantizes_from_the_first_call(skip):
    layer = dq.SFDiVeQ(3, 2, skip_iters=skip)
    initial = layer.codebook.detach().clone()
    out = layer(_z(4, 2), generator=_gen(0))
    assert (out.indices >= 0).all() and torch.equal(layer.codebook, initial)


def test_sf_warmup_with_too_few_rows_raises():
    layer = dq.SFDiVeQ(8, 2, skip_iters=3, avg_iters=1)
    layer(_z(3, 2))
    with pytest.raises(ValueError, match="at least K = 8"):
        layer(_z(3, 2))


@pytest.mark.parametrize("layout", ["product", "residual"])
def test_composite_sf_warmup_runs_diveq_then_initialises_each_codebook(layout):
    cls = dq.ProductDiVeQ if layout == "product" else dq.ResidualDiVeQ
    layer = cls(2, 3, 4, space_filling=True, skip_iters=3, avg_iters=2, replacement_iters=None)
    old = layer.codebooks.detach().double().numpy()
    zs, idx = [_z(4, 4, seed=1), _z(5, 4, seed=2)], []
    for call, z in enumerate(zs, start=1):
        out = layer(z, generator=_gen(call))
        assert (out.indices >= 0).all() and not torch.equal(out.values, z)
        assert not out.weights.any()  # composite DiVeQ picks codewords (vertices)
        idx.append(out.indices.numpy())
    rows, k = torch.cat(zs).double().numpy(), np.concatenate(idx)
    if layout == "product":
        latents = [rows[:, :2], rows[:, 2:]]
    else:  # stage residuals under the codebooks in use during the warm-up
        latents = [rows, rows - old[0][k[:, 0]]]
    for m in range(2):
        want = ref.warmup_codebook(latents[m], 3)
        np.testing.assert_allclose(layer.codebooks[m].detach().numpy(), want, rtol=1e-5, atol=1e-6)
    out = layer(_z(4, 4, seed=3), generator=_gen(3))
    assert out.weights.any()  # SF training now


def test_composite_sf_replaces_during_warmup_only():
    layer = dq.ProductDiVeQ(
        1, 3, 1, space_filling=True, skip_iters=3, avg_iters=1, replacement_iters=1
    )
    layer.perturb_eps = 0.0
    with torch.no_grad():
        layer.codebooks.copy_(torch.tensor([[[0.0], [1.0], [99.0]]]))
    z = torch.tensor([[0.1], [0.9], [0.2]])
    layer(z, generator=_gen(0))  # call 1: DiVeQ, code 2 dead and replaced
    assert float(layer.codebooks[0, 2].detach()) in (0.0, 1.0)
    layer(torch.tensor([[0.0], [1.0], [2.0], [3.0], [50.0], [60.0]]))  # call 2: init
    init = layer.codebooks.detach().clone()
    np.testing.assert_allclose(init[0, :, 0].numpy(), [0.5, 2.5, 55.0])
    for seed in range(3):  # SF training: replacement is off, segment 1 is never used
        layer(torch.tensor([[0.6], [0.7]]), generator=_gen(seed))
    assert torch.equal(layer.codebooks, init)


def _train(layer, optimiser, steps, seed0, *, mask_every=0):
    outs = []
    for step in range(steps):
        z = _z(12, layer.dim, seed=seed0 + step).requires_grad_(True)
        mask = None
        if mask_every and step % mask_every == 0:
            mask = torch.arange(12) % 3 != 0
        optimiser.zero_grad()
        out = layer(z, mask=mask, generator=_gen(1000 + seed0 + step))
        loss = (out.values - 0.5 * z).pow(2).mean()
        loss.backward()
        optimiser.step()
        outs.append(out)
    return outs


def _roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


CHECKPOINTS = {
    "diveq-mid-window": (lambda: dq.DiVeQ(16, 3, replacement_iters=3), 4, 5),
    "sf-mid-warmup": (lambda: dq.SFDiVeQ(4, 3, skip_iters=6, avg_iters=3), 4, 4),
    "residual-sf-mid-warmup": (
        lambda: dq.ResidualDiVeQ(2, 4, 3, space_filling=True, skip_iters=6, avg_iters=3),
        4,
        4,
    ),
    "product-mid-window": (lambda: dq.ProductDiVeQ(3, 8, 3, replacement_iters=2), 3, 4),
}


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_state_dict_round_trip_continues_identically(name):
    make, before, after = CHECKPOINTS[name]
    torch.manual_seed(0)
    a = make()
    opt_a = torch.optim.Adam(a.parameters(), lr=0.05)
    _train(a, opt_a, before, 0, mask_every=2)
    state, opt_state = _roundtrip(a.state_dict()), _roundtrip(opt_a.state_dict())
    torch.manual_seed(1)
    b = make()  # a different initial codebook, overwritten by the checkpoint
    b.load_state_dict(state)
    opt_b = torch.optim.Adam(b.parameters(), lr=0.05)
    opt_b.load_state_dict(opt_state)
    assert b.train_calls == a.train_calls and b.warmed_up == a.warmed_up
    outs_a = _train(a, opt_a, after, 50, mask_every=3)
    outs_b = _train(b, opt_b, after, 50, mask_every=3)
    for oa, ob in zip(outs_a, outs_b, strict=True):
        for fa, fb in zip(oa, ob, strict=True):
            assert torch.equal(fa, fb)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        if isinstance(va, torch.Tensor):
            assert torch.equal(va, vb), ka
    assert a.warmed_up  # every schedule above has finished its warm-up
