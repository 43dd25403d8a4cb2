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
