"""torch layers: forward, usage counters, dead-code replacement, masks, decoding, feature axis."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diveq.backends.torch as dq  # noqa: E402
import diveq.reference as ref  # noqa: E402

LAYERS = {
    "diveq": lambda **kw: dq.DiVeQ(6, 4, **kw),
    "sf": lambda **kw: dq.SFDiVeQ(6, 4, skip_iters=0, **kw),
    "product": lambda **kw: dq.ProductDiVeQ(2, 6, 4, **kw),
    "residual": lambda **kw: dq.ResidualDiVeQ(2, 6, 4, **kw),
    "product_sf": lambda **kw: dq.ProductDiVeQ(2, 6, 4, space_filling=True, skip_iters=0, **kw),
    "residual_sf": lambda **kw: dq.ResidualDiVeQ(2, 6, 4, space_filling=True, skip_iters=0, **kw),
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _z(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed))


@pytest.mark.parametrize("name", LAYERS)
def test_shapes_types_and_init(name):
    torch.manual_seed(0)
    layer = LAYERS[name]()
    composite = name not in ("diveq", "sf")
    param = layer.codebooks if composite else layer.codebook
    assert isinstance(param, torch.nn.Parameter)
    assert param.abs().max() <= 1 / 6
    assert layer.hits.dtype == torch.int64
    assert layer.hits.shape == ((2, 6) if composite else (6,))
    out = layer(_z(3, 5, 4), generator=_gen(1))
    assert out.values.shape == (3, 5, 4)
    assert out.indices.shape == ((3, 5, 2) if composite else (3, 5))
    assert isinstance(out.perplexity, torch.Tensor) and out.perplexity.ndim == 0
    assert isinstance(out, dq.SFLayerOutput if "sf" in name else dq.LayerOutput)
    assert f"num_codes={6}" in repr(layer)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: dq.DiVeQ(0, 4), "num_codes"),
        (lambda: dq.SFDiVeQ(1, 4), "num_codes"),
        (lambda: dq.ProductDiVeQ(3, 4, 4), "dim % num_codebooks"),
        (lambda: dq.DiVeQ(4, 4, noise_std=-1.0), "noise_std"),
        (lambda: dq.DiVeQ(4, 4, replacement_iters=0), "replacement_iters"),
        (lambda: dq.SFDiVeQ(4, 4, skip_iters=5, avg_iters=0), "avg_iters"),
        (lambda: dq.DiVeQ(4, 4, chunk_size=0), "chunk_size"),
    ],
)
def test_constructor_errors(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()


def test_call_errors():
    layer = dq.DiVeQ(4, 3)
    with pytest.raises(ValueError, match="dim = 3"):
        layer(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="floating"):
        layer(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="mask"):
        layer(torch.zeros(2, 3), mask=torch.ones(3, dtype=torch.bool))


def test_usage_counters_count_train_rows_only():
    layer = dq.DiVeQ(5, 2, replacement_iters=None)
    total = torch.zeros(5, dtype=torch.int64)
    calls = torch.zeros(5, dtype=torch.int64)
    for seed in range(3):
        out = layer(_z(7, 2, seed=seed), generator=_gen(seed))
        want = ref.perplexity(out.indices.numpy(), 5)
        np.testing.assert_allclose(out.perplexity.numpy(), want, rtol=1e-6)
        counts = torch.from_numpy(ref.code_usage(out.indices.numpy(), 5))
        total += counts
        calls += (counts > 0).long()
    assert torch.equal(layer.hits, total) and torch.equal(layer.calls_used, calls)
    assert layer.train_calls == 3
    out = layer(_z(7, 2, seed=9), mask=torch.zeros(7, dtype=torch.bool))
    assert torch.equal(layer.hits, total) and (out.indices == -1).all()


def _dead_code_layer(**kw):
    layer = dq.DiVeQ(4, 2, replacement_iters=2, noise_std=0.0, **kw)
    with torch.no_grad():
        layer.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [99.0, 0.0], [0.0, 99.0]]))
    # rows near codes 0 (three rows) and 1 (one row): codes 2 and 3 are never used
    z = torch.tensor([[0.1, 0.0], [0.0, 0.1], [-0.1, 0.0], [10.0, 9.9]])
    return layer, z


def test_replacement_picks_live_donors_at_the_end_of_the_window():
    layer, z = _dead_code_layer(perturb_eps=0.0)
    param = layer.codebook
    optimiser = torch.optim.Adam([param], lr=0.0)
    before = param.detach().clone()
    for call in (1, 2):
        optimiser.zero_grad()
        layer(z, generator=_gen(call)).values.sum().backward()
        optimiser.step()
        if call == 1:
            assert torch.equal(param, before)  # not the end of the window yet
            assert torch.equal(layer.hits, torch.tensor([3, 1, 0, 0]))
    after = param.detach()
    assert layer.codebook is param and optimiser.state[param]  # same Parameter, state kept
    assert torch.equal(after[:2], before[:2])
    for j in (2, 3):  # each dead code is now an exact copy of a live code
        assert any(torch.equal(after[j], before[d]) for d in (0, 1))
    assert not layer.hits.any() and not layer.calls_used.any()  # counters reset


def test_replacement_donors_follow_hits():
    layer, z = _dead_code_layer(perturb_eps=0.0)
    before = layer.codebook.detach().clone()
    picks = []
    for seed in range(40):
        layer.load_state_dict(dq.DiVeQ(4, 2).state_dict() | {"codebook": before})
        layer(z, generator=_gen(seed))
        layer(z, generator=_gen(seed + 100))
        picks += [int(torch.equal(layer.codebook[j], before[0])) for j in (2, 3)]
    share = np.mean(picks)  # donor 0 has 3 of the 4 hits
    assert 0.55 < share < 0.95


def test_replacement_perturbs_and_can_be_switched_off():
    layer, z = _dead_code_layer(perturb_eps=1e-3)
    layer(z, generator=_gen(0))
    layer(z, generator=_gen(1))
    new = layer.codebook.detach()
    gaps = [min(float((new[j] - new[d]).norm()) for d in (0, 1)) for j in (2, 3)]
    assert all(0 < g < 1e-2 for g in gaps)
    off, z = _dead_code_layer(perturb_eps=0.0)
    off.replacement_iters = None
    before = off.codebook.detach().clone()
    for seed in range(4):
        off(z, generator=_gen(seed))
    assert torch.equal(off.codebook, before) and off.hits.sum() == 16


def test_composite_replacement_per_codebook():
    layer = dq.ProductDiVeQ(2, 3, 2, replacement_iters=1, perturb_eps=0.0, noise_std=0.0)
    books = torch.tensor([[[0.0], [5.0], [50.0]], [[0.0], [-50.0], [5.0]]])
    with torch.no_grad():
        layer.codebooks.copy_(books)
    layer(torch.tensor([[0.1, 5.1], [4.9, 0.2]]), generator=_gen(0))
    new = layer.codebooks.detach()
    assert torch.equal(new[0, :2], books[0, :2]) and new[0, 2] in books[0, :2]
    assert torch.equal(new[1, [0, 2]], books[1, [0, 2]]) and new[1, 1] in books[1, [0, 2]]


@pytest.mark.parametrize("name", LAYERS)
def test_eval_changes_no_state(name):
    layer = LAYERS[name]()
    for seed in range(3):
        layer(_z(8, 4, seed=seed), generator=_gen(seed))
    layer.eval()
    before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in _flat(layer)}
    g = _gen(7)
    rng_before = g.get_state()
    for seed in range(3):
        layer(_z(8, 4, seed=seed), generator=g)
    after = dict(_flat(layer))
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert _same(value, after[key]), key
    assert torch.equal(g.get_state(), rng_before)


def _flat(layer):
    for key, value in layer.state_dict().items():
        if isinstance(value, dict):
            yield from ((f"{key}.{k}", v) for k, v in value.items())
        else:
            yield key, value


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("name", LAYERS)
def test_masked_and_non_finite_rows(name):
    layer = LAYERS[name](noise_std=0.0)
    z = _z(6, 4, seed=1)
    z[1, 2] = float("nan")
    z[4, 0] = float("inf")
    mask = torch.ones(6, dtype=torch.bool)
    mask[3] = False
    bad = torch.tensor([False, True, False, True, True, False])
    zr = z.clone().requires_grad_(True)
    cot = _z(6, 4, seed=2)
    out = layer(zr, mask=mask, generator=_gen(0))
    (out.values * cot).sum().backward()
    torch.testing.assert_close(out.values[bad], z[bad], rtol=0, atol=0, equal_nan=True)
    assert (out.indices[bad] == -1).all() and (out.indices[~bad] >= 0).all()
    assert torch.equal(zr.grad[bad], cot[bad])  # pass-through: identity gradient
    param = layer.codebooks if name not in ("diveq", "sf") else layer.codebook
    grad_all = param.grad.clone()
    assert torch.isfinite(grad_all).all()
    # the codebook gradient equals that of the good rows alone; the bad rows are not counted
    clean = LAYERS[name](noise_std=0.0)
    clean.load_state_dict(layer.state_dict())
    clean.hits.zero_()
    clean.calls_used.zero_()
    out2 = clean(z[~bad].clone(), generator=_gen(0))
    (out2.values * cot[~bad]).sum().backward()
    clean_param = clean.codebooks if name not in ("diveq", "sf") else clean.codebook
    torch.testing.assert_close(grad_all, clean_param.grad, rtol=1e-6, atol=1e-6)
    assert torch.equal(layer.hits, clean.hits)


@pytest.mark.parametrize("name", LAYERS)
def test_all_valid_rows_skip_the_masking_with_the_same_results(name, monkeypatch):
    """Eager CPU layers skip the invalid-row masking when every row is valid; forcing the masked
    path changes no value, index, gradient or state, in train and in eval mode."""
    import diveq.backends.torch._layer as torch_layer

    assert torch_layer._known_all(torch.ones(3, dtype=torch.bool))  # the skip is taken here
    assert not torch_layer._known_all(torch.tensor([True, False]))
    runs = []
    for known in (True, False):
        if not known:
            monkeypatch.setattr(torch_layer, "_known_all", lambda mask: False)
        torch.manual_seed(0)
        layer = LAYERS[name]()
        z = _z(2, 5, 4, seed=3).requires_grad_(True)
        out = layer(z, generator=_gen(0))
        (out.values * _z(2, 5, 4, seed=4)).sum().backward()
        param = layer.codebooks if name not in ("diveq", "sf") else layer.codebook
        evaluated = layer.eval()(z.detach())
        runs.append((out.values, out.indices, z.grad, param.grad, evaluated.values,
                     evaluated.indices, layer.state_dict()))  # fmt: skip
    for a, b in zip(*runs, strict=True):
        if isinstance(a, dict):
            assert all(_same(a[k], b[k]) for k in a)
        else:
            assert torch.equal(a, b)


@pytest.mark.parametrize("name", LAYERS)
def test_decode_inverts_eval(name):
    layer = LAYERS[name]()
    layer(_z(16, 4), generator=_gen(0))  # some training first
    layer.eval()
    out = layer(_z(3, 7, 4, seed=3))
    if "sf" in name:
        assert torch.equal(layer.decode(out.indices, out.weights), out.values)
        with pytest.raises(ValueError, match="`weights` are required"):
            layer.decode(out.indices)  # a segment index alone is not a point
    else:
        assert torch.equal(layer.decode(out.indices), out.values)
    masked = layer(_z(3, 4), mask=torch.tensor([True, False, True]))
    weights = masked.weights if "sf" in name else None
    assert torch.equal(layer.decode(masked.indices, weights)[1], torch.zeros(4))


@pytest.mark.parametrize("name", ["diveq", "sf", "residual_sf"])
def test_feature_axis_matches_channels_last(name):
    first = LAYERS[name](feature_axis=1)
    last = LAYERS[name]()
    last.load_state_dict(first.state_dict())
    z = _z(2, 4, 3, 5)  # (B, C, H, W)
    a = first(z, generator=_gen(0))
    b = last(z.movedim(1, -1), generator=_gen(0))
    assert a.values.shape == z.shape and a.indices.shape[:3] == (2, 3, 5)
    assert torch.equal(a.values, b.values.movedim(-1, 1))
    assert torch.equal(a.indices, b.indices)
    first.eval()
    out = first(z)
    decoded = first.decode(out.indices, getattr(out, "weights", None))
    assert torch.equal(decoded, out.values)


def test_bfloat16_input_with_float32_codebook():
    layer = dq.DiVeQ(8, 4)
    z = _z(5, 4).to(torch.bfloat16).requires_grad_(True)
    out = layer(z, generator=_gen(0))
    assert out.values.dtype == torch.bfloat16
    out.values.float().sum().backward()
    assert z.grad.dtype == torch.bfloat16 and layer.codebook.grad.dtype == torch.float32
    layer.eval()
    assert layer(z).values.dtype == torch.bfloat16
