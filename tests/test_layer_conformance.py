"""The layer conformance kit: torch, JAX eager and JAX jit layers against the reference layers,
call by call with identical draws, and the kit's power to see a planted bug."""

from __future__ import annotations

import importlib

import pytest

from diveq.testing import LAYER_KINDS, LayerMismatch, check_layer_kind, driver_for

#: driver name -> the framework it needs (a missing one is a visible skip)
DRIVERS = {"torch": "torch", "jax": "jax", "jax-jit": "jax"}


@pytest.fixture(scope="module", params=list(DRIVERS))
def layer_driver(request: pytest.FixtureRequest):
    """Each backend's layer driver; skipped, with the reason, when its framework is missing."""
    pytest.importorskip(DRIVERS[request.param])
    return driver_for(request.param)


@pytest.mark.parametrize("noise_std", [0.0, 0.05])
@pytest.mark.parametrize("kind", LAYER_KINDS, ids=[k.id for k in LAYER_KINDS])
def test_layers_match_the_reference_layers(layer_driver, kind, noise_std):
    check_layer_kind(layer_driver, kind, noise_std)


def _shift_donor(original):
    def planted(codebook, hits, calls_used, *, uniform, **kw):
        return original(codebook, hits, calls_used, uniform=1.0 - uniform, **kw)

    return planted


def _move_warmup_row(original):
    def planted(spec, xp, books, safe, idx):
        latents = original(spec, xp, books, safe, idx)
        return xp.concat([latents[:1] + 1e-3, latents[1:]], axis=0)

    return planted


def _count_masked_row(original):
    def planted(spec, ops, idx):
        counts = original(spec, ops, idx)
        extra = ops.xp.astype(ops.xp.any(idx < 0), counts.dtype)
        return ops.xp.concat([counts[:, :1] + extra, counts[:, 1:]], axis=1)

    return planted


PLANTS = {
    "one replacement donor": ("replace_dead_codes", _shift_donor, 0),
    "one warm-up row": ("warmup_latents", _move_warmup_row, 1),
    "one masked-row count": ("book_counts", _count_masked_row, 0),
}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_the_kit_sees_a_planted_bug(plant, monkeypatch):
    pytest.importorskip("torch")
    name, make, kind = PLANTS[plant]
    step = importlib.import_module("diveq.core._layer_step")
    monkeypatch.setattr(step, name, make(getattr(step, name)))
    with pytest.raises(LayerMismatch):
        check_layer_kind(driver_for("torch"), LAYER_KINDS[kind], 0.0)


def _error(fn):
    try:
        fn()
    except (TypeError, ValueError) as err:
        return type(err), str(err)
    raise AssertionError("no error raised")


#: bad calls: (name, layer kind index, how to call a layer `vq` built by `make`)
BAD_CALLS = {
    "wrong feature size": (0, lambda b, vq: b.call(vq, b.z((3, 5)))),
    "int latents": (0, lambda b, vq: b.call(vq, b.z((3, 4), "int64"))),
    "mask shape": (0, lambda b, vq: b.call(vq, b.z((3, 4)), mask=b.mask(2))),
    "mask dtype": (0, lambda b, vq: b.call(vq, b.z((3, 4)), mask=b.z((3,)))),
    "feature axis out of range": (0, lambda b, vq: b.call(b.make(0, feature_axis=5), b.z((3, 4)))),
    "decode SF without weights": (1, lambda b, vq: b.decode(vq, b.idx((3,)))),
    "decode weights for DiVeQ": (0, lambda b, vq: b.decode(vq, b.idx((3,)), b.z((3,)))),
    "decode composite without M": (2, lambda b, vq: b.decode(vq, b.idx((3,)))),
}


class _Torch:
    def __init__(self):
        import torch

        import diveq.backends.torch as dq

        self.torch, self.dq = torch, dq

    def make(self, i, **extra):
        kind = LAYER_KINDS[i]
        return getattr(self.dq, kind.cls)(*kind.args, **kind.options, **extra)

    def z(self, shape, dtype="float32"):
        return self.torch.zeros(shape, dtype=getattr(self.torch, dtype))

    def mask(self, n):
        return self.torch.ones(n, dtype=self.torch.bool)

    def idx(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.int64)

    def call(self, vq, z, mask=None):
        return vq(z, mask)

    def decode(self, vq, indices, weights=None):
        return vq.decode(indices, weights)


class _Jax(_Torch):
    def __init__(self):
        import jax.numpy as jnp

        import diveq.backends.jax as dq

        self.jnp, self.dq = jnp, dq

    def make(self, i, **extra):
        kind = LAYER_KINDS[i]
        rows = {"rows_per_call": 8} if "skip_iters" in kind.options else {}
        layer = getattr(self.dq, kind.cls)(*kind.args, **kind.options, **rows, **extra)
        return layer, layer.init(__import__("jax").random.key(0))

    def z(self, shape, dtype="float32"):
        return self.jnp.zeros(shape, dtype=dtype)

    def mask(self, n):
        return self.jnp.ones(n, dtype=bool)

    def idx(self, shape):
        return self.jnp.zeros(shape, dtype=int)

    def call(self, vq, z, mask=None):
        layer, state = vq
        return layer.apply(state, z, mask=mask, train=False)

    def decode(self, vq, indices, weights=None):
        layer, state = vq
        return layer.decode(state, indices, weights)


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_torch_and_jax_layers_raise_the_same_error(case):
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    i, bad = BAD_CALLS[case]
    got = []
    for b in (_Torch(), _Jax()):
        got.append(_error(lambda b=b: bad(b, b.make(i))))
    assert got[0] == got[1]
