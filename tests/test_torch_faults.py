"""torch-only faults (issue 7, item 2): autocast, and torch's default generator. The faults
every backend shares (seeds, checkpoints, bad rows) are in ``test_layer_faults.py``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import _fault_runs as runs
import torch

import diveq.backends.torch as dq
import diveq.reference as ref
from diveq.testing import TorchLayerDriver


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", runs.SPECS)
def test_autocast_bfloat16_training(name):
    """Under CPU autocast an encoder emits bf16 ``z``. Observed: ``values`` (and SF
    ``weights``) are bf16 like ``z``, and so is its gradient; indices int64; perplexity
    float32; the codebook and its gradient stay float32."""
    bf16 = pytest.importorskip("ml_dtypes").bfloat16
    driver = TorchLayerDriver(autocast="bfloat16")
    handle = runs.start(driver, name)
    calls = runs.advance(driver, handle, range(runs.STEPS), dtype=bf16)
    for c in calls:
        out = c.out
        assert out["values"].dtype == bf16 and out["indices"].dtype == np.int64
        assert out["perplexity"].dtype == np.float32
        assert "weights" not in out or out["weights"].dtype == bf16
        assert c.grads[0].dtype == bf16 and c.grads[1].dtype == np.float32
    book = handle[0]._param()
    assert book.dtype == torch.float32 and torch.isfinite(book).all()
    runs.assert_clean(calls)
    runs.assert_events_fired(name, calls)
    runs.assert_counters(name, driver.state(handle), calls)


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


def test_without_a_generator_torch_manual_seed_fixes_the_draws():
    """``generator=None`` draws from torch's default generator: ``torch.manual_seed(s)`` gives
    the draws of ``generator=torch.Generator().manual_seed(s)``."""
    layer = dq.SFDiVeQ(8, 4, noise_std=0.1, skip_iters=0)
    z = torch.randn(32, 4, generator=_gen(0))
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        outs.append(layer(z))
    outs.append(layer(z, generator=_gen(3)))
    outs.append(layer(z, generator=_gen(4)))
    same = [torch.equal(outs[0].values, o.values) for o in outs[1:]]
    assert same == [True, True, False]
