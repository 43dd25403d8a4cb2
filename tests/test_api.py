"""The public API of SPEC section 10: names, docstrings and signatures agree everywhere."""

from __future__ import annotations

import inspect

import pytest

import diveq
import diveq.core as core
import diveq.reference as ref
from diveq.testing import OPS

ESTIMATORS = [op.name for op in OPS if op.train and op.name not in ("ste", "rotation_trick")]
SECTION_10 = [op.name for op in OPS] + ["code_usage", "perplexity", "commitment_loss"]
VJPS = [op.name + "_vjp" for op in OPS if op.train] + ["commitment_loss_vjp"]
STATE = ["update_usage", "dead_codes", "replace_dead_codes", "warmup_codebook"]
RNG_NAMES = {"rng", "generator", "key", "stop_gradient", "chunk_size"}


@pytest.mark.parametrize("name", SECTION_10 + VJPS + STATE)
def test_reference_has_every_name_documented(name):
    fn = getattr(ref, name)
    assert fn.__doc__ and len(fn.__doc__.strip()) > 40, name
    assert name in ref.__all__


def _params(fn):
    return [p.name for p in inspect.signature(fn).parameters.values() if p.name not in RNG_NAMES]


@pytest.mark.parametrize("name", SECTION_10 + STATE)
def test_core_signature_matches_reference(name):
    assert _params(getattr(core, name)) == _params(getattr(ref, name))


def test_backend_signatures_match_reference(backend):
    for name in SECTION_10:
        fn = getattr(backend.module, name)
        assert _params(fn) == _params(getattr(ref, name)), name
        assert fn.__doc__, name


def test_result_types_are_shared():
    assert core.Quantized is ref.Quantized is diveq.Quantized
    assert core.SFQuantized is ref.SFQuantized is diveq.SFQuantized
