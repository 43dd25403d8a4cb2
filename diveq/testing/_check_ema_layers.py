"""``check_ema_layers``: a backend's :class:`EMAVQ` against the reference layer, call by call.

The layer kit of :mod:`diveq.testing._check_layers` is shaped by the DiVeQ layers' state
(counters, warm-up rows, replacement draws); the EMA layer has none of it and a different
state, so it gets this compact script of its own: channels-first latents (``feature_axis=1``),
NaN and inf rows, masks, a call whose rows are all masked out, a code no row ever reaches,
eval calls in between (which must change nothing) and, for torch, a ``state_dict`` round trip.
After every call the outputs, the gradient of ``sum(values * cotangent) + loss`` w.r.t. ``z``,
and the state must agree with the reference (float64, ``rtol = 1e-10``; perplexity ``1e-6``).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any

import numpy as np

import diveq.reference as ref
from diveq.testing._check_layers import LayerMismatch, _compare

__all__ = ["check_ema_layers"]

CALLS, K, DIM, SHAPE = 8, 6, 4, (2, 4, 5)  # z: (batch, D, length), features on axis 1
OPTIONS: dict[str, Any] = {"decay": 0.8, "eps": 1e-3, "beta": 0.3, "feature_axis": 1}
EVAL_AFTER, RESTORE_AFTER, ALL_MASKED = (2, 5), (4,), 6

Call = Callable[[np.ndarray, Any, bool, np.ndarray], tuple[dict[str, Any], np.ndarray]]


def _reference(codebook: np.ndarray) -> tuple[Call, Callable[[], Any]]:
    layer = ref.EMAVQ(K, DIM, **OPTIONS)
    box = [layer.init(codebook)]

    def call(z, mask, train, cot):
        dz = layer.vjp(box[0], z, cot, mask=mask)
        out, box[0] = layer.apply(box[0], z, mask=mask, train=train)
        return out._asdict(), dz

    return call, lambda: box[0]


def _torch(codebook: np.ndarray) -> tuple[Call, Callable[[], Any]]:
    import torch

    import diveq.backends.torch as dq

    box = [dq.EMAVQ(K, DIM, **OPTIONS, dtype=torch.float64)]
    box[0].reset_parameters(torch.as_tensor(codebook))

    def call(z, mask, train, cot):
        layer = box[0].train(train)
        zt = torch.as_tensor(z).requires_grad_(True)
        out = layer(zt, None if mask is None else torch.as_tensor(mask))
        objective = (out.values * torch.as_tensor(cot)).sum() + out.loss
        (dz,) = torch.autograd.grad(objective, zt)
        return {k: v.detach().numpy() for k, v in out._asdict().items()}, dz.numpy()

    def state():
        if restore[0]:  # a state_dict round trip into a fresh layer
            restore[0] = False
            buffer = io.BytesIO()
            torch.save(box[0].state_dict(), buffer)
            buffer.seek(0)
            fresh = dq.EMAVQ(K, DIM, **OPTIONS, dtype=torch.float64)
            fresh.load_state_dict(torch.load(buffer, weights_only=True))
            box[0] = fresh
        return tuple(b.numpy() for b in box[0].state)

    restore = [False]
    state.restore = restore  # type: ignore[attr-defined]
    return call, state


def _jax(codebook: np.ndarray, jit: bool) -> tuple[Call, Callable[[], Any]]:
    import jax

    import diveq.backends.jax as dq

    layer = dq.EMAVQ(K, DIM, **OPTIONS, dtype=jax.numpy.float64)
    box = [dq.ema_init(jax.numpy.asarray(codebook))]

    def run(state, z, mask, cot, train):
        def f(z):
            out, new = layer.apply(state, z, mask=mask, train=train)
            return (out.values, out.loss), (out, new)

        _, pull, (out, new) = jax.vjp(f, z, has_aux=True)
        (dz,) = pull((cot, jax.numpy.ones((), cot.dtype)))
        return out, new, dz

    compiled = {t: jax.jit(functools.partial(run, train=t)) for t in (True, False)}

    def call(z, mask, train, cot):
        args = (box[0], jax.numpy.asarray(z), None if mask is None else jax.numpy.asarray(mask))
        out, box[0], dz = (
            compiled[train](*args, jax.numpy.asarray(cot))
            if jit
            else run(*args, jax.numpy.asarray(cot), train)
        )
        return {k: np.asarray(v) for k, v in out._asdict().items()}, np.asarray(dz)

    return call, lambda: tuple(np.asarray(x) for x in box[0])


def _inputs(call: int, rng: np.random.Generator) -> tuple[np.ndarray, Any, np.ndarray]:
    z = rng.standard_normal(SHAPE)
    if call % 3 == 1:
        z[0, 1, 2], z[1, 3, 0] = np.nan, np.inf
    mask = None if call % 2 else rng.random((SHAPE[0], SHAPE[2])) > 0.3
    if call == ALL_MASKED:
        mask = np.zeros((SHAPE[0], SHAPE[2]), dtype=bool)
    return z, mask, rng.standard_normal(SHAPE)


def check_ema_layers(name: str, *, seed: int = 0) -> None:
    """Run the EMA layer script on ``"torch"``, ``"jax"`` or ``"jax-jit"`` against the
    reference layer.

    Parameters
    ----------
    name : {"torch", "jax", "jax-jit"}
        The backend (JAX needs x64 for its float64 layer).
    seed : int, default 0
        Seed of the inputs.

    Raises
    ------
    LayerMismatch
        At the first output, gradient or state field that differs, naming the call and field.
    ValueError
        For an unknown ``name``.
    """
    rng = np.random.default_rng(seed)
    codebook = rng.standard_normal((K, DIM))
    codebook[-1] += 40.0  # no row ever gets here: its moving averages only decay
    makers = {"torch": _torch, "jax": lambda c: _jax(c, False), "jax-jit": lambda c: _jax(c, True)}
    if name not in makers:
        raise ValueError(f"no EMA layer check for {name!r}; pick one of {sorted(makers)}")
    (mine, mine_state), (base, base_state) = makers[name](codebook), _reference(codebook)

    def check(label: str, call: int, train: bool) -> None:
        z, mask, cot = _inputs(call, rng)
        (got, got_dz), (want, want_dz) = mine(z, mask, train, cot), base(z, mask, train, cot)
        where = f"{name} EMAVQ {label}"
        for field in want:
            tol = 1e-6 if field == "perplexity" else 1e-10
            _compare(f"{where}: output.{field}", got[field], want[field], tol)
        _compare(f"{where}: dz", got_dz, want_dz, 1e-10)
        for field, g, w in zip(ref.EMAState._fields, mine_state(), base_state(), strict=True):
            _compare(f"{where}: state.{field}", g, w, 1e-10)

    for call in range(1, CALLS + 1):
        check(f"train call {call}", call, True)
        if call in EVAL_AFTER:
            check(f"eval after call {call}", call, False)
        if call in RESTORE_AFTER and hasattr(mine_state, "restore"):
            mine_state.restore[0] = True
            mine_state()
            check(f"train call {call} + restored", call, True)
    final = mine_state()[0]
    if not np.all(np.isfinite(final)):
        raise LayerMismatch(f"{name} EMAVQ: the final codebook is not finite")
