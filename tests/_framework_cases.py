"""What the Flax NNX, Flax Linen and Equinox tests share: the layer kinds, the data, a plain
JAX training run to compare with, and orbax save / restore.

Every kind goes through a replacement window (a far, dead code is replaced at call 2) or an
SF warm-up (rows of calls 2 and 3 kept, the codebook initialised at call 3, quantised from
call 4) within ``STEPS`` jitted training steps. The frameworks' runs must equal the plain JAX
layer's, given the same initial codebook and keys: the codebook after each optimiser step and
every counter. float64 throughout, so that differently fused programs agree to ``RTOL``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

import diveq.backends.jax as dq

ROWS, DIM, STEPS, SAVE_AT = 12, 4, 6, 3
KEY = jax.random.key(3)
RTOL = 1e-10
WARMUP = {"skip_iters": 4, "avg_iters": 2, "rows_per_call": ROWS}
KINDS: dict[str, tuple[str, tuple[int, ...], dict[str, Any]]] = {
    "DiVeQ": ("DiVeQ", (6, DIM), {"replacement_iters": 2}),
    "SFDiVeQ": ("SFDiVeQ", (5, DIM), dict(WARMUP)),
    "ProductDiVeQ": ("ProductDiVeQ", (2, 6, DIM), {"replacement_iters": 2}),
    "ResidualDiVeQ": ("ResidualDiVeQ", (2, 6, DIM), {"replacement_iters": 2}),
    "ProductDiVeQ-sf": (
        "ProductDiVeQ",
        (2, 6, DIM),
        {"replacement_iters": 2, "space_filling": True, **WARMUP},
    ),
    "ResidualDiVeQ-sf": (
        "ResidualDiVeQ",
        (2, 6, DIM),
        {"replacement_iters": 2, "space_filling": True, **WARMUP},
    ),
}
#: Compared after every step; ``replaced`` is not (Linen / Equinox clear it on write-back).
FIELDS = ("calls", "hits", "calls_used", "buffer", "buffer_valid")
OPTIMIZER = optax.adam(0.05)


def options(kind: str) -> tuple[str, tuple[int, ...], dict[str, Any]]:
    """(class name, positional args, options) with the float64 dtype of the tests."""
    name, args, opts = KINDS[kind]
    return name, args, {**opts, "noise_std": 0.01, "dtype": jnp.float64}


def jax_layer(kind: str) -> Any:
    name, args, opts = options(kind)
    return getattr(dq, name)(*args, **opts)


@functools.cache
def jitted_apply(kind: str) -> Any:
    """The plain layer's ``apply`` under ``jax.jit`` (one per kind, shared by the tests)."""
    return jax.jit(jax_layer(kind).apply)


def first_codebook(kind: str, seed: int = 0) -> jax.Array:
    """A start with one far code per codebook, dead in every window (as the layer kit's)."""
    shape = jax_layer(kind).init(jax.random.key(0))[0].shape
    books = np.random.default_rng(seed).standard_normal(shape)
    books[..., -1, :] += 40.0
    return jnp.asarray(books)


def data(seed: int = 1) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).standard_normal((STEPS, ROWS, DIM)))


def loss_of(values: jax.Array, z: jax.Array) -> jax.Array:
    return jnp.mean((values - 0.5 * z) ** 2)


@functools.cache
def _plain_step(kind: str) -> Any:
    layer = jax_layer(kind)

    @jax.jit
    def step(params, rest, opt_state, z, key):
        def loss_fn(params):
            out, new = layer.apply(dq.merge_params(params, rest), z, key=key)
            return loss_of(out.values, z), new

        (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        params, rest = dq.split_params(new)
        updates, opt_state = OPTIMIZER.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss

    return step


def plain_run(kind: str, book: jax.Array, keys: list[jax.Array]) -> list[dict[str, Any]]:
    """The plain JAX layer's state after each training step."""
    params, rest = dq.split_params(jax_layer(kind).init(jax.random.key(0)))
    params, opt_state, step, out = book, OPTIMIZER.init(book), _plain_step(kind), []
    for z, key in zip(data(), keys, strict=True):
        params, rest, opt_state, _ = step(params, rest, opt_state, z, key)
        out.append(snapshot(dq.merge_params(params, rest)))
    return out


def snapshot(state: Any) -> dict[str, Any]:
    """The compared fields of a layer state as NumPy (``None`` kept)."""
    got = {"codebook": np.asarray(state[0])}
    for name in FIELDS:
        value = getattr(state, name)
        got[name] = None if value is None else np.asarray(value)
    return got


def assert_same(got: dict[str, Any], want: dict[str, Any], where: str, exact: bool = False):
    assert got.keys() == want.keys(), where
    for name, value in want.items():
        if value is None:
            assert got[name] is None, f"{name} at {where}"
        elif exact or name != "codebook":
            np.testing.assert_array_equal(got[name], value, err_msg=f"{name} at {where}")
        else:
            np.testing.assert_allclose(got[name], value, rtol=RTOL, atol=1e-12, err_msg=where)


def assert_events(kind: str, states: list[dict[str, Any]], first: jax.Array) -> None:
    """The run went through what it is meant to test: a replacement or the warm-up init."""
    space_filling = "SF" in kind or kind.endswith("-sf")
    calls = [int(s["calls"]) for s in states]
    assert calls == list(range(1, STEPS + 1))
    if space_filling:
        assert states[1]["buffer_valid"].any()  # rows kept at call 2
        assert not states[2]["buffer_valid"].any()  # and consumed by the init at call 3
    far = np.asarray(first)[..., -1, :]
    if "Product" in kind or "Residual" in kind or kind == "DiVeQ":
        moved = np.abs(states[1]["codebook"][..., -1, :] - far).max()
        assert moved > 10, "the far code was not replaced at call 2"


def save_restore(tree: Any, path: Any) -> Any:
    """orbax ``StandardCheckpointer`` round trip of a pytree of arrays (``None`` kept)."""
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path, tree)
    checkpointer.wait_until_finished()
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
    return checkpointer.restore(path, target)
