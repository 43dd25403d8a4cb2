"""Adapters: how the conformance kit converts arrays, calls and differentiates one backend.

A property is written once against :class:`Adapter`; plugging a new backend in means adding an
adapter here, not writing new tests.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["Adapter", "adapter_for", "available_adapters", "known_adapters"]


class Adapter:
    """NumPy implementation of the adapter protocol (no autodiff).

    Attributes
    ----------
    name : str
        Identifier used in test ids and reports.
    module : module
        The implementation under test (it exposes the public API names).
    differentiable : bool
        Whether :meth:`vjp` is available.
    samples : bool
        Whether the module samples its own draws (``rng=`` / ``generator=`` / ``key=``).
    """

    name = "core-numpy"
    differentiable = False
    samples = False
    #: Whether every new input shape costs a compilation (JAX): properties then draw shapes
    #: from a small fixed set so that compiled functions are reused across examples.
    compiles = False

    def __init__(self, module: ModuleType):
        self.module = module

    def asarray(self, x: np.ndarray, dtype: str | None = None) -> Any:
        """Convert a NumPy array (floating data to ``dtype``)."""
        return np.asarray(x, dtype=dtype) if dtype is not None else np.asarray(x)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Convert a backend array to NumPy."""
        return np.asarray(x)

    def call(self, fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """Call ``fn(*args, **kwargs)`` (a jitting adapter compiles it first)."""
        return fn(*args, **kwargs)

    def vjp(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        cotangent: Any,
    ) -> tuple[np.ndarray, ...]:
        """Gradients of ``<fn(*args, **kwargs), cotangent>`` w.r.t. every positional array.

        ``fn`` returns one array (select the output field before calling).
        """
        raise NotImplementedError(f"{self.name} has no autodiff")

    def rng_kwargs(self, seed: int) -> dict[str, Any]:
        """Keyword arguments that make the module sample its own draws reproducibly."""
        raise NotImplementedError(f"{self.name} takes explicit draws only")


class StrictAdapter(Adapter):
    """``array_api_strict``: the core on the minimal array API."""

    name = "core-strict"

    def __init__(self, module: ModuleType):
        super().__init__(module)
        import array_api_strict

        self.xp = array_api_strict

    def asarray(self, x: np.ndarray, dtype: str | None = None) -> Any:
        x = np.asarray(x)
        if dtype is not None:
            return self.xp.asarray(x.astype(dtype), dtype=getattr(self.xp, dtype))
        return self.xp.asarray(x)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(self.xp.asarray(x, copy=True)._array)


class ReferenceAdapter(Adapter):
    """The NumPy reference itself (for self-consistency and sampling checks)."""

    name = "reference"
    samples = True

    def rng_kwargs(self, seed: int) -> dict[str, Any]:
        return {"rng": np.random.default_rng(seed)}


class TorchAdapter(Adapter):
    """PyTorch (CPU, or ``device=`` e.g. ``"cuda"``): autograd for the VJPs."""

    name = "torch"
    differentiable = True
    samples = True

    def __init__(self, module: ModuleType, device: str = "cpu"):
        super().__init__(module)
        import torch

        self.torch = torch
        self.device = device

    def asarray(self, x: np.ndarray, dtype: str | None = None) -> Any:
        t = self.torch.from_numpy(np.array(x, dtype=dtype) if dtype else np.array(x))
        return t.to(self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, self.torch.Tensor):
            x = x.detach().cpu()
            if x.dtype == self.torch.bfloat16:
                x = x.float()
            return x.numpy()
        return np.asarray(x)

    def vjp(self, fn, args, kwargs, cotangent):
        inputs = [a.detach().clone().requires_grad_(True) for a in args]
        out = fn(*inputs, **kwargs)
        grads = self.torch.autograd.grad(out, inputs, cotangent, allow_unused=True)
        return tuple(
            np.zeros(tuple(a.shape)) if g is None else self.to_numpy(g)
            for a, g in zip(inputs, grads, strict=False)
        )

    def rng_kwargs(self, seed: int) -> dict[str, Any]:
        return {"generator": self.torch.Generator(device=self.device).manual_seed(seed)}


class JaxAdapter(Adapter):
    """JAX, eager or under ``jax.jit``: ``jax.vjp`` for the VJPs."""

    differentiable = True
    samples = True
    compiles = True

    def __init__(self, module: ModuleType, jit: bool = False):
        super().__init__(module)
        import jax

        self.jax = jax
        self.jit = jit
        self.name = "jax-jit" if jit else "jax"
        self._compiled: dict[Any, Any] = {}

    def _cached(self, kind: str, fn: Any, static: dict[str, Any], build: Any) -> Any:
        """One compiled function per (kind, fn, static options), reused across examples."""
        key = (kind, fn, tuple(sorted(static.items())))
        if key not in self._compiled:
            self._compiled[key] = build()
        return self._compiled[key]

    def asarray(self, x: np.ndarray, dtype: str | None = None) -> Any:
        x = np.array(x, dtype=dtype) if dtype else np.array(x)
        return self.jax.numpy.asarray(x)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x.astype("float32") if str(x.dtype) == "bfloat16" else x)

    def _split(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        # noise_std is traced (a 0-d array), so its values share one compilation
        kwargs = {
            k: self.jax.numpy.asarray(v) if k == "noise_std" and isinstance(v, float) else v
            for k, v in kwargs.items()
        }
        arrays = {k: v for k, v in kwargs.items() if isinstance(v, self.jax.Array)}
        static = {k: v for k, v in kwargs.items() if k not in arrays}
        return arrays, static

    def call(self, fn, args, kwargs):
        arrays, static = self._split(kwargs)
        if not self.jit:
            return fn(*args, **arrays, **static)
        compiled = self._cached(
            "call", fn, static, lambda: self.jax.jit(lambda a, ka: fn(*a, **ka, **static))
        )
        return compiled(tuple(args), arrays)

    def vjp(self, fn, args, kwargs, cotangent):
        arrays, static = self._split(kwargs)

        def grads(a, ka, g):
            _, pullback = self.jax.vjp(lambda *p: fn(*p, **ka, **static), *a)
            return pullback(g)

        if self.jit:
            grads = self._cached("vjp", fn, static, lambda: self.jax.jit(grads))
        return tuple(self.to_numpy(g) for g in grads(tuple(args), arrays, cotangent))

    def rng_kwargs(self, seed: int) -> dict[str, Any]:
        return {"key": self.jax.random.key(seed)}


def adapter_for(module: ModuleType | str, *, jit: bool = False, device: str = "cpu") -> Adapter:
    """The adapter of a known implementation module (or its import name)."""
    if isinstance(module, str):
        module = importlib.import_module(module)
    name = module.__name__
    if name == "diveq.backends.torch":
        return TorchAdapter(module, device=device)
    if name == "diveq.backends.jax":
        return JaxAdapter(module, jit=jit)
    if name == "diveq.reference":
        return ReferenceAdapter(module)
    if name == "diveq.core":
        return Adapter(module)
    raise ValueError(
        f"no conformance adapter for module {name!r}; pass adapter= (a diveq.testing.Adapter)"
    )


def known_adapters() -> list[tuple[str, Adapter | None, str]]:
    """Every implementation the kit knows: ``(name, adapter or None, why it is missing)``.

    A framework that is not installed gives ``None`` and the import error, so a test suite can
    show it as a skip with its reason instead of leaving it out silently.
    """
    import diveq.core as core

    found: list[tuple[str, Adapter | None, str]] = [("core-numpy", Adapter(core), "")]
    try:
        found.append(("core-strict", StrictAdapter(core), ""))
    except ImportError as err:
        found.append(("core-strict", None, f"array_api_strict is not installed ({err})"))
    for name, module, jit in (
        ("torch", "diveq.backends.torch", False),
        ("jax", "diveq.backends.jax", False),
        ("jax-jit", "diveq.backends.jax", True),
    ):
        try:
            found.append((name, adapter_for(module, jit=jit), ""))
        except ImportError as err:
            found.append((name, None, f"{module} does not import: {err}"))
    return found


def available_adapters() -> list[Adapter]:
    """Adapters for every implementation that imports here (core on NumPy and strict first);
    :func:`known_adapters` also names the missing ones."""
    return [adapter for _, adapter, _ in known_adapters() if adapter is not None]
