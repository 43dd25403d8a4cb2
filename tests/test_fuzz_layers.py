"""Fuzzing the layers of torch and JAX: random masks, NaN/inf rows, magnitudes, replacement
and SF warm-up within a few train steps with an optimiser step each, then eval.

Properties: bad rows pass through with index ``-1``, valid rows are finite and in range, the
codebook stays finite, and eval changes nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from _fuzz_common import (
    NOISE_STDS,
    _examples,
    _finite,
    _given,
    _scaled,
    exponents,
    leads,
)
from hypothesis import strategies as st

from diveq.testing import LAYER_KINDS, LayerDriver, LayerKind

#: Train-mode calls per example: SF warm-ups with ``skip_iters <= 3`` end within them.
TRAIN_CALLS = 4
#: Learning rate of the plain gradient step on the codebook(s).
LR = 0.1


@dataclass
class LayerCase:
    """A layer configuration and the per-call latents (the last call runs in eval mode)."""

    kind: LayerKind
    m: int
    k: int
    d: int
    options: dict[str, Any]
    codebook: np.ndarray  # the initial one, U(-1/K, 1/K) in the layer's layout
    zs: list[np.ndarray]
    masks: list[np.ndarray | None]
    cotangents: list[np.ndarray]
    seed: int
    exponent: int = 0
    lead: tuple[int, ...] = field(default_factory=tuple)

    def args(self) -> tuple[int, ...]:
        return (self.m, self.k, self.d) if self.kind.composite else (self.k, self.d)

    def valid(self, call: int) -> np.ndarray:
        """Rows (lead shape) that are neither masked out nor non-finite."""
        mask = self.masks[call]
        finite = np.all(np.isfinite(self.zs[call]), axis=-1)
        return finite if mask is None else finite & mask

    def index_bound(self, call: int | None) -> int:
        """Indices of train call ``call`` (1-based; ``None``: eval) lie in ``[0, bound)``; 0
        while a one-codebook SF layer warms up (not quantised: every index is -1)."""
        if not self.kind.space_filling:
            return self.k
        if call is not None and call < self.options["skip_iters"]:  # composites run DiVeQ
            return self.k if self.kind.composite else 0
        return self.k - 1

    def warmup_failure(self) -> int | None:
        """The 1-based train call whose SF warm-up init must raise (too few valid rows)."""
        skip, avg = self.options.get("skip_iters", 0), self.options.get("avg_iters", 1)
        if not self.kind.space_filling or skip < 2:
            return None
        kept = sum(int(self.valid(c - 1).sum()) for c in range(max(1, skip - avg), skip))
        return skip - 1 if kept < self.k else None


@st.composite
def layer_cases(draw: Any, kind: LayerKind, few_shapes: bool) -> LayerCase:
    """Latents ``N(0, 1) 10**e`` with masked and non-finite rows, for ``TRAIN_CALLS + 1`` calls."""
    min_codes = 2 if kind.space_filling else 1
    m = draw(st.sampled_from([2]) if few_shapes else st.integers(1, 3)) if kind.composite else 1
    if few_shapes:
        lead = draw(st.sampled_from([(6,), (2, 3)]))
        k, d = 5, 4
    else:
        lead = draw(leads())
        k = draw(st.integers(min_codes, 9))
        width = draw(st.integers(1, 8 // m))
        d = m * width if kind.cls == "ProductDiVeQ" else draw(st.integers(1, 8))
    options: dict[str, Any] = {"noise_std": draw(st.sampled_from(NOISE_STDS))}
    if kind.composite:
        options["space_filling"] = kind.space_filling
    if kind.cls != "SFDiVeQ":
        options["replacement_iters"] = draw(st.sampled_from([1, 2, None]))
    if kind.space_filling:
        options["skip_iters"] = draw(st.integers(0, 3))
        options["avg_iters"] = draw(st.integers(1, 2))
    exponent = draw(exponents("float32"))
    p_mask = draw(st.sampled_from([None, 0.0, 0.3, 0.8]))
    p_bad = draw(st.sampled_from([0.0, 0.2, 0.5]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    width = d // m if kind.cls == "ProductDiVeQ" else d
    shape = (m, k, width) if kind.composite else (k, d)
    codebook = rng.uniform(-1 / k, 1 / k, shape)
    zs, masks, cots = [], [], []
    rows = int(np.prod(lead))
    for _ in range(TRAIN_CALLS + 1):
        z = _scaled(rng, (rows, d), exponent)
        bad = np.flatnonzero(rng.random(rows) < p_bad)
        z[bad, rng.integers(0, d, size=bad.size)] = rng.choice([np.nan, np.inf, -np.inf], bad.size)
        zs.append(z.reshape(*lead, d).astype(np.float32))
        masks.append(None if p_mask is None else (rng.random(rows) >= p_mask).reshape(lead))
        cots.append(rng.standard_normal((*lead, d)).astype(np.float32))
    return LayerCase(kind, m, k, d, options, codebook, zs, masks, cots, seed, exponent, lead)


def _check_layer_output(
    case: LayerCase, call: int, out: dict[str, np.ndarray], high: int, what: str
) -> None:
    """Bad rows unchanged with index -1; valid rows finite with indices in ``[0, high)``
    (``high = 0``: an SF warm-up call, not quantised, every index -1)."""
    z, valid = case.zs[call], case.valid(call)
    values, indices = out["values"], out["indices"]
    if values.shape != z.shape or values.dtype != z.dtype:
        raise AssertionError(f"{what}: values {values.dtype} {values.shape} for z {z.shape}")
    if not np.array_equal(values[~valid], z[~valid], equal_nan=True):
        raise AssertionError(f"{what}: masked / non-finite rows changed: {values[~valid]!r}")
    _finite(values[valid], f"{what} values of valid rows")
    shape = case.lead + ((case.m,) if case.kind.composite else ())
    if indices.shape != shape or indices.dtype.kind != "i":
        raise AssertionError(f"{what}: indices {indices.dtype} {indices.shape} != {shape}")
    idx = indices.reshape(*case.lead, case.m)
    if np.any(idx[~valid] != -1):
        raise AssertionError(f"{what}: masked / non-finite rows got indices {idx[~valid]!r}")
    good = idx[valid]
    if high == 0 and np.any(good != -1):
        raise AssertionError(f"{what}: SF warm-up call quantised: {good!r}")
    if high and good.size and (good.min() < 0 or good.max() >= high):
        raise AssertionError(f"{what}: valid rows' indices outside [0, {high}): {good!r}")


def check_layer(driver: LayerDriver, case: LayerCase) -> None:
    """Train calls (SF warm-up included), each with a gradient step, then eval: -1 exactly on
    bad rows, all finite, and eval changes no state."""
    options = {**case.options, "dtype": "float32"}
    handle = driver.build(case.kind.cls, case.args(), options, case.codebook, seed=case.seed)
    what = f"{driver.name}.{case.kind.id}{case.args()} {case.options} 10**{case.exponent}"
    failing = case.warmup_failure()
    for call in range(TRAIN_CALLS):
        where = f"{what} train call {call + 1}"
        z, mask = case.zs[call], case.masks[call]
        cot = np.where(case.valid(call)[..., None], case.cotangents[call], 0)
        if call + 1 == failing:  # too few valid rows to initialise: a clear error
            with pytest.raises(ValueError, match="SF warm-up needs at least K"):
                driver.call(handle, z, mask, None, True, cot)
            return
        out, (dz, dbook) = driver.call(handle, z, mask, None, True, cot)
        _check_layer_output(case, call, out, case.index_bound(call + 1), where)
        _finite(dz, f"{where}: latent gradient")
        driver.descend(handle, dbook, LR)
        _finite(driver.state(handle)["codebooks"], f"{where}: codebook after the gradient step")
    before = driver.state(handle)
    out, _ = driver.call(handle, case.zs[TRAIN_CALLS], case.masks[TRAIN_CALLS], None, False, None)
    _check_layer_output(case, TRAIN_CALLS, out, case.index_bound(None), what)
    after = driver.state(handle)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=f"{what}: eval changed {key}")


@pytest.mark.parametrize("layer", ["torch", "jax"], indirect=True)
@pytest.mark.parametrize("kind", LAYER_KINDS, ids=[k.id for k in LAYER_KINDS])
def test_layers_survive_masks_bad_rows_and_training(layer: LayerDriver, kind: LayerKind) -> None:
    compiles = layer.name.startswith("jax")
    _given(
        _examples(compiles),
        layer_cases(kind, few_shapes=compiles),
        functools.partial(check_layer, layer),
    )
