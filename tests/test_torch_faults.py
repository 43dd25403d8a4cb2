"""torch layers under faults (issue 7, item 2): seeds, checkpoints, autocast and bad rows.

Every layer kind trains inside a tiny auto-encoder (``nn.Linear`` encoder and decoder, Adam)
for ``STEPS`` calls. The settings make both training-state events fire within the run: dead-code
replacement every 3 calls (DiVeQ and composites; composite SF during its warm-up only) and the
SF warm-up init at call 5 (rows of calls 4 and 5). Every batch has two masked rows and two
non-finite rows, and a cotangent on those rows alone probes the codebook gradient every step.
The layers draw their noise from torch's default generator (``generator=None``), so
``torch.manual_seed`` fixes a whole run.
"""

from __future__ import annotations

import functools
import io
from typing import Any, NamedTuple

import numpy as np
import pytest

pytest.importorskip("torch")

import torch
from _fault_schedule import DIM, EVENTS, IN, INIT_CALL, ROWS, SPECS, STEPS, build
from torch import nn

import diveq.backends.torch as dq
import diveq.reference as ref

KINDS = {name: functools.partial(build, dq, name) for name in SPECS}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, mask, additive poison (NaN / inf entries) and a cotangent on the bad rows."""
    x = torch.randn(ROWS, IN, generator=_gen(100 + step))
    mask = torch.ones(ROWS, dtype=torch.bool)
    mask[[step % ROWS, (step + 5) % ROWS]] = False
    poison = torch.zeros(ROWS, DIM)
    poison[(step + 2) % ROWS, 1] = float("nan")
    poison[(step + 8) % ROWS, 0] = float("inf")
    bad = ~mask | ~torch.isfinite(poison).all(-1)
    cot = torch.where(bad[:, None], torch.randn(ROWS, DIM, generator=_gen(200 + step)), 0.0)
    return x, mask, poison, cot


class Model(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.enc = nn.Linear(IN, DIM)
        self.vq = KINDS[name]()
        self.dec = nn.Linear(DIM, IN)


def _book(model: Model) -> torch.Tensor:
    return next(model.vq.parameters())


class Record(NamedTuple):
    out: tuple[torch.Tensor, ...]
    loss: torch.Tensor
    grads: dict[str, torch.Tensor]
    z: torch.Tensor
    valid: torch.Tensor
    before: torch.Tensor  # codebook before the call
    after: torch.Tensor  # codebook after the forward, before the optimiser step

    @property
    def moved(self) -> bool:
        """Whether the forward itself rewrote the codebook (replacement or SF init)."""
        return not torch.equal(self.before, self.after)


def _build(name: str, seed: int) -> tuple[Model, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = Model(name)
    return model, torch.optim.Adam(model.parameters(), lr=0.05)


def _step(
    model: Model, opt: torch.optim.Optimizer, step: int, autocast: bool = False, drop: bool = False
) -> Record:
    x, mask, poison, cot = _batch(step)
    if drop:  # an all-masked call
        mask = torch.zeros_like(mask)
    book = _book(model)
    before = book.detach().clone()
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        z = model.enc(x)
        z = z + poison.to(z.dtype)
        out = model.vq(z, mask=mask)
        valid = mask & torch.isfinite(z).all(-1)
        y = model.dec(torch.where(valid[:, None], out.values, 0.0))
    err = (y.float() - x).pow(2).sum(-1)
    loss = torch.where(valid, err, 0.0).sum() / valid.sum().clamp(min=1)
    # the bad rows alone send nothing to the codebook (None: not used in this call)
    (probe,) = torch.autograd.grad(
        out.values, book, cot.to(out.values.dtype), retain_graph=True, allow_unused=True
    )
    assert probe is None or torch.equal(probe, torch.zeros_like(probe))
    loss.backward()
    after = book.detach().clone()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    opt.step()
    out = tuple(t.detach() for t in out)
    return Record(out, loss.detach(), grads, z.detach(), valid, before, after)


def _train(name: str, seed: int = 0, autocast: bool = False):
    model, opt = _build(name, seed)
    return model, opt, [_step(model, opt, s, autocast) for s in range(STEPS)]


def _bits(t: torch.Tensor) -> torch.Tensor:
    """Bit pattern of a tensor (so NaN == NaN and -0.0 != 0.0)."""
    if not t.is_floating_point():
        return t
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _assert_runs_equal(recs_a, recs_b, model_a, model_b, opt_a, opt_b) -> None:
    for i, (ra, rb) in enumerate(zip(recs_a, recs_b, strict=True)):
        assert _same(tuple(ra), tuple(rb)), f"step {i}"
    assert _same(model_a.state_dict(), model_b.state_dict())
    assert _same(opt_a.state_dict()["state"], opt_b.state_dict()["state"])


def _assert_counters(name: str, vq: Any, recs: list[Record]) -> None:
    """``hits`` / ``calls_used`` count the valid rows of the calls since the last reset (every
    window end and the SF init)."""
    assert vq.train_calls == len(recs)
    k = vq.num_codes
    hits = np.zeros((vq.num_codebooks, k), dtype=np.int64)
    used = np.zeros_like(hits)
    for call, r in enumerate(recs, start=1):
        idx = r.out[1].reshape(ROWS, -1).numpy()
        assert (idx[~r.valid.numpy()] == -1).all()
        counts = np.stack([ref.code_usage(idx[:, m], k) for m in range(idx.shape[1])])
        hits, used = hits + counts, used + (counts > 0)
        if call in EVENTS[name]:
            hits, used = 0 * hits, 0 * used
    np.testing.assert_array_equal(vq.hits.reshape(hits.shape).numpy(), hits)
    np.testing.assert_array_equal(vq.calls_used.reshape(used.shape).numpy(), used)


def _assert_events_fired(name: str, recs: list[Record]) -> None:
    moved = {call for call, r in enumerate(recs, start=1) if r.moved}
    assert moved <= EVENTS[name], moved  # the forward rewrites the codebook only at events
    assert moved, name
    if "sf" in name:
        assert INIT_CALL in moved
    if name != "sf":
        assert 3 in moved  # the first window end replaced dead codes


@pytest.mark.parametrize("name", KINDS)
def test_fixed_seed_gives_bit_identical_runs(name):
    model_a, opt_a, recs_a = _train(name, seed=0)
    model_b, opt_b, recs_b = _train(name, seed=0)
    _assert_runs_equal(recs_a, recs_b, model_a, model_b, opt_a, opt_b)
    _assert_events_fired(name, recs_a)
    assert model_a.vq.train_calls == STEPS and model_a.vq.warmed_up
    _assert_counters(name, model_a.vq, recs_a)
    other = _train(name, seed=1)[0]
    assert not torch.equal(_book(other), _book(model_a))  # the seed matters


def _roundtrip(obj: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", KINDS)
def test_checkpoint_mid_window_and_mid_warmup_continues_bit_identically(name):
    full_model, full_opt, full = _train(name, seed=0)
    model, opt = _build(name, seed=0)
    first = [_step(model, opt, s) for s in range(4)]  # mid window (4 % 3), SF: 1 slot kept
    assert _same(first, full[:4])
    extra = model.vq.state_dict()["_extra_state"]
    assert extra["train_calls"] == 4
    if "sf" in name:
        assert len(extra["warmup_rows"]) == 1 and not model.vq.warmed_up
    if name != "sf":
        assert model.vq.hits.any()  # counters of an unfinished window
    ckpt = _roundtrip(
        {"model": model.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state()}
    )
    del model, opt
    resumed, resumed_opt = _build(name, seed=123)  # other weights, other RNG state
    resumed.load_state_dict(ckpt["model"])
    resumed_opt.load_state_dict(ckpt["opt"])
    torch.set_rng_state(ckpt["rng"])
    rest = [_step(resumed, resumed_opt, s) for s in range(4, STEPS)]
    _assert_runs_equal(full[4:], rest, full_model, resumed, full_opt, resumed_opt)
    _assert_events_fired(name, full)


@pytest.mark.parametrize("name", KINDS)
def test_autocast_bfloat16_training(name):
    """Under CPU autocast the encoder emits bf16 ``z``. Observed: ``values`` (and SF
    ``weights``) are bf16 like ``z``; indices int64; perplexity float32; the codebook and
    every gradient stay float32."""
    model, _, recs = _train(name, autocast=True)
    sf = "sf" in name
    for r in recs:
        assert r.z.dtype == torch.bfloat16 and r.out[0].dtype == torch.bfloat16
        assert r.out[1].dtype == torch.int64 and r.out[2].dtype == torch.float32
        if sf:
            assert r.out[3].dtype == torch.bfloat16
        assert torch.isfinite(r.loss)
        for key, g in r.grads.items():
            assert g.dtype == torch.float32 and torch.isfinite(g).all(), key
    book = _book(model)
    assert book.dtype == torch.float32 and torch.isfinite(book).all()
    _assert_events_fired(name, recs)
    _assert_counters(name, model.vq, recs)


def test_autocast_search_stays_float32():
    """Autocast would run the search matmul in bfloat16 and pick other codes."""
    layer = dq.DiVeQ(512, 4).eval()
    torch.nn.init.normal_(layer.codebook, std=0.5, generator=_gen(1))
    z = torch.randn(2048, 4, generator=_gen(0))
    want = layer(z).indices
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(z).indices
    assert torch.equal(got, want)


def test_autocast_warmup_init_stays_float32():
    """Autocast would run the warm-up one-hot matmul in bfloat16."""
    layer = dq.SFDiVeQ(8, 4, skip_iters=3, avg_iters=2)
    rows = [torch.randn(64, 4, generator=_gen(s)) * 3 + 1.2345 for s in range(2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for z in rows:
            layer(z)
    want = ref.warmup_codebook(torch.cat(rows).double().numpy(), 8)
    np.testing.assert_allclose(layer.codebook.detach().numpy(), want, rtol=1e-5, atol=1e-6)


def _latents(name: str, r: Record) -> np.ndarray:
    """What each codebook quantised in call ``r``, ``(N, M, D')``, float64."""
    z = r.z.double().numpy()
    if name == "sf":
        return z[:, None, :]
    if name == "product_sf":
        return z.reshape(len(z), 2, -1)
    idx = r.out[1][:, 0].clamp(min=0).numpy()
    stage1 = z - r.before[0].double().numpy()[idx]
    return np.stack([z, stage1], axis=1)


@pytest.mark.parametrize("name", ["sf", "product_sf", "residual_sf"])
def test_warmup_init_uses_the_valid_rows_only(name):
    model, _, recs = _train(name)
    k = model.vq.num_codes
    kept = recs[INIT_CALL - 2 : INIT_CALL]  # calls 4 and 5
    latents = np.concatenate([_latents(name, r) for r in kept])
    valid = torch.cat([r.valid for r in kept]).numpy()
    assert 0 < (~valid).sum() and np.isfinite(latents[valid]).all()
    init = recs[INIT_CALL - 1]
    assert init.moved
    books = init.after.reshape(-1, k, latents.shape[2]).double().numpy()
    for m in range(latents.shape[1]):
        want = ref.warmup_codebook(latents[valid, m], k)
        np.testing.assert_allclose(books[m], want, rtol=1e-5, atol=1e-6)
        dirty = ref.warmup_codebook(np.nan_to_num(latents[:, m], posinf=0.0), k)
        assert not np.allclose(want, dirty, atol=1e-3)  # the bad rows would have mattered


def _layout(width: int, k: int, scale: float = 1.0) -> torch.Tensor:
    """Codes 0, 1 for the valid rows; 2 at the origin (where non-finite rows are searched
    from); 3 for the masked rows; the rest far away."""
    e0, e1 = torch.eye(width)[:2]
    far = [(100.0 + 10 * j) * (e0 + e1) for j in range(k - 4)]
    return torch.stack([3 * e0, -3 * e0, 0 * e0, 30 * e1, *far]) * scale


SF_DONOR: dict[str, Any] = {"space_filling": True, "skip_iters": 10, "avg_iters": 1}
DONORS = {
    "diveq": lambda: dq.DiVeQ(16, 2, replacement_iters=2, perturb_eps=0.0),
    "product": lambda: dq.ProductDiVeQ(2, 16, 4, replacement_iters=2, perturb_eps=0.0),
    "residual": lambda: dq.ResidualDiVeQ(2, 16, 2, replacement_iters=2, perturb_eps=0.0),
    "product_sf": lambda: dq.ProductDiVeQ(
        2, 16, 4, replacement_iters=2, perturb_eps=0.0, **SF_DONOR
    ),
    "residual_sf": lambda: dq.ResidualDiVeQ(
        2, 16, 2, replacement_iters=2, perturb_eps=0.0, **SF_DONOR
    ),
}


@pytest.mark.parametrize("name", DONORS)
def test_replacement_never_takes_donors_hit_only_by_bad_rows(name):
    """Masked rows sit on code 3 and non-finite rows are searched as zeros (code 2): had they
    been counted, 14 dead codes drawn by hits would surely pick one of them as a donor."""
    layer = DONORS[name]()
    e0, e1 = torch.eye(2)
    if name == "diveq":
        books, pos, neg, masked = _layout(2, 16)[None], 3 * e0, -3 * e0, 30 * e1
    elif name.startswith("product"):
        books = torch.stack([_layout(2, 16)] * 2)
        pos, neg, masked = (torch.cat([v, v]) for v in (3 * e0, -3 * e0, 30 * e1))
    else:  # stage 1 quantises z - C_0[k_0]
        books = torch.stack([_layout(2, 16), _layout(2, 16, 1 / 6)])
        pos, neg, masked = 3.5 * e0, -3.5 * e0, 35 * e1
    nan, inf = torch.full_like(pos, float("nan")), torch.zeros_like(pos)
    inf[0] = float("inf")
    z = torch.stack([pos, pos, neg, pos, masked, nan, neg, masked, inf])
    mask = torch.tensor([True] * 4 + [False, True, True, False, True])
    param = next(layer.parameters())
    with torch.no_grad():
        param.copy_(books.view_as(param))
    out = layer(z, mask=mask, generator=_gen(0))  # call 1 of the window
    want = torch.zeros(books.shape[:2], dtype=torch.int64)
    want[:, :2] = torch.tensor([3, 2])
    assert torch.equal(layer.hits.view_as(want), want)
    assert torch.equal(layer.calls_used.view_as(want), (want > 0).long())
    assert (out.indices[4:6] == -1).all() and (out.indices[7:] == -1).all()
    layer(z, mask=mask, generator=_gen(1))  # call 2: the window ends, 14 dead codes per book
    new = param.detach().view_as(books)
    assert torch.equal(new[:, :2], books[:, :2])
    for m in range(books.shape[0]):
        donors = [int(torch.nonzero((books[m] == row).all(-1))[0]) for row in new[m, 2:]]
        assert set(donors) == {0, 1}, donors
    assert not layer.hits.any() and not layer.calls_used.any()


@pytest.mark.parametrize("name", KINDS)
def test_all_masked_call_only_counts_the_call(name):
    """An all-masked train-mode call passes ``z`` through (index -1, perplexity 1), sends no
    codebook gradient and changes no state but ``train_calls``; during the SF warm-up it adds
    no rows, so the init uses the other kept call only."""
    model, opt = _build(name, seed=0)
    _step(model, opt, 0)
    vq = model.vq
    snapshot = _roundtrip(vq.state_dict())
    rec = _step(model, opt, 1, drop=True)  # call 2: not a window end
    assert torch.equal(_bits(rec.out[0]), _bits(rec.z)) and (rec.out[1] == -1).all()
    assert float(rec.out[2]) == 1.0 and not rec.moved
    assert "vq.codebook" not in rec.grads or not rec.grads["vq.codebook"].any()
    assert not rec.grads.get("vq.codebooks", torch.zeros(1)).any()
    state = vq.state_dict()
    calls = state["_extra_state"].pop("train_calls")
    assert calls == snapshot["_extra_state"].pop("train_calls") + 1
    # the codebook as the forward left it (Adam's momentum moves it afterwards)
    state[vq._param_name] = rec.after
    assert _same(state, snapshot)
    if "sf" not in name:
        return
    _step(model, opt, 2)
    _step(model, opt, 3, drop=True)  # call 4: kept by the warm-up, but nothing valid
    init = _step(model, opt, 4)  # call 5: init from call 5 alone
    k = vq.num_codes
    latents = _latents(name, init)[init.valid.numpy()]
    books = init.after.reshape(-1, k, latents.shape[2]).double().numpy()
    for m in range(latents.shape[1]):
        want = ref.warmup_codebook(latents[:, m], k)
        np.testing.assert_allclose(books[m], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", KINDS)
def test_good_rows_do_reach_the_codebook(name):
    """Control for the per-step probe in ``_step`` (bad rows send exactly zero): the same
    probe on the good rows gives a nonzero codebook gradient."""
    model = _train(name)[0]
    x, mask, poison, cot = _batch(STEPS)
    z = model.enc(x) + poison
    out = model.vq(z, mask=mask)
    good = (cot == 0).all(-1)
    probe = torch.where(good[:, None], torch.randn(ROWS, DIM, generator=_gen(3)), 0.0)
    (grad,) = torch.autograd.grad(out.values, _book(model), probe)
    assert grad.abs().sum() > 0
