"""The functional API of the JAX backend: :mod:`diveq.core` bound to JAX.

Missing draws are sampled from the caller's ``key`` (one subkey per draw, split with
:func:`jax.random.split`), in the dtype of ``z`` but at least float32 (the core's work dtype).
Stop-gradient is :func:`jax.lax.stop_gradient`. Every function is traceable: it works under
:func:`jax.jit`, :func:`jax.vmap`, :func:`jax.grad` and :func:`jax.vjp`.

Each public function is itself compiled with :func:`jax.jit` (array arguments traced, the rest
static), as :mod:`jax.numpy` functions are: an eager call then costs one compilation per shape
instead of one per primitive, and argument errors are still raised at call time (they are
raised while tracing).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from diveq.core._bind import bind
from diveq.core._faces import Idiom
from diveq.core._fused import route

__all__ = ["FUNCTIONS", "IDIOM", "draw_dtype", "sample"]

IDIOM = Idiom(
    module="diveq.backends.jax",
    array="jax.Array",
    rng="key: jax.Array | None",
    rng_doc="A :func:`jax.random.key`, split into one subkey per draw not given; the same key "
    "gives the same draws.",
    note="The JAX version of :func:`diveq.reference.{name}`: traceable (``jax.jit``, "
    "``jax.vmap``, ``jax.grad``) and compiled once per shape.",
    example=("jnp.asarray", "key=jax.random.key(0)"),
    raises="a draw is needed and neither it nor ``key`` is given",
    imports=("import jax.numpy as jnp",),
)


def draw_dtype(like: jax.Array) -> Any:
    """dtype of sampled draws: that of ``like``, at least float32 (the core's work dtype)."""
    return jnp.promote_types(like.dtype, jnp.float32)


def sample(
    rng: jax.Array | None,
    requests: list[tuple[str, tuple[int, ...]]],
    like: jax.Array,
) -> list[jax.Array]:
    """One standard-normal (``"normal"``), ``[0, 1)`` (``"uniform"``) or standard Gumbel
    (``"gumbel"``) array per request.

    ``rng`` is the caller's ``key`` (a :func:`jax.random.key`), split into one subkey per
    request.

    Raises
    ------
    ValueError
        If ``rng`` (the caller's ``key``) is ``None``.
    """
    if rng is None:
        wanted = ", ".join(f"`{_DRAW_NAMES[kind]}` of shape {shape}" for kind, shape in requests)
        given = ", ".join(f"{_DRAW_NAMES[kind]}=" for kind, _ in requests)
        hint = (
            ""
            if all(k == "gumbel" for k, _ in requests)
            else (" (noise_std=0 is the deterministic variant, without noise)")
        )
        raise ValueError(
            f"`key` is required to sample {wanted}: pass key=jax.random.key(seed) "
            f"or the draws explicitly ({given}){hint}"
        )
    dtype = draw_dtype(like)
    keys = jax.random.split(rng, len(requests))
    out = []
    for sub, (kind, shape) in zip(keys, requests, strict=True):
        out.append(_DRAWS[kind](sub, shape, dtype=dtype))
    return out


_DRAW_NAMES = {"normal": "noise", "uniform": "dither", "gumbel": "gumbel"}
_DRAWS = {"normal": jax.random.normal, "uniform": jax.random.uniform, "gumbel": jax.random.gumbel}


@functools.partial(jax.jit, static_argnums=(0, 1))
def _run(fn: Callable[..., Any], static: tuple[tuple[str, Any], ...], arrays: dict[str, Any]):
    return fn(**dict(static), **arrays)


def _compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its array arguments traced and the others static, under one ``jax.jit``."""
    signature: inspect.Signature = fn.__signature__  # type: ignore[attr-defined]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        arrays = {k: v for k, v in bound.arguments.items() if _is_arrays(v)}
        static = tuple((k, v) for k, v in bound.arguments.items() if k not in arrays)
        try:
            hash(static)
        except TypeError:  # an unhashable option: run uncompiled
            return fn(*args, **kwargs)
        return _run(fn, static, arrays)

    return wrapper


_ARRAYS = (jax.Array, np.ndarray)


def _is_arrays(value: Any) -> bool:
    """An array, or a tuple of arrays (a state such as ``EMAState``): traced, not static."""
    if isinstance(value, tuple) and value:
        return all(isinstance(v, _ARRAYS) for v in value)
    return isinstance(value, _ARRAYS)


# chunk_size="fused" / "fused-interpret" opt into the Pallas kernels (docs: Performance).
FUNCTIONS: dict[str, Callable[..., Any]] = route(
    {
        name: _compiled(fn)
        for name, fn in bind(IDIOM, sample=sample, stop_gradient=jax.lax.stop_gradient).items()
    },
    "diveq.backends.jax._pallas_search",
)
