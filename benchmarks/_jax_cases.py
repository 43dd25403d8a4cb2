"""JAX cases, jitted: the floors, our estimators (``grad`` to ``z`` and the codebook(s)) and our
layers' train calls (``grad`` plus the new state), on the same data as the torch cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._kinds import DRAWS, FUNCTIONS, KINDS, Kind, positional

Case = Callable[[], object]


def cases(arrays: dict[str, np.ndarray], *, layers: bool = True) -> dict[str, Case]:
    """``jax floor`` (and the composites' floors), ``jax <function>`` and ``jax <Layer>``."""
    import jax
    import jax.numpy as jnp

    import diveq.backends.jax as dq

    data = {name: jnp.asarray(v) for name, v in arrays.items()}
    z, grad = data["z"], data["grad"]
    key = jax.random.key(0)

    @jax.jit
    def search(x: jax.Array, c: jax.Array) -> jax.Array:
        return jnp.argmin(jnp.sum(c * c, axis=1) - 2.0 * (x @ c.T), axis=1)

    def floor_books(books: str) -> Case:
        cbs = data[books]
        m, _, width = cbs.shape
        blocks = [z[:, j * width : (j + 1) * width] for j in range(m)]
        parts = blocks if books == "product" else [z] * m
        pairs = list(zip(parts, cbs, strict=True))
        return lambda: jax.block_until_ready([search(x, c) for x, c in pairs])

    out: dict[str, Case] = {
        "jax floor": lambda: search(z, data["codebook"]).block_until_ready(),
        "jax product floor": floor_books("product"),
        "jax residual floor": floor_books("residual"),
    }
    for name, (rows, uniforms) in DRAWS.items():
        out[f"jax floor + {name} draws"] = _floor_draws(search, data, key, rows, uniforms)
    for name, books in FUNCTIONS.items():
        fn = getattr(dq, name)

        def loss(z: jax.Array, c: jax.Array, key: jax.Array, fn: Any = fn) -> jax.Array:
            return jnp.sum(fn(z, c, key=key).values * grad)

        step = jax.jit(jax.grad(loss, argnums=(0, 1)))
        out[f"jax {name}"] = lambda f=step, c=data[books]: jax.block_until_ready(f(z, c, key))
    if layers:
        for kind in KINDS:
            out[f"jax {kind.name} layer"] = _layer(kind, data, key)
    return out


def _floor_draws(search: Any, data: dict[str, Any], key: Any, rows: int, uniforms: int) -> Case:
    """The floor plus the draws of a function (``DRAWS``) from the caller's key, jitted."""
    import jax

    @jax.jit
    def run(x: jax.Array, c: jax.Array, key: jax.Array) -> Any:
        k_noise, k_dither = jax.random.split(key)
        noise = jax.random.normal(k_noise, (rows, *x.shape), x.dtype)
        if not uniforms:
            return search(x, c), noise
        return search(x, c), noise, jax.random.uniform(k_dither, (c.shape[0] + uniforms,), x.dtype)

    z, c = data["z"], data["codebook"]
    return lambda: jax.block_until_ready(run(z, c, key))


def _layer(kind: Kind, data: dict[str, Any], key: Any) -> Case:
    import jax
    import jax.numpy as jnp

    import diveq.backends.jax as dq

    z, grad = data["z"], data["grad"]
    k, d = data["codebook"].shape
    options = dict(kind.options)
    if options.get("skip_iters", 0) >= 2:
        options["rows_per_call"] = z.shape[0]
    layer = getattr(dq, kind.layer)(*positional(kind, k, d), **options)
    _, rest = dq.split_params(layer.init(jax.random.key(1)))

    @jax.jit
    def step(z: jax.Array, params: jax.Array, rest: Any, key: jax.Array) -> Any:
        def loss(z: jax.Array, params: jax.Array) -> Any:
            out, new = layer.apply(dq.merge_params(params, rest), z, key=key)
            return jnp.sum(out.values * grad), new

        grads, new = jax.grad(loss, argnums=(0, 1), has_aux=True)(z, params)
        return grads, dq.split_params(new)

    state = {"params": data[kind.books], "rest": rest}

    def run() -> object:
        grads, (state["params"], state["rest"]) = step(z, state["params"], state["rest"], key)
        return jax.block_until_ready(grads)

    return run
