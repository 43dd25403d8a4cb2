"""JAX cases: the floor and our estimators, jitted, forward + backward."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Case = Callable[[], object]


def cases(arrays: dict[str, np.ndarray]) -> dict[str, Case]:
    """``jax-floor`` and jitted ``value_and_grad`` steps of our estimators."""
    import jax
    import jax.numpy as jnp

    import diveq.backends.jax as dq

    z = jnp.asarray(arrays["z"])
    c = jnp.asarray(arrays["codebook"])
    grad = jnp.asarray(arrays["grad"])
    key = jax.random.key(0)

    @jax.jit
    def floor(z: jax.Array, c: jax.Array) -> jax.Array:
        scores = jnp.sum(c * c, axis=1) - 2.0 * (z @ c.T)
        return jnp.argmin(scores, axis=1)

    def step(fn: Callable[..., object]) -> Callable[..., object]:
        def loss(z: jax.Array, c: jax.Array, key: jax.Array) -> jax.Array:
            return jnp.sum(fn(z, c, key=key).values * grad)

        return jax.jit(jax.grad(loss, argnums=(0, 1)))

    out: dict[str, Case] = {"jax floor": lambda: floor(z, c).block_until_ready()}
    for name in ("diveq", "sf_diveq"):
        compiled = step(getattr(dq, name))
        out[f"jax {name}"] = lambda f=compiled: jax.block_until_ready(f(z, c, key))
    return out
