"""``torch.compile`` smoke tests of the torch layers (CPU)."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

import diveq.backends.torch as dq  # noqa: E402
from diveq._ops import OPS, OPS_BY_NAME  # noqa: E402

# array-api-compat's namespace lookup is lru_cached: dynamo traces through it and says so;
# torch's own compile path touches the deprecated torch.jit.script_method.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
]

INDUCTOR = pytest.param(
    "inductor",
    marks=[
        pytest.mark.slow,
        pytest.mark.skipif(
            os.environ.get("DIVEQ_SLOW") != "1",
            reason="inductor's cold compile takes about a minute on 2 CPUs; set DIVEQ_SLOW=1",
        ),
    ],
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _step(layer, optimiser, z, generator):
    optimiser.zero_grad()
    out = layer(z, generator=generator)
    loss = (out.values - 0.5 * z).pow(2).mean()
    loss.backward()
    optimiser.step()
    return out


@pytest.mark.parametrize("backend", ["aot_eager", INDUCTOR])
def test_compiled_training_step_matches_eager(backend):
    torch._dynamo.reset()
    eager = dq.DiVeQ(16, 8, noise_std=0.0, replacement_iters=2)
    compiled = dq.DiVeQ(16, 8, noise_std=0.0, replacement_iters=2)
    compiled.load_state_dict(eager.state_dict())
    opt_e = torch.optim.SGD(eager.parameters(), lr=0.1)
    opt_c = torch.optim.SGD(compiled.parameters(), lr=0.1)
    step = torch.compile(_step, backend=backend)
    for i in range(4):  # crosses two replacement windows
        z = torch.randn(32, 8, generator=_gen(i))
        a = _step(eager, opt_e, z, _gen(100 + i))
        b = step(compiled, opt_c, z, _gen(100 + i))
        assert torch.equal(a.indices, b.indices)
        torch.testing.assert_close(a.values, b.values)
        torch.testing.assert_close(a.perplexity, b.perplexity)
    torch.testing.assert_close(eager.codebook, compiled.codebook)
    assert torch.equal(eager.hits, compiled.hits) and compiled.train_calls == 4


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
