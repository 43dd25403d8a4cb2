"""JAX layers under faults (issue 7, item 2): keys, checkpoints, bfloat16 and bad rows.

Every layer kind trains inside a tiny auto-encoder (dense encoder and decoder, optax Adam) in a
jitted step for ``STEPS`` calls. The settings make both training-state events fire within the
run: dead-code replacement every 3 calls (DiVeQ and composites; composite SF during its warm-up
only) and the SF warm-up init at call 5 (rows of calls 4 and 5). Every batch has two masked
rows and two non-finite rows, and each step also pulls a cotangent on those rows alone back to
the codebook (the ``probe``), which must be exactly zero.

Each (layer, codebook dtype, ``z`` dtype) step is jitted once per module (``_stepper``) and
reused by every test: 6 float32 steps, 4 with bf16 ``z`` and 3 fully bf16 ones.
"""

from __future__ import annotations

import functools
import io
from typing import Any, NamedTuple

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")

import jax
import jax.numpy as jnp
import optax
from _fault_schedule import DIM, EVENTS, IN, INIT_CALL, ROWS, SPECS, STEPS, build

import diveq.backends.jax as dq
import diveq.reference as ref

KINDS = {
    name: functools.partial(build, dq, name, **({"rows_per_call": ROWS} if "sf" in name else {}))
    for name in SPECS
}
F32, BF16 = jnp.float32, jnp.bfloat16


class Batch(NamedTuple):
    x: jax.Array
    mask: jax.Array
    poison: jax.Array  # added to z: NaN / inf entries make rows non-finite
    cot: jax.Array  # nonzero on the bad rows only


def _batch(step: int, drop: bool = False) -> Batch:
    rng = np.random.default_rng(100 + step)
    mask = np.ones(ROWS, dtype=bool)
    mask[[step % ROWS, (step + 5) % ROWS]] = False
    poison = np.zeros((ROWS, DIM), dtype=np.float32)
    poison[(step + 2) % ROWS, 1] = np.nan
    poison[(step + 8) % ROWS, 0] = np.inf
    bad = ~mask | ~np.isfinite(poison).all(-1)
    cot = np.where(bad[:, None], rng.standard_normal((ROWS, DIM)), 0.0).astype(np.float32)
    if drop:  # an all-masked call
        mask[:] = False
    x = rng.standard_normal((ROWS, IN)).astype(np.float32)
    return Batch(jnp.asarray(x), jnp.asarray(mask), jnp.asarray(poison), jnp.asarray(cot))


class Aux(NamedTuple):
    loss: jax.Array
    out: Any
    grads: Any
    probe: jax.Array  # codebook cotangent of `cot`
    z: jax.Array
    after: jax.Array  # codebook after the call, before the optimiser update


@functools.cache
def _stepper(name: str, book_dtype: Any = F32, z_dtype: Any = F32):
    layer = KINDS[name](dtype=book_dtype)
    opt = optax.adam(0.05)

    def step(params, rest, opt_state, batch, key):
        def f(params):
            w_enc, w_dec, book = params
            z = (batch.x @ w_enc).astype(z_dtype) + batch.poison.astype(z_dtype)
            valid = batch.mask & jnp.all(jnp.isfinite(z), axis=-1)
            out, new = layer.apply(dq.merge_params(book, rest), z, key=key, mask=batch.mask)
            v = jnp.where(valid[:, None], out.values, 0).astype(F32)
            err = jnp.sum((v @ w_dec - batch.x) ** 2, axis=-1)
            loss = jnp.sum(jnp.where(valid, err, 0.0)) / jnp.maximum(jnp.sum(valid), 1)
            return (loss, out.values), (out, new, z)

        (loss, values), pull, (out, new, z) = jax.vjp(f, params, has_aux=True)
        (grads,) = pull((jnp.ones_like(loss), jnp.zeros_like(values)))
        (probe,) = pull((jnp.zeros_like(loss), batch.cot.astype(values.dtype)))
        book, rest = dq.split_params(new)  # holds this call's replacement / init
        params = (params[0], params[1], book)
        updates, opt_state = opt.update(grads, opt_state, params)
        aux = Aux(loss, out, grads, probe[2], z, book)
        return optax.apply_updates(params, updates), rest, opt_state, aux

    return layer, opt, jax.jit(step)


class Run(NamedTuple):
    params: Any
    rest: Any
    opt_state: Any
    key: jax.Array
    calls: int


def _start(name: str, seed: int, book_dtype: Any = F32, z_dtype: Any = F32) -> Run:
    layer, opt, _ = _stepper(name, book_dtype, z_dtype)
    k_book, key = jax.random.split(jax.random.key(seed))
    book, rest = dq.split_params(layer.init(k_book))
    rng = np.random.default_rng(seed)
    w_enc = jnp.asarray(rng.standard_normal((IN, DIM)) * 0.5, dtype=F32)
    w_dec = jnp.asarray(rng.standard_normal((DIM, IN)) * 0.5, dtype=F32)
    params = (w_enc, w_dec, book)
    return Run(params, rest, opt.init(params), key, 0)


class Record(NamedTuple):
    aux: Aux
    before: jax.Array  # codebook before the call
    valid: np.ndarray

    @property
    def moved(self) -> bool:
        return not np.array_equal(self.before, self.aux.after)


def _advance(run: Run, name: str, steps: int, dtypes=(F32, F32), drop=()) -> tuple[Run, list]:
    *_, step = _stepper(name, *dtypes)
    params, rest, opt_state, key, calls = run
    recs = []
    for i in range(calls, calls + steps):
        batch = _batch(i, drop=i in drop)
        key, sub = jax.random.split(key)
        before = params[2]
        params, rest, opt_state, aux = step(params, rest, opt_state, batch, sub)
        valid = np.asarray(batch.mask) & np.isfinite(np.asarray(aux.z, dtype=np.float32)).all(-1)
        recs.append(Record(aux, before, valid))
    return Run(params, rest, opt_state, key, calls + steps), recs


def _train(name: str, seed: int = 0, dtypes=(F32, F32)) -> tuple[Run, list[Record]]:
    return _advance(_start(name, seed, *dtypes), name, STEPS, dtypes)


def _bytes(tree: Any) -> list[tuple[str, tuple[int, ...], bytes]]:
    """Every leaf as (dtype, shape, raw bytes): bitwise comparison, NaN included."""

    def raw(a: Any) -> np.ndarray:
        if isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a = jax.random.key_data(a)
        return np.asarray(a)

    return [(str(a.dtype), a.shape, a.tobytes()) for a in map(raw, jax.tree.leaves(tree))]


def _assert_counters(name: str, run: Run, recs: list[Record]) -> None:
    """``calls``, ``hits`` and ``calls_used`` count the valid rows since the last reset."""
    assert int(run.rest.calls) == len(recs)
    layer = KINDS[name]()
    k = layer.num_codes
    hits = np.zeros((layer.num_books, k), dtype=np.int64)
    used = np.zeros_like(hits)
    for call, r in enumerate(recs, start=1):
        idx = np.asarray(r.aux.out.indices).reshape(ROWS, -1)
        assert (idx[~r.valid] == -1).all()
        counts = np.stack([ref.code_usage(idx[:, m], k) for m in range(idx.shape[1])])
        hits, used = hits + counts, used + (counts > 0)
        if call in EVENTS[name]:
            hits, used = 0 * hits, 0 * used
    np.testing.assert_array_equal(np.reshape(run.rest.hits, hits.shape), hits)
    np.testing.assert_array_equal(np.reshape(run.rest.calls_used, used.shape), used)


def _assert_events_fired(name: str, recs: list[Record]) -> None:
    moved = {call for call, r in enumerate(recs, start=1) if r.moved}
    assert moved <= EVENTS[name], moved
    if "sf" in name:
        assert INIT_CALL in moved
    if name != "sf":
        assert 3 in moved  # the first window end replaced dead codes
    for r in recs:  # the bad rows alone send exactly nothing to the codebook
        assert not np.any(r.aux.probe)


@pytest.mark.parametrize("name", KINDS)
def test_fixed_key_gives_bit_identical_runs(name):
    run_a, recs_a = _train(name, seed=0)
    run_b, recs_b = _train(name, seed=0)
    assert _bytes((run_a, [tuple(r) for r in recs_a])) == _bytes(
        (run_b, [tuple(r) for r in recs_b])
    )
    _assert_events_fired(name, recs_a)
    _assert_counters(name, run_a, recs_a)
    for r in recs_a:
        assert np.isfinite(float(r.aux.loss))
        assert all(np.isfinite(g).all() for g in jax.tree.leaves(r.aux.grads))
    other, _ = _train(name, seed=1)
    assert not np.array_equal(other.params[2], run_a.params[2])  # the key matters


def _checkpoint(run: Run) -> bytes:
    leaves = jax.tree.leaves((run.params, run.rest, run.opt_state))
    buffer = io.BytesIO()
    np.savez(buffer, jax.random.key_data(run.key), *map(np.asarray, leaves))
    return buffer.getvalue()


def _restore(data: bytes, like: Run, calls: int) -> Run:
    treedef = jax.tree.structure((like.params, like.rest, like.opt_state))
    with np.load(io.BytesIO(data)) as arrays:
        loaded = [jnp.asarray(arrays[f"arr_{i}"]) for i in range(len(arrays.files))]
    params, rest, opt_state = jax.tree.unflatten(treedef, loaded[1:])
    return Run(params, rest, opt_state, jax.random.wrap_key_data(loaded[0]), calls)


@pytest.mark.parametrize("name", KINDS)
def test_checkpoint_mid_window_and_mid_warmup_continues_bit_identically(name):
    full, recs = _train(name, seed=0)
    mid, first = _advance(_start(name, 0), name, 4)  # mid window (4 % 3), SF: slot 1 filled
    assert _bytes([tuple(r) for r in first]) == _bytes([tuple(r) for r in recs[:4]])
    if name != "sf":
        assert int(np.sum(mid.rest.hits)) > 0
    if "sf" in name:
        assert np.any(mid.rest.buffer_valid) and not np.all(mid.rest.buffer_valid)
    data = _checkpoint(mid)
    restored = _restore(data, _start(name, 123), calls=4)  # other weights, other key
    end, rest = _advance(restored, name, STEPS - 4)
    assert _bytes((end, [tuple(r) for r in rest])) == _bytes((full, [tuple(r) for r in recs[4:]]))
    _assert_events_fired(name, recs)


# Every jitted step costs a compile (~1-3 s), so the bf16 cases cover each code path once:
# composite SF layers run composite DiVeQ with replacement during their warm-up (calls 1-4).
BF16_CASES = [(name, F32) for name in ("diveq", "sf", "product_sf", "residual_sf")] + [
    (name, BF16) for name in ("diveq", "sf", "residual_sf")
]


@pytest.mark.parametrize(
    ("name", "book_dtype"),
    BF16_CASES,
    ids=[f"{n}-{'bf16_state' if d is BF16 else 'f32_codebook'}" for n, d in BF16_CASES],
)
def test_bfloat16_latents_in_a_jitted_step(name, book_dtype):
    """bf16 ``z`` (the encoder's output cast down) with a float32 codebook, and a fully bf16
    layer (``dtype=jnp.bfloat16``: codebook and warm-up buffer). Observed: ``values`` are
    bf16 like ``z``; the codebook and its gradient keep the layer dtype; the perplexity has
    JAX's default float dtype (float64 here: the test session enables x64)."""
    run, recs = _train(name, dtypes=(book_dtype, BF16))
    for r in recs:
        assert r.aux.z.dtype == BF16 and r.aux.out.values.dtype == BF16
        assert r.aux.out.perplexity.dtype == jnp.result_type(float)
        assert np.isfinite(float(r.aux.loss))
        assert r.aux.grads[2].dtype == book_dtype and r.aux.grads[0].dtype == F32
        assert all(np.isfinite(np.asarray(g, np.float32)).all() for g in r.aux.grads)
    book = run.params[2]
    assert book.dtype == book_dtype and np.isfinite(np.asarray(book, np.float32)).all()
    buffer = run.rest.buffer  # the warm-up rows as their bits; None without a warm-up
    assert buffer is None or buffer.dtype.itemsize == jnp.dtype(book_dtype).itemsize
    _assert_events_fired(name, recs)
    _assert_counters(name, run, recs)


def _latents(name: str, r: Record) -> np.ndarray:
    """What each codebook quantised in call ``r``, ``(N, M, D')``, float64."""
    z = np.asarray(r.aux.z, dtype=np.float64)
    if name == "sf":
        return z[:, None, :]
    if name == "product_sf":
        return z.reshape(len(z), 2, -1)
    idx = np.maximum(np.asarray(r.aux.out.indices)[:, 0], 0)
    return np.stack([z, z - np.asarray(r.before[0], np.float64)[idx]], axis=1)


def _assert_init(name: str, init: Record, kept: list[Record]) -> None:
    """The init call's codebook is the warm-up init of the valid rows kept."""
    latents = np.concatenate([_latents(name, r) for r in kept])
    valid = np.concatenate([r.valid for r in kept])
    k = KINDS[name]().num_codes
    books = np.reshape(np.asarray(init.aux.after, np.float64), (-1, k, latents.shape[2]))
    assert init.moved
    for m in range(latents.shape[1]):
        want = ref.warmup_codebook(latents[valid, m], k)
        np.testing.assert_allclose(books[m], want, rtol=1e-5, atol=1e-6)
        if (~valid).any():
            dirty = ref.warmup_codebook(np.nan_to_num(latents[:, m], posinf=0.0), k)
            assert not np.allclose(want, dirty, atol=1e-3)  # the bad rows would matter


@pytest.mark.parametrize("name", ["sf", "product_sf", "residual_sf"])
def test_warmup_init_uses_the_valid_rows_only(name):
    _, recs = _train(name)
    assert (~recs[3].valid).sum() == 4 and (~recs[4].valid).sum() == 4
    _assert_init(name, recs[INIT_CALL - 1], recs[INIT_CALL - 2 : INIT_CALL])


@pytest.mark.parametrize("name", KINDS)
def test_all_masked_call_only_counts_the_call(name):
    """An all-masked call passes ``z`` through (index -1, perplexity 1), sends no codebook
    gradient and changes no state leaf but ``calls``; during the SF warm-up it keeps no
    valid row, so the init uses the other kept call only."""
    run, _ = _advance(_start(name, 0), name, 1)
    snapshot = run.rest
    run, (rec,) = _advance(run, name, 1, drop={1})  # call 2: not a window end
    assert _bytes(rec.aux.out.values) == _bytes(rec.aux.z)
    assert np.all(rec.aux.out.indices == -1) and float(rec.aux.out.perplexity) == 1.0
    assert not np.any(rec.aux.grads[2]) and not rec.moved
    assert int(run.rest.calls) == 2
    assert _bytes(run.rest._replace(calls=0)) == _bytes(snapshot._replace(calls=0))
    if "sf" in name:
        run, recs = _advance(run, name, 3, drop={3})  # calls 3, 4 (all masked), 5 (init)
        _assert_init(name, recs[-1], recs[-1:])


def _layout(width: int, k: int, scale: float = 1.0) -> np.ndarray:
    """Codes 0, 1 for the valid rows; 2 at the origin (where non-finite rows are searched
    from); 3 for the masked rows; the rest far away."""
    e0, e1 = np.eye(width)[:2]
    far = [(100.0 + 10 * j) * (e0 + e1) for j in range(k - 4)]
    return np.stack([3 * e0, -3 * e0, 0 * e0, 30 * e1, *far]) * scale


@pytest.mark.parametrize("name", ["diveq", "product", "residual", "product_sf", "residual_sf"])
def test_replacement_never_takes_donors_hit_only_by_bad_rows(name):
    """Masked rows sit on code 3, non-finite rows are searched as zeros (code 2), valid rows
    on codes 0 and 1; ``x = 0`` so ``z`` is the poison exactly. Had the bad rows been
    counted, the dead codes (drawn by hits) would pick them as donors."""
    layer = KINDS[name]()
    k = layer.num_codes
    width = DIM // layer.num_books if name.startswith("product") else DIM
    e0, e1 = np.eye(DIM)[:2]
    books = np.stack([_layout(width, k)] * layer.num_books)
    pos, neg, masked = 3 * e0, -3 * e0, 30 * e1
    if name.startswith("product"):
        pos, neg, masked = (np.concatenate([v[:2]] * 2) for v in (pos, neg, masked))
    if name.startswith("residual"):  # stage 1 quantises z - C_0[k_0]
        books[1] = _layout(width, k, 1 / 6)
        pos, neg, masked = 3.5 * e0, -3.5 * e0, 35 * e1
    z = np.stack([pos, neg] * 4 + [masked, masked, pos, neg]).astype(np.float32)
    z[8, 1] = z[9, 0] = np.nan  # rows 8, 9: non-finite
    mask = np.ones(ROWS, dtype=bool)
    mask[[10, 11]] = False  # finite rows that would hit code 3 (pos / neg were overwritten)
    z[10], z[11] = masked, masked
    batch = Batch(jnp.zeros((ROWS, IN), F32), jnp.asarray(mask), jnp.asarray(z), jnp.zeros_like(z))
    *_, step = _stepper(name, F32, F32)
    run = _start(name, 0)
    book = jnp.asarray(books.reshape(run.params[2].shape), dtype=F32)
    params = (run.params[0], run.params[1], book)
    state = (params, run.rest, run.opt_state)
    keys = jax.random.split(jax.random.key(5), 3)
    for call in (1, 2, 3):  # call 3 ends the window
        before = state[0][2]
        *state, aux = step(*state, batch, keys[call - 1])
        if call == 2:
            hits = np.reshape(state[1].hits, (-1, k))
            want = np.zeros_like(hits)
            want[:, :2] = 8
            np.testing.assert_array_equal(hits, want)
    old = np.reshape(np.asarray(before), (-1, k, width))
    new = np.reshape(np.asarray(aux.after), (-1, k, width))
    np.testing.assert_array_equal(new[:, :2], old[:, :2])
    for m in range(len(old)):
        gaps = np.linalg.norm(new[m, 2:, None] - old[m, None], axis=-1)  # (K - 2, K)
        donors = set(np.argmin(gaps, axis=-1).tolist())
        assert donors == {0, 1} and gaps.min(-1).max() < 1e-5, (donors, gaps.min(-1))
    assert not np.any(state[1].hits)


@pytest.mark.parametrize("name", KINDS)
def test_good_rows_do_reach_the_codebook(name):
    """Control for the per-step probe (bad rows send exactly zero): the same probe on the
    good rows gives a nonzero codebook gradient."""
    run, _ = _train(name)
    *_, step = _stepper(name, F32, F32)
    batch = _batch(STEPS)
    good = np.asarray(batch.cot == 0).all(-1)
    cot = np.where(good[:, None], np.random.default_rng(3).standard_normal((ROWS, DIM)), 0.0)
    batch = batch._replace(cot=jnp.asarray(cot, dtype=F32))
    *_, aux = step(run.params, run.rest, run.opt_state, batch, run.key)
    assert np.any(aux.probe)
