"""``torch.compile`` smoke tests of the torch layers (CPU)."""

from __future__ import annotations

import copy
import os

import pytest

torch = pytest.importorskip("torch")

from torch._dynamo.testing import CompileCounterWithBackend  # noqa: E402

import diveq.backends.torch as dq  # noqa: E402
from diveq._ops import OPS, OPS_BY_NAME  # noqa: E402

# array-api-compat's namespace lookup is lru_cached: dynamo traces through it and says so;
# torch's own compile path touches the deprecated torch.jit.script_method.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
]

SLOW = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("DIVEQ_SLOW") != "1",
        reason="inductor's cold compile of a training step takes minutes on 2 CPUs: "
        "set DIVEQ_SLOW=1",
    ),
]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


N, D, K, M = 12, 4, 8, 2

#: Every layer kind with a short schedule: windows end at calls 2, 4, 6; SF kinds keep the rows
#: of calls 2 and 3, initialise at call 3 and quantise from call 4.
KINDS = {
    "DiVeQ": lambda: dq.DiVeQ(K, D, replacement_iters=2),
    "SFDiVeQ": lambda: dq.SFDiVeQ(K, D, skip_iters=4, avg_iters=2),
    "ProductDiVeQ": lambda: dq.ProductDiVeQ(M, K, D, replacement_iters=2),
    "ResidualDiVeQ-SF": lambda: dq.ResidualDiVeQ(
        M, K, D, space_filling=True, skip_iters=4, avg_iters=2, replacement_iters=2
    ),
}
STEPS = 6


class _Model(torch.nn.Module):
    """encoder -> layer -> decoder."""

    def __init__(self, vq):
        super().__init__()
        self.enc, self.vq, self.dec = torch.nn.Linear(6, D), vq, torch.nn.Linear(D, 6)

    def forward(self, x, mask, draws):
        out = self.vq(self.enc(x), mask, draws=draws)
        return self.dec(out.values), out


def _loss(model, x, mask, draws):
    y, out = model(x, mask, draws)
    return (y - x).square().mean(), out


def _draws(spec, seed):
    """Explicit draws for one call (a compiled call cannot read a torch.Generator)."""
    g = _gen(seed)
    two = spec.space_filling and not spec.composite
    book = (M,) if spec.composite else ()
    return dq.LayerDraws(
        noise=torch.randn((2, N, D) if two else (N, D), generator=g),
        dither=torch.rand((*book, K - 1), generator=g) if spec.space_filling else None,
        donors=torch.rand((*book, K), generator=g),
        perturbation=torch.randn((*book, K, spec.width), generator=g),
    )


def _train(model, loss_fn, calls):
    """Train-mode steps ``calls`` (SGD: stateless, so a run may be split); per step what the
    step returned and the model state after it, and whether the forward changed the codebooks
    (a replacement or the SF init)."""
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    seen, changed = [], []
    for call in calls:
        x = torch.randn(N, 6, generator=_gen(call))
        mask = torch.arange(N) != call  # one masked row per call
        before = model.vq._param().detach().clone()
        optimiser.zero_grad()
        loss, out = loss_fn(model, x, mask, _draws(model.vq.spec, 100 + call))
        changed.append(not torch.equal(before, model.vq._param()))
        loss.backward()
        optimiser.step()
        state = {k: v.detach().clone() for k, v in model.state_dict().items() if "extra" not in k}
        seen.append((loss.detach(), *(t.detach() for t in out), state))
    return seen, changed


@pytest.mark.parametrize(
    ("kind", "backend"),
    [(kind, "aot_eager") for kind in KINDS]
    + [pytest.param("ResidualDiVeQ-SF", "inductor", marks=SLOW)],
)
def test_compiled_training_step_equals_eager(kind, backend):
    """A whole encoder -> layer -> decoder step compiles to one graph (``fullgraph=True``: no
    graph break, so no host sync; AOT autograd compiles the backward too) and, through
    replacement windows and an SF warm-up + init, gives the eager run's values, indices,
    perplexity, loss, codebooks, counters and call count: bitwise with ``aot_eager``, to float
    tolerance with ``inductor``. After the first calls it never recompiles."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = _Model(KINDS[kind]())
    compiled = copy.deepcopy(eager)
    counter = CompileCounterWithBackend(backend)
    step = torch.compile(_loss, fullgraph=True, backend=counter)
    want, changed = _train(eager, _loss, range(1, STEPS + 1))
    got, _ = _train(compiled, step, range(1, 3))
    frames = counter.frame_count  # SF kinds: the first call allocates the warm-up buffer
    got += _train(compiled, step, range(3, STEPS + 1))[0]
    assert frames <= 2 and counter.frame_count == frames
    same = torch.equal if backend == "aot_eager" else _close
    for a, b in zip(want, got, strict=True):
        assert a[-1].keys() == b[-1].keys()
        for x, y in zip([*a[:-1], *a[-1].values()], [*b[:-1], *b[-1].values()], strict=True):
            assert same(x, y), kind
    spec = eager.vq.spec
    if spec.space_filling:  # the warm-up init (call 3), replacements only while warming up
        assert changed[2] and not any(changed[3:])
    else:
        assert any(changed[1::2]) and not any(changed[0::2])  # replacements at window ends
    assert compiled.vq.train_calls == STEPS and compiled.vq.warmed_up


def _close(x, y):
    if not x.is_floating_point():
        return torch.equal(x, y)
    torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)
    return True


def test_eval_compiles_to_one_graph():
    torch._dynamo.reset()
    layer = dq.ResidualDiVeQ(2, 8, 4, space_filling=True, skip_iters=0, feature_axis=1).eval()
    z = torch.randn(2, 4, 5, 3)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    out, want = compiled(z), layer(z)
    assert torch.equal(out.indices, want.indices)
    torch.testing.assert_close(out.values, want.values)


@pytest.mark.parametrize("name", [op.name for op in OPS if op.noise_std])
def test_estimators_compile_to_one_graph_without_host_syncs(name):
    """``fullgraph=True`` fails on any graph break, and a host sync (``.item()``, ``.cpu()``,
    data-dependent Python control flow) is one: the estimators never leave the device."""
    torch._dynamo.reset()
    fn = getattr(dq, name)
    z = torch.randn(2, 7, 4, generator=_gen(0), requires_grad=True)
    shape = OPS_BY_NAME[name].book_shape(2, 5, 4)
    books = torch.randn(*shape, generator=_gen(1), requires_grad=True)

    def forward(z, books):
        return fn(z, books, noise_std=1e-2).values  # draws from torch's default generator

    def grads(run):
        torch.manual_seed(2)
        return torch.autograd.grad(run(z, books).square().sum(), (z, books))

    # the forward is one graph, and AOT autograd compiles its backward as one graph too
    got = grads(torch.compile(forward, fullgraph=True, backend="aot_eager"))
    for a, b in zip(got, grads(forward), strict=True):
        torch.testing.assert_close(a, b)


def test_draws_compile_with_dynamic_shapes():
    """torch's default generator draws under symbolic shapes: a second batch size recompiles
    once, dynamically, instead of failing."""
    torch._dynamo.reset()
    books = torch.randn(5, 4, generator=_gen(1))

    def forward(z):
        return dq.diveq(z, books, noise_std=1e-2).values

    step = torch.compile(forward, fullgraph=True, backend="aot_eager", dynamic=True)
    for n in (3, 7):
        z = torch.randn(n, 4, generator=_gen(n))
        torch.manual_seed(n)
        got = step(z)
        torch.manual_seed(n)
        torch.testing.assert_close(got, forward(z))
