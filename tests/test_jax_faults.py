"""JAX-only faults (issue 7, item 2): bfloat16 latents and state in a jitted step. The faults
every backend shares (seeds, checkpoints, bad rows) are in ``test_layer_faults.py``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

import _fault_runs as runs
import jax.numpy as jnp

from diveq.testing import JaxLayerDriver

BF16 = jnp.dtype(jnp.bfloat16)
DRIVER = JaxLayerDriver(jit=True)

# Every jitted step costs a compile (~1-3 s), so the cases cover each code path once:
# composite SF layers run composite DiVeQ with replacement during their warm-up (calls 1-4).
CASES = [(name, "float32") for name in ("diveq", "sf", "product_sf", "residual_sf")] + [
    (name, "bfloat16") for name in ("diveq", "sf", "residual_sf")
]


@pytest.mark.parametrize(
    ("name", "book_dtype"),
    CASES,
    ids=[f"{n}-{'bf16_state' if d == 'bfloat16' else 'f32_codebook'}" for n, d in CASES],
)
def test_bfloat16_latents_in_a_jitted_step(name, book_dtype):
    """bf16 ``z`` (an encoder's output cast down) with a float32 codebook, and a fully bf16
    layer (``dtype=jnp.bfloat16``: codebook and warm-up buffer). Observed: ``values`` and the
    gradient of ``z`` are bf16 like ``z``; the codebook and its gradient keep the layer dtype;
    the perplexity has JAX's default float dtype (float64 here: the test session enables
    x64)."""
    handle = runs.start(DRIVER, name, dtype=book_dtype)
    calls = runs.advance(DRIVER, handle, range(runs.STEPS), dtype=BF16)
    for c in calls:
        assert c.out["values"].dtype == BF16 and c.grads[0].dtype == BF16
        assert c.out["perplexity"].dtype == jnp.result_type(float)
        assert c.grads[1].dtype == book_dtype
    state = handle[1]
    assert state[0].dtype == book_dtype
    # the warm-up rows are kept as their bits (never a trainable leaf); None without a warm-up
    assert state.buffer is None or state.buffer.dtype.itemsize == jnp.dtype(book_dtype).itemsize
    assert np.isfinite(np.asarray(state[0], np.float32)).all()
    runs.assert_clean(calls)
    runs.assert_events_fired(name, calls)
    runs.assert_counters(name, DRIVER.state(handle), calls)
