"""The public API: names, docstrings and signatures agree in every implementation and with the
table of operations (:mod:`diveq._ops`)."""

from __future__ import annotations

import inspect

import pytest

import diveq
import diveq.core as core
import diveq.reference as ref
from diveq._ops import FUNCTIONS, PARAMS, REQUIRED, RNG

SECTION_10 = [op.name for op in FUNCTIONS]
VJPS = [op.name + "_vjp" for op in FUNCTIONS if op.train] + ["commitment_loss_vjp"]
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


@pytest.mark.parametrize("op", FUNCTIONS, ids=lambda op: op.name)
def test_table_matches_the_core(op):
    """The table's parameter list (names, kinds, defaults) is the core function's, whose
    ``stop_gradient`` the backend supplies and whose draws it samples (``<rng>``)."""
    core_params = [p for p in inspect.signature(op.core).parameters.values()]
    got = [(p.name, p.kind, p.default) for p in core_params if p.name != "stop_gradient"]
    want, kind = [], inspect.Parameter.POSITIONAL_OR_KEYWORD
    for name in op.parameters:
        if name == "*":
            kind = inspect.Parameter.KEYWORD_ONLY
        elif name != RNG:
            default = PARAMS[name].default
            want.append((name, kind, inspect.Parameter.empty if default is REQUIRED else default))
    assert got == want


def test_result_types_are_shared():
    assert core.Quantized is ref.Quantized is diveq.Quantized
    assert core.SFQuantized is ref.SFQuantized is diveq.SFQuantized
