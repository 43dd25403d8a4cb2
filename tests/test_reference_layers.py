"""The reference layers: hand-checkable cases that pin the layer semantics (state machine,
warm-up, replacement, masks, draws, VJP, encode/decode, errors)."""

from __future__ import annotations

import numpy as np
import pytest

import diveq.reference as ref
from diveq import LayerDraws

RNG = np.random.default_rng(20260101)

KINDS = {
    "diveq": lambda **kw: ref.DiVeQ(4, 4, **kw),
    "sf": lambda **kw: ref.SFDiVeQ(4, 4, skip_iters=0, **kw),
    "product": lambda **kw: ref.ProductDiVeQ(2, 4, 4, **kw),
    "residual": lambda **kw: ref.ResidualDiVeQ(2, 4, 4, **kw),
    "product_sf": lambda **kw: ref.ProductDiVeQ(2, 4, 4, space_filling=True, skip_iters=0, **kw),
    "residual_sf": lambda **kw: ref.ResidualDiVeQ(2, 4, 4, space_filling=True, skip_iters=0, **kw),
}


def _draws(layer, n, *, rng=RNG):
    """Every draw a call of ``layer`` on ``n`` rows could need."""
    s = layer.spec
    m, k, w = s.num_codebooks, s.num_codes, s.width
    one_sf = s.space_filling and not s.composite
    book = (m, k) if s.composite else (k,)
    return LayerDraws(
        noise=rng.standard_normal((2, n, s.dim) if one_sf else (n, s.dim)),
        dither=rng.random((m, k - 1) if s.composite else (k - 1,)) if s.space_filling else None,
        donors=rng.random(book),
        perturbation=rng.standard_normal((*book, w)),
    )


# --- (a) dead-code replacement over two windows -------------------------------------------------


@pytest.mark.parametrize(("u", "donor"), [(0.1, 0), (0.74, 0), (0.76, 1), (0.9, 1)])
def test_dead_code_is_replaced_by_the_donor_of_the_uniform_and_counters_reset(u, donor):
    layer = ref.DiVeQ(3, 2, noise_std=0.0, replacement_iters=2, perturb_eps=1e-3)
    book = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    state = layer.init(book)
    z = np.array([[0.1, 0.0], [0.0, 0.1], [-0.1, 0.0], [0.9, 0.0]])  # 3 rows on 0, 1 on 1
    out, state = layer.apply(state, z)  # call 1 needs no draws
    assert out.indices.tolist() == [0, 0, 0, 1]
    assert state.hits.tolist() == [[3, 1, 0]] and state.calls_used.tolist() == [[1, 1, 0]]
    with pytest.raises(ValueError, match=r"draws\.donors"):
        layer.apply(state, z)  # call 2 replaces: donors needed
    pert = RNG.standard_normal((3, 2))
    draws = LayerDraws(donors=np.array([0.5, 0.5, u]), perturbation=pert)
    _, state = layer.apply(state, z, draws=draws)
    # hits [6, 2, 0]: cdf [6, 8, 8], code 2 takes the first d with cdf[d] > 8 u
    np.testing.assert_array_equal(state.codebooks[0, :2], book[:2])
    np.testing.assert_allclose(state.codebooks[0, 2], book[donor] + 1e-3 * pert[2], rtol=1e-15)
    assert state.calls == 2 and not state.hits.any() and not state.calls_used.any()
    # window 2: every code is used, so call 4 replaces nothing but still resets the counters
    new = state.codebooks[0, 2]
    z2 = np.array([book[0], book[1], new + (new - book[donor])])
    _, state = layer.apply(state, z2)
    assert state.hits.tolist() == [[1, 1, 1]] and state.calls == 3
    before = state.codebooks.copy()
    _, state = layer.apply(state, z2, draws=_draws(layer, 3))
    np.testing.assert_array_equal(state.codebooks, before)
    assert state.calls == 4 and not state.hits.any() and not state.calls_used.any()


def test_replacement_iters_none_never_replaces_and_counters_accumulate():
    layer = ref.DiVeQ(3, 2, noise_std=0.0, replacement_iters=None)
    state = layer.init(np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]]))
    for _ in range(3):
        _, state = layer.apply(state, np.array([[0.1, 0.0]]))
    assert state.hits.tolist() == [[3, 0, 0]] and state.calls_used.tolist() == [[3, 0, 0]]


# --- (b) one-codebook SF warm-up ------------------------------------------------------------------


def test_sf_warmup_passes_through_collects_initialises_then_quantises():
    layer = ref.SFDiVeQ(3, 2, noise_std=0.1, skip_iters=4, avg_iters=2)
    state = layer.init(np.zeros((3, 2)))
    calls = [RNG.normal(size=(n, 2)) for n in (2, 3, 2)]
    for c, z in enumerate(calls, start=1):
        out, new = layer.apply(state, z)  # warm-up calls need no draws
        np.testing.assert_array_equal(out.values, z)
        assert (out.indices == -1).all() and (out.weights == 0).all() and out.perplexity == 1
        dz, dbook = layer.vjp(state, z, np.ones_like(z))
        np.testing.assert_array_equal(dz, np.ones_like(z))
        assert not dbook.any() and dbook.shape == (3, 2)
        assert new.calls == c and not new.hits.any()
        state = new
        if c == 2:  # call 1 is not kept, call 2 is
            np.testing.assert_array_equal(state.warmup_rows, calls[1][:, None, :])
    want = ref.warmup_codebook(np.concatenate(calls[1:]), 3)
    np.testing.assert_array_equal(state.codebooks[0], want)
    assert state.warmup_rows.shape == (0, 1, 2)
    z = RNG.normal(size=(5, 2))
    d = _draws(layer, 5)
    out, state = layer.apply(state, z, draws=d)
    exp = ref.sf_diveq(z, want, noise_std=0.1, dither=d.dither, noise=d.noise)
    np.testing.assert_array_equal(out.values, exp.values)
    np.testing.assert_array_equal(out.indices, exp.indices)
    np.testing.assert_array_equal(out.weights, exp.weights)
    assert state.hits.sum() == 5 and state.calls == 4


def test_sf_warmup_with_too_few_rows_raises_naming_k():
    layer = ref.SFDiVeQ(3, 2, skip_iters=3, avg_iters=2)
    state = layer.init(np.zeros((3, 2)))
    _, state = layer.apply(state, np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"K = 3.*R_valid = 2"):
        layer.apply(state, np.ones((1, 2)))


@pytest.mark.parametrize("skip", [0, 1])
def test_sf_skip_iters_0_or_1_quantises_from_the_first_call(skip):
    layer = ref.SFDiVeQ(3, 2, noise_std=0.0, skip_iters=skip)
    book = RNG.normal(size=(3, 2))
    z = RNG.normal(size=(4, 2))
    out, _ = layer.apply(layer.init(book), z, draws=LayerDraws(dither=np.full(2, 0.5)))
    np.testing.assert_array_equal(
        out.values, ref.sf_diveq(z, book, noise_std=0.0, dither=[0.5] * 2).values
    )


# --- (c) composite SF warm-up ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ref.ProductDiVeQ, ref.ResidualDiVeQ])
def test_composite_sf_warmup_runs_diveq_with_replacement_then_initialises_per_codebook(cls):
    product = cls is ref.ProductDiVeQ
    dim = 4 if product else 2
    layer = cls(2, 3, dim, space_filling=True, skip_iters=4, avg_iters=2, replacement_iters=2)
    w = layer.spec.width
    book = RNG.normal(size=(2, 3, w))
    book[:, 2] = 50.0  # code 2 is never used: replaced at call 2
    state = layer.init(book)
    fn = ref.product_diveq if product else ref.residual_diveq
    kept = []
    for c in (1, 2, 3):
        z = RNG.normal(size=(4, dim))
        d = _draws(layer, 4)
        out, new = layer.apply(state, z, draws=d)
        exp = fn(z, state.codebooks, noise_std=1e-3, noise=d.noise)
        np.testing.assert_array_equal(out.values, exp.values)
        np.testing.assert_array_equal(out.indices, exp.indices)
        assert isinstance(out, ref.SFLayerOutput) and not out.weights.any()
        # warm-up indices are codeword indices (K - 1 included): they decode to the target
        hard = (ref.product_quantize if product else ref.residual_quantize)(z, state.codebooks)
        decoded = layer.decode(state, out.indices, out.weights)
        np.testing.assert_allclose(decoded, hard.values, rtol=1e-12, atol=1e-15)
        if c >= 2:  # the per-codebook latents, with this call's codebooks (before replacement)
            x = (
                z.reshape(4, 2, w)
                if product
                else np.stack([z, z - state.codebooks[0][exp.indices[:, 0]]], axis=1)
            )
            kept.append(x)
        if c == 2:
            for m in range(2):
                want, replaced = ref.replace_dead_codes(
                    state.codebooks[m], state.hits[m] + ref.code_usage(exp.indices[:, m], 3),
                    state.calls_used[m] + (ref.code_usage(exp.indices[:, m], 3) > 0),
                    replacement_iters=2, discard_threshold=0.01, perturb_eps=1e-9,
                    uniform=d.donors[m], noise=d.perturbation[m],
                )  # fmt: skip
                assert replaced[2]
                np.testing.assert_array_equal(new.codebooks[m], want)
            np.testing.assert_array_equal(new.warmup_rows, kept[0])
        state = new
    rows = np.concatenate(kept)
    for m in range(2):
        np.testing.assert_array_equal(state.codebooks[m], ref.warmup_codebook(rows[:, m], 3))
    assert state.warmup_rows.shape == (0, 2, w) and not state.hits.any()
    z = RNG.normal(size=(4, dim))
    d = _draws(layer, 4)
    # call 4 ends a window, but SF layers replace only during the warm-up: no donors needed
    out, new = layer.apply(state, z, draws=d._replace(donors=None, perturbation=None))
    np.testing.assert_array_equal(new.codebooks, state.codebooks)
    assert new.calls_used.sum() == new.hits.astype(bool).sum() > 0
    sf = ref.product_sf_diveq if product else ref.residual_sf_diveq
    exp = sf(z, state.codebooks, noise_std=1e-3, dither=d.dither, noise=d.noise)
    np.testing.assert_array_equal(out.values, exp.values)
    np.testing.assert_array_equal(out.weights, exp.weights)


# --- (d) masks and non-finite rows ----------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_masked_and_nonfinite_rows_pass_through_uncounted_with_identity_gradient(kind):
    layer = KINDS[kind]()
    state = layer.init(rng=RNG)
    z = RNG.normal(size=(2, 3, 4))
    z[0, 1, 2] = np.nan
    z[1, 0, 0] = np.inf
    mask = np.ones((2, 3), dtype=bool)
    mask[1, 2] = False
    valid = np.array([True, False, True, False, True, False])
    d = _draws(layer, 6)
    out, new = layer.apply(state, z, mask=mask, draws=d)
    idx = out.indices.reshape(6, -1)
    assert (idx[~valid] == -1).all() and (idx[valid] >= 0).all()
    np.testing.assert_array_equal(out.values.reshape(6, 4)[~valid], z.reshape(6, 4)[~valid])
    assert new.hits.sum() == 3 * layer.spec.num_codebooks
    g = RNG.normal(size=z.shape)
    dz, dbook = layer.vjp(state, z, g, mask=mask, draws=d)
    np.testing.assert_array_equal(dz.reshape(6, 4)[~valid], g.reshape(6, 4)[~valid])
    # the valid rows: exactly the reference estimator and its VJP with the same draws
    zv, gv = z.reshape(6, 4)[valid], g.reshape(6, 4)[valid]
    books = state.codebooks if layer.spec.composite else state.codebooks[0]
    name = {"diveq": "diveq", "sf": "sf_diveq"}.get(kind, kind + "_diveq")
    noise = d.noise[:, valid] if kind == "sf" else d.noise[valid]
    kw = {"dither": d.dither} if "sf" in kind else {}
    want = getattr(ref, name)(zv, books, noise_std=1e-3, noise=noise, **kw)
    np.testing.assert_array_equal(out.values.reshape(6, 4)[valid], want.values)
    want_idx = want.indices.reshape(3, -1)
    np.testing.assert_array_equal(idx[valid], want_idx)
    perp = np.mean([ref.perplexity(want_idx[:, m], 4) for m in range(want_idx.shape[1])])
    np.testing.assert_allclose(out.perplexity, perp, rtol=1e-15)
    want_dz, want_db = getattr(ref, name + "_vjp")(zv, books, gv, noise_std=1e-3, noise=noise, **kw)
    np.testing.assert_array_equal(dz.reshape(6, 4)[valid], want_dz)
    np.testing.assert_array_equal(dbook, want_db)


def test_invalid_rows_are_not_collected_for_the_warmup():
    layer = ref.SFDiVeQ(2, 2, skip_iters=3, avg_iters=2)
    z = np.array([[1.0, 2.0], [np.nan, 0.0], [3.0, 4.0], [5.0, 6.0]])
    _, state = layer.apply(layer.init(np.zeros((2, 2))), z, mask=np.array([1, 1, 0, 1], bool))
    np.testing.assert_array_equal(state.warmup_rows[:, 0], z[[0, 3]])


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_call_without_valid_rows_still_advances_the_call_counter(kind):
    layer = KINDS[kind]()
    state = layer.init(rng=RNG)
    for z, mask in [(np.zeros((0, 4)), None), (np.ones((3, 4)), np.zeros(3, bool))]:
        out, new = layer.apply(state, z, mask=mask, rng=RNG)
        assert new.calls == 1 and not new.hits.any()
        assert out.perplexity.shape == () and out.perplexity == 1.0
        assert out.indices.shape == (len(z), *(2,) * layer.spec.composite)


# --- (e) eval mode, no mutation -------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_eval_returns_the_same_state_and_train_mutates_nothing(kind):
    layer = KINDS[kind]()
    state = layer.init(rng=RNG)
    snapshot = [np.copy(a) for a in state]
    z = RNG.normal(size=(5, 4))
    z_copy = z.copy()
    out, same = layer.apply(state, z, train=False)
    assert same is state
    enc = layer.encode(state, z)
    np.testing.assert_array_equal(out.values, enc.values)
    np.testing.assert_array_equal(out.indices, enc.indices)
    _, new = layer.apply(state, z, rng=RNG)
    assert new is not state and new.calls == 1
    for before, after in zip(snapshot, state, strict=True):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(z, z_copy)


def test_rng_draws_in_the_order_of_the_functions():
    """Without ``draws``, ``rng`` gives what the estimator function gives with the same seed."""
    book = RNG.normal(size=(4, 3))
    z = RNG.normal(size=(6, 3))
    layer = ref.SFDiVeQ(4, 3, noise_std=0.1, skip_iters=0)
    out, _ = layer.apply(layer.init(book), z, rng=np.random.default_rng(7))
    want = ref.sf_diveq(z, book, noise_std=0.1, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(out.values, want.values)


# --- (f) vjp invariant ----------------------------------------------------------------------------


def test_deterministic_diveq_vjp_parts_sum_to_the_cotangent():
    layer = ref.DiVeQ(4, 3, noise_std=0.0)
    book = np.eye(4, 3) * 3.0
    state = layer.init(book)
    z = book + RNG.normal(scale=0.3, size=(4, 3))  # row n on code n
    g = RNG.normal(size=z.shape)
    out, _ = layer.apply(state, z)
    assert out.indices.tolist() == [0, 1, 2, 3]
    dz, dbook = layer.vjp(state, z, g)
    np.testing.assert_allclose(dz + dbook, g, rtol=1e-13, atol=1e-15)


# --- (g, h) encode/decode and the feature axis ----------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_decode_of_encode_is_the_encoded_values(kind):
    layer = KINDS[kind]()
    state = layer.init(rng=RNG)
    z = RNG.normal(scale=0.3, size=(3, 5, 4))
    mask = RNG.random((3, 5)) < 0.8
    enc = layer.encode(state, z, mask=mask)
    dec = layer.decode(state, enc.indices, getattr(enc, "weights", None))
    np.testing.assert_allclose(dec[mask], enc.values[mask], rtol=1e-12, atol=1e-15)
    assert not dec[~mask].any()
    np.testing.assert_array_equal(enc.values[~mask], z[~mask])


@pytest.mark.parametrize("kind", list(KINDS))
def test_feature_axis_1_is_the_channels_last_call_moved(kind):
    last, first = KINDS[kind](), KINDS[kind](feature_axis=1)
    state = last.init(rng=RNG)
    z = RNG.normal(scale=0.3, size=(2, 4, 3, 5))  # (B, C, H, W)
    zl = np.moveaxis(z, 1, -1)
    d = _draws(last, 30)
    out_f, _ = first.apply(state, z, draws=d)
    out_l, _ = last.apply(state, zl, draws=d)
    np.testing.assert_array_equal(out_f.values, np.moveaxis(out_l.values, -1, 1))
    np.testing.assert_array_equal(out_f.indices, out_l.indices)
    assert out_f.indices.shape[:3] == (2, 3, 5)
    g = RNG.normal(size=z.shape)
    dz_f, db_f = first.vjp(state, z, g, draws=d)
    dz_l, db_l = last.vjp(state, zl, np.moveaxis(g, 1, -1), draws=d)
    np.testing.assert_array_equal(dz_f, np.moveaxis(dz_l, -1, 1))
    np.testing.assert_array_equal(db_f, db_l)
    enc = first.encode(state, z)
    dec = first.decode(state, enc.indices, getattr(enc, "weights", None))
    assert dec.shape == z.shape
    np.testing.assert_allclose(dec, enc.values, rtol=1e-12, atol=1e-15)


# --- (i) errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "err", "match"),
    [
        (lambda: ref.DiVeQ(0, 2), ValueError, "num_codes"),
        (lambda: ref.SFDiVeQ(1, 2), ValueError, "num_codes"),
        (lambda: ref.ProductDiVeQ(3, 4, 5), ValueError, "dim % num_codebooks"),
        (lambda: ref.DiVeQ(2, 2, noise_std=-1.0), ValueError, "noise_std"),
        (lambda: ref.DiVeQ(2, 2, replacement_iters=0), ValueError, "replacement_iters"),
        (lambda: ref.SFDiVeQ(2, 2, avg_iters=0), ValueError, "avg_iters"),
        (lambda: ref.ResidualDiVeQ(2, 2, 2, codebook_init="normal"), ValueError, "init"),
        (lambda: ref.DiVeQ(2, 2.0), TypeError, "dim"),
    ],
)
def test_bad_options_raise_the_layer_spec_errors(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_call_errors():
    layer = ref.SFDiVeQ(3, 2, skip_iters=0)
    state = layer.init(np.zeros((3, 2)))
    z = np.ones((4, 2))
    with pytest.raises(ValueError, match=r"draws\.noise.*\(2, 4, 2\).*\(4, 2\)"):
        layer.apply(state, z, draws=LayerDraws(noise=np.ones((4, 2)), dither=np.zeros(2)))
    with pytest.raises(ValueError, match=r"draws\.dither.*\(2,\).*\(3,\)"):
        layer.apply(state, z, draws=LayerDraws(dither=np.zeros(3)), rng=RNG)
    with pytest.raises(ValueError, match=r"draws\.dither.*\[0, 1\)"):
        layer.apply(state, z, draws=LayerDraws(dither=np.ones(2)), rng=RNG)
    with pytest.raises(ValueError, match=r"needs `draws\.dither` of shape \(2,\)"):
        layer.apply(state, z)
    with pytest.raises(TypeError, match="LayerDraws"):
        layer.apply(state, z, draws={"dither": np.zeros(2)}, rng=RNG)
    with pytest.raises(ValueError, match=r"draws\.noise"):
        layer.vjp(state, z, z, draws=LayerDraws(dither=np.zeros(2)))
    with pytest.raises(ValueError, match="feature size mismatch"):
        layer.apply(state, np.ones((4, 3)), rng=RNG)
    with pytest.raises(ValueError, match="mask"):
        layer.apply(state, z, mask=np.ones(3, bool), rng=RNG)
    with pytest.raises(ValueError, match="cotangent"):
        layer.vjp(state, z, np.ones((4, 3)))
    with pytest.raises(ValueError, match="codebook"):
        layer.init()
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        layer.init(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"state\.codebooks"):
        layer.apply(state._replace(codebooks=np.zeros((1, 4, 2))), z, rng=RNG)


def test_decode_errors():
    sf, dq = ref.ProductDiVeQ(2, 3, 4, space_filling=True), ref.DiVeQ(3, 2)
    s_sf, s_dq = sf.init(rng=RNG), dq.init(rng=RNG)
    with pytest.raises(ValueError, match="`weights` are required"):
        sf.decode(s_sf, np.zeros((5, 2), np.int64))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\).*\(5,\)"):
        sf.decode(s_sf, np.zeros(5, np.int64), np.zeros(5))
    with pytest.raises(ValueError, match=r"\[-1, 3\)"):
        sf.decode(s_sf, np.full((5, 2), 3), np.zeros((5, 2)))
    last = sf.decode(s_sf, np.full((1, 2), 2), np.zeros((1, 2)))  # a warm-up codeword index
    np.testing.assert_array_equal(last[0], s_sf.codebooks[:, 2].reshape(-1))
    with pytest.raises(ValueError, match="only for space-filling"):
        dq.decode(s_dq, np.zeros(5, np.int64), np.zeros(5))
    with pytest.raises(TypeError, match="integer"):
        dq.decode(s_dq, np.zeros(5))
