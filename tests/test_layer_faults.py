"""Layers under faults (issue 7, item 2), on every backend: seeds, checkpoints and bad rows.

Every layer kind trains through the run of :mod:`_fault_runs` (replacement windows, the SF
warm-up and its init, masked and non-finite rows in every batch, a gradient step after every
call). The layer conformance kit (``test_layer_conformance.py``) already pins each call to the
reference with explicit draws in float64; these tests check, in float32 and with the backends'
own random draws, what a training run promises: a seed fixes it, a checkpoint anywhere resumes
it exactly, and bad rows never reach the codebook, its counters, its replacement or its init.
None of these is the kit's assertion again: the kit compares with the reference to 1e-10 given
the same draws; here the counters are recounted from the run's own indices, the bad rows'
codebook gradient must be exactly zero and runs must agree bit for bit.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
import pytest
from _fault_runs import (
    DIM,
    INIT_CALL,
    ROWS,
    SF_KINDS,
    SPECS,
    STEPS,
    Call,
    advance,
    assert_clean,
    assert_counters,
    assert_events_fired,
    assert_init,
    book_shape,
    same,
    start,
)


class Run(NamedTuple):
    calls: list[Call]
    state: dict[str, np.ndarray]  # after the last gradient step


@functools.cache
def _run(driver: Any, name: str, seed: int = 0) -> Run:
    """The whole run (shared by the tests of a module; never mutated)."""
    handle = start(driver, name, seed)
    calls = advance(driver, handle, range(STEPS))
    return Run(calls, driver.state(handle))


@pytest.mark.parametrize("name", SPECS)
def test_fixed_seed_gives_bit_identical_runs(layer, name):
    full = _run(layer, name)
    handle = start(layer, name)
    again = advance(layer, handle, range(STEPS))
    assert same(again, full.calls) and same(layer.state(handle), full.state)
    assert_clean(full.calls)
    assert_events_fired(name, full.calls)
    assert_counters(name, full.state, full.calls)
    assert len(full.state["warmup_rows"]) == 0  # SF: warmed up, the rows freed
    other = _run(layer, name, seed=1)
    assert not np.array_equal(other.state["codebooks"], full.state["codebooks"])  # seed matters


@pytest.mark.parametrize("name", SPECS)
def test_checkpoint_mid_window_and_mid_warmup_continues_bit_identically(layer, name):
    full = _run(layer, name)
    handle = start(layer, name)
    first = advance(layer, handle, range(4))  # mid window (4 % 3), SF: slot 1 of 2 filled
    assert same(first, full.calls[:4])
    mid = layer.state(handle)
    assert int(mid["calls"]) == 4
    if name in SF_KINDS:  # the valid rows of call 4, and nothing else
        assert len(mid["warmup_rows"]) == first[3].valid.sum() > 0
    if name != "sf":
        assert mid["hits"].any()  # counters of an unfinished window
    resumed = layer.restore(handle)  # a fresh layer and random source, from the checkpoint
    rest = advance(layer, resumed, range(4, STEPS))
    assert same(rest, full.calls[4:]) and same(layer.state(resumed), full.state)


@pytest.mark.parametrize("name", SF_KINDS)
def test_warmup_init_uses_the_valid_rows_only(layer, name):
    calls = _run(layer, name).calls
    kept = calls[INIT_CALL - 2 : INIT_CALL]  # calls 4 and 5
    assert all((~c.valid).sum() == 4 for c in kept)
    assert_init(name, calls[INIT_CALL - 1], kept)


@pytest.mark.parametrize("name", SPECS)
def test_all_masked_call_only_counts_the_call(layer, name):
    """An all-masked train-mode call passes ``z`` through (index -1, perplexity 1), sends no
    codebook gradient and changes no state but the call count; during the SF warm-up it adds
    no rows, so the init uses the other kept call only."""
    handle = start(layer, name)
    _, rec = advance(layer, handle, range(2), drop={1})  # call 2: not a window end
    assert same(rec.out["values"], rec.z) and (rec.out["indices"] == -1).all()
    assert float(rec.out["perplexity"]) == 1.0 and not rec.moved
    assert not np.any(rec.probe[1])  # the probe covers every row here
    assert int(rec.after["calls"]) == int(rec.before["calls"]) + 1
    assert same({**rec.after, "calls": rec.before["calls"]}, rec.before)
    if name in SF_KINDS:
        calls = advance(layer, handle, range(2, 5), drop={3})  # call 4 kept, nothing valid
        assert_init(name, calls[-1], calls[-1:])  # call 5: init from its own rows alone


@pytest.mark.parametrize("name", SPECS)
def test_good_rows_do_reach_the_codebook(layer, name):
    """Control for the per-call probe (bad rows send exactly zero): the good rows' cotangent
    of the last call (after the SF warm-up) gives a nonzero codebook gradient."""
    assert np.any(_run(layer, name).calls[-1].grads[1])


def _layout(width: int, k: int, scale: float = 1.0) -> np.ndarray:
    """Codes 0, 1 for the valid rows; 2 at the origin (where non-finite rows are searched
    from); 3 for the masked rows; the rest far away."""
    e0, e1 = np.eye(width)[:2]
    far = [(100.0 + 10 * j) * (e0 + e1) for j in range(k - 4)]
    return np.stack([3 * e0, -3 * e0, 0 * e0, 30 * e1, *far]) * scale


@pytest.mark.parametrize("name", [n for n in SPECS if n != "sf"])
def test_replacement_never_takes_donors_hit_only_by_bad_rows(layer, name):
    """Valid rows sit on codes 0 and 1, non-finite rows are searched as zeros (code 2) and
    masked rows sit on code 3. Had the bad rows been counted, codes 2 and 3 would survive the
    window end (or serve as donors); uncounted, every code but 0 and 1 is dead and replaced by
    a copy of one of them (``perturb_eps = 1e-9``)."""
    shape = book_shape(name)
    m, k, width = (1, *shape) if len(shape) == 2 else shape
    books = np.stack([_layout(width, k)] * m)
    e0, e1 = np.eye(DIM)[:2]
    pos, neg, masked = 3 * e0, -3 * e0, 30 * e1
    if name.startswith("product"):
        pos, neg, masked = (np.concatenate([v[:2]] * 2) for v in (pos, neg, masked))
    if name.startswith("residual"):  # stage 1 quantises z - C_0[k_0]
        books[1] = _layout(width, k, 1 / 6)
        pos, neg, masked = 3.5 * e0, -3.5 * e0, 35 * e1
    z = np.stack([pos, neg] * 4 + [masked] * 4).astype(np.float32)
    z[8, 1], z[9, 0] = np.nan, np.inf
    mask = np.arange(ROWS) < 10  # rows 10, 11: finite, masked out
    handle = start(layer, name, codebook=books.reshape(shape))
    zero = np.zeros_like(z)
    for call in (1, 2, 3):  # call 3 ends the window
        before = layer.state(handle)
        out, _ = layer.call(handle, z, mask, None, True, [zero, zero])
        assert (np.reshape(out["indices"], (ROWS, -1))[8:] == -1).all()
        after = layer.state(handle)
        if call < 3:
            want = np.zeros((m, k), dtype=np.int64)
            want[:, :2] = 4 * call
            np.testing.assert_array_equal(after["hits"], want)
            np.testing.assert_array_equal(after["calls_used"], (want > 0) * call)
    old, new = before["codebooks"], after["codebooks"]
    np.testing.assert_array_equal(new[:, :2], old[:, :2])
    donors: set[int] = set()
    for b in range(m):
        gaps = np.linalg.norm(new[b, 2:, None] - old[b, None], axis=-1)  # (K - 2, K)
        found = set(np.argmin(gaps, axis=-1).tolist())
        assert found <= {0, 1} and gaps.min(-1).max() < 1e-6, (found, gaps.min(-1))
        donors |= found
    assert donors == {0, 1}  # drawn by hits: both live codes serve
    assert not after["hits"].any() and not after["calls_used"].any()
