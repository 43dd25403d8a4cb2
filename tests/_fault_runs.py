"""The training run the fault tests share (``test_layer_faults.py`` and the per-framework
bfloat16 tests in ``test_torch_faults.py`` / ``test_jax_faults.py``), over a layer driver.

Every layer kind trains for ``STEPS`` calls, each followed by a plain gradient step on its
codebook. The settings make both training-state events fire within the run: dead-code
replacement every 3 calls (DiVeQ and composites; composite SF during its warm-up only; the last
code starts far from every latent, so the first window end always replaces it) and the SF
warm-up init at call 5 from the rows of calls 4 and 5. Every batch has two masked rows and two
non-finite rows. Each call pulls back two cotangents: a random one on the good rows (the
gradient step) and a probe on the bad rows alone, whose codebook gradient must be exactly zero.
The draws come from the driver's random source (torch generator, JAX key) seeded at build, so
the seed fixes a whole run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

import diveq.reference as ref
from diveq.testing import LayerDriver

STEPS, ROWS, DIM, LR = 10, 12, 4, 0.05
INIT_CALL = 5  # the SF warm-up init: skip_iters - 1
SF_OPTS: dict[str, Any] = {"skip_iters": 6, "avg_iters": 2}

# name -> (class, positional arguments, options)
SPECS: dict[str, tuple[str, tuple[int, ...], dict[str, Any]]] = {
    "diveq": ("DiVeQ", (16, DIM), {"replacement_iters": 3}),
    "sf": ("SFDiVeQ", (4, DIM), SF_OPTS),
    "product": ("ProductDiVeQ", (2, 8, DIM), {"replacement_iters": 3}),
    "residual": ("ResidualDiVeQ", (2, 8, DIM), {"replacement_iters": 3}),
    "product_sf": (
        "ProductDiVeQ",
        (2, 8, DIM),
        {"space_filling": True, "replacement_iters": 3, **SF_OPTS},
    ),
    "residual_sf": (
        "ResidualDiVeQ",
        (2, 8, DIM),
        {"space_filling": True, "replacement_iters": 3, **SF_OPTS},
    ),
}
SF_KINDS = [name for name in SPECS if "sf" in name]

#: train-mode calls whose forward may rewrite the codebook and reset the counters
EVENTS = {
    "diveq": {3, 6, 9},
    "sf": {INIT_CALL},
    "product": {3, 6, 9},
    "residual": {3, 6, 9},
    "product_sf": {3, INIT_CALL},
    "residual_sf": {3, INIT_CALL},
}


def book_shape(name: str) -> tuple[int, ...]:
    """The codebook's layout: ``(K, D)`` or ``(M, K, D')``."""
    cls, args, _ = SPECS[name]
    if len(args) == 2:
        return args
    m, k, d = args
    return (m, k, d // m if cls == "ProductDiVeQ" else d)


def start(
    driver: LayerDriver, name: str, seed: int = 0, codebook: Any = None, **options: Any
) -> Any:
    """Layer ``name`` (float32 unless ``options`` say otherwise) with the run's initial
    codebook (or ``codebook``), its draws seeded with ``seed``."""
    cls, args, base = SPECS[name]
    if codebook is None:
        shape = book_shape(name)
        codebook = np.random.default_rng(7).uniform(-1 / shape[-2], 1 / shape[-2], shape)
        codebook[..., -1, :] += 40.0  # dead until the first window end replaces it
    return driver.build(cls, args, {**base, "dtype": "float32", **options}, codebook, seed=seed)


class Batch(NamedTuple):
    z: np.ndarray
    mask: np.ndarray
    good: np.ndarray  # random cotangent on the valid rows, zero elsewhere
    bad: np.ndarray  # random cotangent on the masked / non-finite rows, zero elsewhere
    valid: np.ndarray


def batch(step: int, drop: bool = False, dtype: Any = np.float32) -> Batch:
    """Call ``step + 1``'s latents (``dtype``), mask and cotangents; ``drop``: all masked."""
    rng = np.random.default_rng(100 + step)
    z = rng.standard_normal((ROWS, DIM))
    z[(step + 2) % ROWS, 1] = np.nan
    z[(step + 8) % ROWS, 0] = np.inf
    z = z.astype(dtype)
    mask = np.ones(ROWS, dtype=bool)
    mask[[step % ROWS, (step + 5) % ROWS]] = False
    if drop:
        mask[:] = False
    valid = mask & np.isfinite(z.astype(np.float64)).all(-1)
    g = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    return Batch(z, mask, np.where(valid[:, None], g, 0), np.where(valid[:, None], 0, g), valid)


class Call(NamedTuple):
    """One train-mode call of a run."""

    z: np.ndarray
    valid: np.ndarray
    out: dict[str, np.ndarray]
    grads: tuple[np.ndarray, np.ndarray]  # (dz, dcodebook) of the good rows' cotangent
    probe: tuple[np.ndarray, np.ndarray]  # (dz, dcodebook) of the bad rows' cotangent
    before: dict[str, np.ndarray]  # canonical state before the call
    after: dict[str, np.ndarray]  # after the call, before the gradient step

    @property
    def moved(self) -> bool:
        """Whether the forward itself rewrote the codebook (replacement or SF init)."""
        return not np.array_equal(self.before["codebooks"], self.after["codebooks"])


def advance(
    driver: LayerDriver, handle: Any, steps: Iterable[int], drop: Iterable[int] = (), **kw: Any
) -> list[Call]:
    """Run the calls ``step + 1`` for ``steps``, each with its gradient step (``drop``: the
    steps whose call is all masked; ``kw``: :func:`batch` options)."""
    calls, dropped = [], set(drop)
    for step in steps:
        b = batch(step, drop=step in dropped, **kw)
        before = driver.state(handle)
        out, (grads, probe) = driver.call(handle, b.z, b.mask, None, True, [b.good, b.bad])
        after = driver.state(handle)
        driver.descend(handle, grads[1], LR)
        calls.append(Call(b.z, b.valid, out, grads, probe, before, after))
    return calls


def same(a: Any, b: Any) -> bool:
    """Bitwise equality of arrays in nested containers (NaN == NaN, -0.0 != 0.0)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_clean(calls: list[Call]) -> None:
    """Every call: the bad rows alone send exactly nothing to the codebook; the valid rows'
    values and every gradient are finite."""
    for i, c in enumerate(calls, start=1):
        assert not np.any(c.probe[1]), f"call {i}: bad rows reached the codebook"
        values = np.asarray(c.out["values"], dtype=np.float64)
        assert np.isfinite(values[c.valid]).all(), i
        for g in (*c.grads, *c.probe):
            assert np.isfinite(np.asarray(g, dtype=np.float64)).all(), i


def assert_events_fired(name: str, calls: list[Call]) -> None:
    moved = {i for i, c in enumerate(calls, start=1) if c.moved}
    assert moved <= EVENTS[name], moved  # the forward rewrites the codebook only at events
    if "sf" in name:
        assert INIT_CALL in moved
    if name != "sf":
        assert 3 in moved  # the first window end replaced the dead code


def assert_counters(name: str, state: dict[str, np.ndarray], calls: list[Call]) -> None:
    """``calls`` counts the calls; ``hits`` / ``calls_used`` count the valid rows of the calls
    since the last reset (every window end and the SF init)."""
    assert int(state["calls"]) == len(calls)
    hits = np.zeros_like(state["hits"])
    used = np.zeros_like(hits)
    k = hits.shape[1]
    for i, c in enumerate(calls, start=1):
        idx = np.reshape(c.out["indices"], (ROWS, -1))
        assert (idx[~c.valid] == -1).all()
        counts = np.stack([ref.code_usage(idx[:, m], k) for m in range(idx.shape[1])])
        hits, used = hits + counts, used + (counts > 0)
        if i in EVENTS[name]:
            hits, used = 0 * hits, 0 * used
    np.testing.assert_array_equal(state["hits"], hits)
    np.testing.assert_array_equal(state["calls_used"], used)


def latents(name: str, c: Call) -> np.ndarray:
    """What each codebook quantised in call ``c``, ``(N, M, D')``, float64."""
    z = np.asarray(c.z, dtype=np.float64)
    if name == "sf":
        return z[:, None, :]
    if name == "product_sf":
        return z.reshape(len(z), 2, -1)
    idx = np.maximum(np.reshape(c.out["indices"], (ROWS, -1))[:, 0], 0)
    return np.stack([z, z - c.before["codebooks"][0][idx]], axis=1)


def assert_init(name: str, init: Call, kept: list[Call]) -> None:
    """The init call's codebooks are the warm-up init of the valid rows of the ``kept`` calls,
    and the bad rows would have made a difference."""
    rows = np.concatenate([latents(name, c) for c in kept])
    valid = np.concatenate([c.valid for c in kept])
    books = init.after["codebooks"]
    assert init.moved
    for m in range(rows.shape[1]):
        want = ref.warmup_codebook(rows[valid, m], books.shape[1])
        np.testing.assert_allclose(books[m], want, rtol=1e-5, atol=1e-6)
        if (~valid).any():
            dirty = ref.warmup_codebook(np.nan_to_num(rows[:, m], posinf=0.0), books.shape[1])
            assert not np.allclose(want, dirty, atol=1e-3)
