"""Session-wide numerics pins, hypothesis profiles and the backend fixture.

Every property is written once (in :mod:`diveq.testing`) and runs against every implementation
that imports here; a new backend plugs in through an adapter, not new tests.
"""

from __future__ import annotations

import os

# XLA's CPU backend optimisation costs compile time the many small test shapes never repay.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import pytest
from hypothesis import HealthCheck, settings

from diveq.testing import known_adapters

settings.register_profile(
    "ci",
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def _pin_numerics() -> None:
    try:
        import jax
    except ImportError:
        pass
    else:
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_default_matmul_precision", "float32")
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")


_pin_numerics()

KNOWN = known_adapters()
ADAPTERS = [a for _, a, _ in KNOWN if a is not None]
#: implementations with autodiff (torch, JAX eager and jitted) and that sample their own draws;
#: a framework that is not installed is a visible skip with its import error, never silence
DIFF_NAMES = ("torch", "jax", "jax-jit")


def _params(names: tuple[str, ...] | None = None) -> list:
    return [
        pytest.param(adapter, id=name, marks=[pytest.mark.skip(reason=why)] if why else [])
        for name, adapter, why in KNOWN
        if names is None or name in names
    ]


@pytest.fixture(scope="session", params=_params())
def backend(request: pytest.FixtureRequest):
    """Each implementation, behind its conformance adapter."""
    return request.param


@pytest.fixture(scope="session", params=_params(DIFF_NAMES))
def diff_backend(request: pytest.FixtureRequest):
    """Each implementation with autodiff (torch, JAX eager and jitted)."""
    return request.param


@pytest.fixture(scope="session", params=_params(DIFF_NAMES))
def sampling_backend(request: pytest.FixtureRequest):
    """Each implementation that samples its own draws besides the reference (generator= / key=)."""
    return request.param
