"""``check_layers``: a backend's layers against the reference layers, call by call.

Every layer kind (DiVeQ, SF-DiVeQ, product and residual, with and without ``space_filling``,
with and without noise) is driven through one scripted run with identical explicit draws on
the backend and on :mod:`diveq.reference`: several replacement windows with a dead code, an SF
warm-up and its init, masks, NaN and inf rows, eval calls in between (which must change
nothing), and a checkpoint / restore in the middle of a window and of the warm-up. After every
call the outputs, the gradients of a random cotangent w.r.t. ``z`` and the codebook(s), and every
state leaf must agree (float64, ``rtol = 1e-10``; perplexity ``1e-6``, since backends may
compute it in float32).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diveq._types import LayerDraws
from diveq.testing._layer_drivers import LayerDriver, ReferenceLayerDriver, driver_for

__all__ = ["LAYER_KINDS", "LayerKind", "LayerMismatch", "check_layer_kind", "check_layers"]

#: Train-mode calls of the script; replacement every 3 calls, SF warm-up init at call 5.
CALLS, ROWS, DIM, WINDOW = 9, 10, 4, 3
WARMUP = {"skip_iters": 6, "avg_iters": 2}
#: (call, what) events of the script, after that train-mode call.
EVAL_AFTER, RESTORE_AFTER = (2, 4), (4, 7)  # 4: mid-window (and mid-warm-up), 7: mid-window


@dataclass(frozen=True)
class LayerKind:
    """One layer configuration of the script."""

    cls: str
    args: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        sf = "-sf" if self.options.get("space_filling") else ""
        return f"{self.cls}{sf}"

    @property
    def books(self) -> int:
        return self.args[0] if len(self.args) == 3 else 1


LAYER_KINDS: tuple[LayerKind, ...] = (
    LayerKind("DiVeQ", (6, DIM), {"replacement_iters": WINDOW}),
    LayerKind("SFDiVeQ", (5, DIM), dict(WARMUP)),
    LayerKind("ProductDiVeQ", (2, 6, DIM), {"replacement_iters": WINDOW}),
    LayerKind("ResidualDiVeQ", (2, 6, DIM), {"replacement_iters": WINDOW}),
    LayerKind(
        "ProductDiVeQ", (2, 6, DIM), {"replacement_iters": WINDOW, "space_filling": True, **WARMUP}
    ),
    LayerKind(
        "ResidualDiVeQ", (2, 6, DIM), {"replacement_iters": WINDOW, "space_filling": True, **WARMUP}
    ),
)


class LayerMismatch(AssertionError):
    """A backend's layer disagreed with the reference layer."""


def _codebook(kind: LayerKind, rng: np.random.Generator) -> np.ndarray:
    k, m = kind.args[-2], kind.books
    width = DIM // m if kind.cls == "ProductDiVeQ" else DIM
    books = rng.standard_normal((m, k, width))
    books[:, -1, :] += 40.0  # a code far from every latent: dead, replaced at window ends
    return books if len(kind.args) == 3 else books[0]


def _inputs(kind: LayerKind, call: int, rng: np.random.Generator) -> tuple[Any, ...]:
    z = rng.standard_normal((ROWS, DIM))
    if call % 3 == 1:
        z[1, 0] = np.nan
        z[4, 2] = np.inf
    mask = None if call % 2 else rng.random(ROWS) > 0.25
    k, m = kind.args[-2], kind.books
    sf_single = kind.cls == "SFDiVeQ"
    draws = LayerDraws(
        noise=rng.standard_normal((2, ROWS, DIM) if sf_single else (ROWS, DIM)),
        dither=rng.random((k - 1,) if m == 1 and sf_single else (m, k - 1)),
        donors=rng.random((k,) if len(kind.args) == 2 else (m, k)),
        perturbation=rng.standard_normal(np.shape(_codebook(kind, np.random.default_rng(0)))),
    )
    return z, mask, draws, rng.standard_normal((ROWS, DIM))


def _compare(what: str, got: np.ndarray, want: np.ndarray, rtol: float) -> None:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise LayerMismatch(f"{what}: shape {got.shape}, reference {want.shape}")
    if want.dtype.kind in "iub":
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)[:5].tolist()
            raise LayerMismatch(f"{what}: differs at {bad}")
        return
    if not np.allclose(got, want, rtol=rtol, atol=rtol * 1e-2, equal_nan=True):
        err = np.nanmax(np.abs(got - want))
        raise LayerMismatch(f"{what}: max abs error {err:.3g} (rtol {rtol:g})")


def check_layer_kind(driver: LayerDriver, kind: LayerKind, noise_std: float, seed: int = 0) -> None:
    """Run the script for one layer kind and noise scale; raise :class:`LayerMismatch`."""
    ref = ReferenceLayerDriver()
    rng = np.random.default_rng(seed)
    options = {**kind.options, "noise_std": noise_std}
    codebook = _codebook(kind, rng)
    mine, base = (
        driver.build(kind.cls, kind.args, options, codebook),
        ref.build(kind.cls, kind.args, options, codebook),
    )
    where = f"{driver.name} {kind.id} noise_std={noise_std:g}"

    def check(label: str, train: bool, call: int) -> None:
        z, mask, draws, cot = _inputs(kind, call, rng)
        (got, got_g), (want, want_g) = (
            driver.call(mine, z, mask, draws, train, cot),
            ref.call(base, z, mask, draws, train, cot),
        )
        for name in want:
            tol = 1e-6 if name == "perplexity" else 1e-10
            _compare(f"{where} {label}: output.{name}", got[name], want[name], tol)
        if want_g is not None:
            if got_g is None:
                raise LayerMismatch(f"{where} {label}: no gradients")
            for name, a, b in zip(("dz", "dcodebook"), got_g, want_g, strict=True):
                _compare(f"{where} {label}: {name}", a, b, 1e-10)
        state, expected = driver.state(mine), ref.state(base)
        for name in expected:
            _compare(f"{where} {label}: state.{name}", state[name], expected[name], 1e-10)

    for call in range(1, CALLS + 1):
        check(f"train call {call}", True, call)
        if call in EVAL_AFTER:
            check(f"eval after call {call}", False, call)
        if call in RESTORE_AFTER:
            mine = driver.restore(mine)
            check(f"train call {call} + restored", True, call)


def check_layers(driver: LayerDriver | str, *, seed: int = 0) -> list[str]:
    """Run the layer script on ``driver`` (or a named one: ``"torch"``, ``"jax"``,
    ``"jax-jit"``) against the reference layers for every kind, with and without noise.

    Parameters
    ----------
    driver : LayerDriver or str
        The backend's layer driver.
    seed : int, default 0
        Seed of the inputs and draws.

    Returns
    -------
    list of str
        The ids of the cases that passed (all of them: a mismatch raises).

    Raises
    ------
    LayerMismatch
        At the first output, gradient or state leaf that differs, naming the case, the call
        and the field.
    """
    drv = driver_for(driver) if isinstance(driver, str) else driver
    passed = []
    for kind in LAYER_KINDS:
        for noise_std in (0.0, 0.05):
            check_layer_kind(drv, kind, noise_std, seed)
            passed.append(f"{kind.id} noise_std={noise_std:g}")
    return passed
