"""Layer drivers: how the layer conformance kit builds, calls, differentiates, inspects and
checkpoints one backend's layers, all in NumPy float64 terms.

A driver hides the framework: the kit gives it NumPy inputs and explicit draws, and reads back
NumPy outputs, gradients and the state in the reference's canonical form
(:class:`diveq.reference.LayerState`: stacked codebooks ``(M, K, D')``, counters ``(M, K)``, the
valid warm-up rows in call order).
"""

from __future__ import annotations

import importlib
import io
from typing import Any

import numpy as np

from diveq._types import LayerDraws

__all__ = [
    "JaxLayerDriver",
    "LayerDriver",
    "ReferenceLayerDriver",
    "TorchLayerDriver",
    "driver_for",
]

Result = tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray] | None]


def _canonical(spec: Any, books: Any, calls: Any, hits: Any, used: Any, rows: Any) -> dict:
    m, k, w = spec.num_codebooks, spec.num_codes, spec.width
    return {
        "codebooks": np.asarray(books, dtype=np.float64).reshape(m, k, w),
        "calls": np.asarray(int(calls)),
        "hits": np.asarray(hits, dtype=np.int64).reshape(m, k),
        "calls_used": np.asarray(used, dtype=np.int64).reshape(m, k),
        "warmup_rows": np.asarray(rows, dtype=np.float64).reshape(-1, m, w),
    }


class LayerDriver:
    """Protocol of a driver; subclasses implement every method.

    ``build(cls, args, options, codebook)`` returns a handle (a layer and its state) with the
    given initial codebook (the layer's own layout); ``call(handle, z, mask, draws, train,
    cotangent)`` runs one call and returns its output fields and, given a cotangent in
    training, the gradients of ``sum(values * cotangent)`` w.r.t. ``z`` and the codebook(s) the
    call used; ``state(handle)`` is the canonical state; ``restore(handle)`` round-trips the
    handle through the framework's own checkpoint format into a fresh layer.
    """

    name = "driver"

    def build(self, cls: str, args: tuple, options: dict, codebook: np.ndarray) -> Any:
        raise NotImplementedError

    def call(self, handle, z, mask, draws, train, cotangent) -> Result:
        raise NotImplementedError

    def state(self, handle: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def restore(self, handle: Any) -> Any:
        raise NotImplementedError


def _fields(out: Any, to_numpy: Any) -> dict[str, np.ndarray]:
    return {name: to_numpy(value) for name, value in out._asdict().items()}


class ReferenceLayerDriver(LayerDriver):
    """The reference layers themselves (the kit's baseline)."""

    name = "reference"

    def __init__(self) -> None:
        self.ref = importlib.import_module("diveq.reference")

    def build(self, cls, args, options, codebook):
        layer = getattr(self.ref, cls)(*args, **options)
        return [layer, layer.init(codebook)]

    def call(self, handle, z, mask, draws, train, cotangent):
        layer, state = handle
        grads = None
        if train and cotangent is not None:
            grads = layer.vjp(state, z, cotangent, mask=mask, draws=draws)
        out, handle[1] = layer.apply(state, z, mask=mask, draws=draws, train=train)
        return _fields(out, np.asarray), grads

    def state(self, handle):
        s = handle[1]
        return _canonical(handle[0].spec, s.codebooks, s.calls, s.hits, s.calls_used, s.warmup_rows)

    def restore(self, handle):
        return [handle[0], handle[1]]


class TorchLayerDriver(LayerDriver):
    """torch ``nn.Module`` layers in float64 on ``device``; checkpoints via ``state_dict``."""

    name = "torch"

    def __init__(self, device: str = "cpu") -> None:
        import torch

        import diveq.backends.torch as dq

        self.torch, self.dq, self.device = torch, dq, device

    def _t(self, x: Any) -> Any:
        return None if x is None else self.torch.as_tensor(np.asarray(x), device=self.device)

    def _np(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def build(self, cls, args, options, codebook):
        layer = getattr(self.dq, cls)(*args, **options, dtype=self.torch.float64)
        layer.to(self.device)
        with self.torch.no_grad():
            layer._param().copy_(self._t(codebook))
        return layer

    def call(self, layer, z, mask, draws, train, cotangent):
        layer.train(train)
        zt = self._t(z).requires_grad_(train and cotangent is not None)
        given = None if draws is None else LayerDraws(*(self._t(d) for d in draws))
        param = layer._param()
        param.grad = None
        out = layer(zt, None if mask is None else self._t(mask), draws=given)
        grads = None
        if zt.requires_grad:
            dz, dbook = self.torch.autograd.grad(
                out.values, [zt, param], self._t(cotangent), allow_unused=True
            )
            dbook = self.torch.zeros_like(param) if dbook is None else dbook
            grads = (self._np(dz), self._np(dbook))
        return _fields(out, self._np), grads

    def state(self, layer):
        rows = [r[v] for r, v in zip(layer._warmup.rows, layer._warmup.valid, strict=True)]
        found = self.torch.cat(rows) if rows else np.zeros((0,))
        found = self._np(found) if rows else found
        return _canonical(
            layer.spec,
            self._np(layer._param()),
            layer.train_calls,
            self._np(layer.hits),
            self._np(layer.calls_used),
            found,
        )

    def restore(self, layer):
        buffer = io.BytesIO()
        self.torch.save(layer.state_dict(), buffer)
        buffer.seek(0)
        fresh = type(layer)(*_args(layer), **_options(layer), dtype=self.torch.float64)
        fresh.to(self.device)
        fresh.load_state_dict(self.torch.load(buffer, weights_only=False))
        return fresh


def _args(layer: Any) -> tuple:
    s = layer.spec
    return (s.num_codebooks, s.num_codes, s.dim) if s.composite else (s.num_codes, s.dim)


def _options(layer: Any) -> dict:
    s, out = layer.spec, {}
    for name in ("noise_std", "feature_axis", "codebook_init"):
        out[name] = getattr(s, name)
    if s.composite or not s.space_filling:
        for name in ("replacement_iters", "discard_threshold", "perturb_eps"):
            out[name] = getattr(s, name)
    if s.space_filling:
        out.update(skip_iters=s.skip_iters, avg_iters=s.avg_iters)
    if s.composite:
        out["space_filling"] = s.space_filling
    return out


class JaxLayerDriver(LayerDriver):
    """JAX layers in float64 (x64 must be on), eager or under ``jax.jit``; checkpoints by
    flattening the state's leaves to NumPy and back."""

    def __init__(self, jit: bool = False, rows_per_call: int = 64) -> None:
        import jax

        import diveq.backends.jax as dq
        from diveq.backends.jax import _state

        self.jax, self.dq, self.jit, self.rows = jax, dq, jit, rows_per_call
        self.dq_state = _state
        self.name = "jax-jit" if jit else "jax"
        self._compiled: dict[Any, Any] = {}

    def build(self, cls, args, options, codebook):
        jnp = self.jax.numpy
        extra = {"rows_per_call": self.rows} if "skip_iters" in options else {}
        layer = getattr(self.dq, cls)(*args, **options, **extra, dtype=jnp.float64)
        state = layer.init(self.jax.random.key(0))
        return [layer, state._replace(**{state._fields[0]: jnp.asarray(codebook)})]

    def _fn(self, layer: Any, train: bool, masked: bool, grads: bool) -> Any:
        jax = self.jax

        def run(state, z, mask, draws, cotangent):
            def loss(z, books):
                s = state._replace(**{state._fields[0]: books})
                out, new = layer.apply(s, z, mask=mask, draws=draws, train=train)
                return jax.numpy.sum(out.values * cotangent), (out, new)

            if grads:
                (_, aux), g = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(z, state[0])
                return aux, g
            return loss(z, state[0])[1], None

        if not self.jit:
            return run
        key = (layer, train, masked, grads)
        if key not in self._compiled:
            self._compiled[key] = jax.jit(run)
        return self._compiled[key]

    def call(self, handle, z, mask, draws, train, cotangent):
        jnp = self.jax.numpy
        layer, state = handle
        grads = train and cotangent is not None
        cot = jnp.zeros(z.shape) if cotangent is None else jnp.asarray(cotangent)
        given = (
            None
            if draws is None
            else LayerDraws(*(None if d is None else jnp.asarray(d) for d in draws))
        )
        fn = self._fn(layer, train, mask is not None, grads)
        (out, handle[1]), g = fn(
            state, jnp.asarray(z), None if mask is None else jnp.asarray(mask), given, cot
        )
        back = None if g is None else (np.asarray(g[0]), np.asarray(g[1]))
        return _fields(out, np.asarray), back

    def state(self, handle):
        layer, s = handle
        rows = np.zeros((0,))
        if s.buffer is not None:
            buffer = self.dq_state.from_bits(s.buffer, layer.dtype)
            rows = np.asarray(buffer)[np.asarray(s.buffer_valid)]
        return _canonical(layer.spec, s[0], s.calls, s.hits, s.calls_used, rows)

    def restore(self, handle):
        layer, state = handle
        leaves, tree = self.jax.tree_util.tree_flatten(state)
        saved = [np.array(x) for x in leaves]
        return [
            layer,
            self.jax.tree_util.tree_unflatten(tree, [self.jax.numpy.asarray(x) for x in saved]),
        ]


def driver_for(name: str) -> LayerDriver:
    """The driver of a named implementation: ``reference``, ``torch``, ``jax``, ``jax-jit``."""
    if name == "reference":
        return ReferenceLayerDriver()
    if name == "torch":
        return TorchLayerDriver()
    if name in ("jax", "jax-jit"):
        return JaxLayerDriver(jit=name == "jax-jit")
    raise ValueError(f"no layer driver named {name!r}")
