"""Layer drivers: how the layer tests build, call, differentiate, train, inspect and checkpoint
one backend's layers, all in NumPy terms.

A driver hides the framework: tests give it NumPy inputs (and explicit draws, or none: then the
handle's own random source, seeded at build, samples them), and read back NumPy outputs and
gradients in the framework's dtypes, and the state in the reference's canonical form
(:class:`diveq.reference.LayerState`: stacked codebooks ``(M, K, D')``, counters ``(M, K)``, the
valid warm-up rows in call order, all float64 / int64). ``bfloat16`` arrays travel as
``ml_dtypes.bfloat16`` (NumPy has none), as JAX hands them out.
"""

from __future__ import annotations

import copy
import importlib
import io
from collections.abc import Sequence
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

Grads = tuple[np.ndarray, np.ndarray]
Result = tuple[dict[str, np.ndarray], Grads | list[Grads] | None]


def _canonical(spec: Any, books: Any, calls: Any, hits: Any, used: Any, rows: Any) -> dict:
    m, k, w = spec.num_codebooks, spec.num_codes, spec.width
    return {  # copies: a torch buffer seen through NumPy changes with the layer
        "codebooks": np.array(books, dtype=np.float64).reshape(m, k, w),
        "calls": np.array(int(calls)),
        "hits": np.array(hits, dtype=np.int64).reshape(m, k),
        "calls_used": np.array(used, dtype=np.int64).reshape(m, k),
        "warmup_rows": np.array(rows, dtype=np.float64).reshape(-1, m, w),
    }


def _cotangents(cotangent: Any, train: bool) -> tuple[list[Any], bool]:
    """The cotangents to pull back (none outside training) and whether one came bare."""
    if cotangent is None or not train:
        return [], False
    if isinstance(cotangent, Sequence):
        return list(cotangent), False
    return [cotangent], True


def _grads(pairs: list[Grads], bare: bool) -> Grads | list[Grads] | None:
    if not pairs:
        return None
    return pairs[0] if bare else pairs


def _fields(out: Any, to_numpy: Any) -> dict[str, np.ndarray]:
    return {name: to_numpy(value) for name, value in out._asdict().items()}


class LayerDriver:
    """Protocol of a driver; subclasses implement every method.

    ``build(cls, args, options, codebook, seed=0)`` returns a handle: the layer ``cls(*args,
    **options)`` (``options["dtype"]``, a dtype name, default ``"float64"``, sets the codebook
    dtype; the reference is always float64) with the given initial codebook (the layer's own
    layout), and a random source seeded with ``seed`` for the draws a call is not given.

    ``call(handle, z, mask, draws, train, cotangent)`` runs one call and returns its output
    fields and, in training, the gradients ``(dz, dcodebook)`` of ``sum(values * cotangent)``
    w.r.t. ``z`` and the codebook(s) the call used: one pair for one cotangent, a list of pairs
    for a list of cotangents (one backward pass each over the same forward), ``None`` for none.

    ``descend(handle, dcodebook, lr)`` takes a plain gradient step on the codebook(s),
    ``codebook - lr * dcodebook`` in the codebook dtype (what an optimiser would do between
    calls). ``state(handle)`` is the canonical state. ``restore(handle)`` round-trips the
    handle, random source included, through the framework's own checkpoint format into a fresh
    layer.
    """

    name = "driver"

    def build(self, cls: str, args: tuple, options: dict, codebook: Any, seed: int = 0) -> Any:
        raise NotImplementedError

    def call(self, handle, z, mask, draws, train, cotangent) -> Result:
        raise NotImplementedError

    def descend(self, handle: Any, dcodebook: np.ndarray, lr: float) -> None:
        raise NotImplementedError

    def state(self, handle: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def restore(self, handle: Any) -> Any:
        raise NotImplementedError


class ReferenceLayerDriver(LayerDriver):
    """The reference layers themselves (the kit's baseline); gradients need explicit draws."""

    name = "reference"

    def __init__(self) -> None:
        self.ref = importlib.import_module("diveq.reference")

    def build(self, cls, args, options, codebook, seed=0):
        options = {k: v for k, v in options.items() if k != "dtype"}
        layer = getattr(self.ref, cls)(*args, **options)
        return [layer, layer.init(codebook), np.random.default_rng(seed)]

    def call(self, handle, z, mask, draws, train, cotangent):
        layer, state, rng = handle
        cots, bare = _cotangents(cotangent, train)
        pairs = [layer.vjp(state, z, c, mask=mask, draws=draws) for c in cots]
        out, handle[1] = layer.apply(state, z, mask=mask, draws=draws, train=train, rng=rng)
        return _fields(out, np.asarray), _grads(pairs, bare)

    def descend(self, handle, dcodebook, lr):
        books = handle[1].codebooks
        handle[1] = handle[1]._replace(codebooks=books - lr * np.reshape(dcodebook, books.shape))

    def state(self, handle):
        s = handle[1]
        return _canonical(handle[0].spec, s.codebooks, s.calls, s.hits, s.calls_used, s.warmup_rows)

    def restore(self, handle):
        return [handle[0], handle[1], copy.deepcopy(handle[2])]


class TorchLayerDriver(LayerDriver):
    """torch ``nn.Module`` layers on ``device``, drawing from a ``torch.Generator``; optionally
    every forward under ``torch.autocast(dtype=autocast)``; checkpoints via ``state_dict`` and
    the generator state, loaded with ``weights_only=True``."""

    name = "torch"

    def __init__(self, device: str = "cpu", autocast: str | None = None) -> None:
        import torch

        import diveq.backends.torch as dq

        self.torch, self.dq, self.device, self.autocast = torch, dq, device, autocast

    def _t(self, x: Any) -> Any:
        if x is None:
            return None
        x = np.asarray(x)
        if x.dtype.name == "bfloat16":  # ml_dtypes: the same bits
            bits = self.torch.from_numpy(x.view(np.int16).copy())
            return bits.view(self.torch.bfloat16).to(self.device)
        return self.torch.as_tensor(x, device=self.device)

    def _np(self, x: Any) -> np.ndarray:
        x = x.detach().cpu()
        if x.dtype == self.torch.bfloat16:
            ml_dtypes = importlib.import_module("ml_dtypes")
            return x.view(self.torch.int16).numpy().view(ml_dtypes.bfloat16)
        return x.numpy()

    def _fresh(self, cls: Any, args: tuple, options: dict, dtype: Any, seed: int) -> tuple:
        layer = cls(*args, **options, dtype=dtype).to(self.device)
        return layer, self.torch.Generator(self.device).manual_seed(seed)

    def build(self, cls, args, options, codebook, seed=0):
        options = dict(options)
        dtype = getattr(self.torch, options.pop("dtype", "float64"))
        layer, gen = self._fresh(getattr(self.dq, cls), args, options, dtype, seed)
        with self.torch.no_grad():
            layer._param().copy_(self._t(codebook))
        return layer, gen

    def call(self, handle, z, mask, draws, train, cotangent):
        torch, (layer, gen) = self.torch, handle
        cots, bare = _cotangents(cotangent, train)
        layer.train(train)
        zt = self._t(z).requires_grad_(bool(cots))
        given = None if draws is None else LayerDraws(*(self._t(d) for d in draws))
        param = layer._param()
        autocast = torch.autocast(
            torch.device(self.device).type,
            dtype=getattr(torch, self.autocast or "bfloat16"),
            enabled=self.autocast is not None,
        )
        with autocast:
            out = layer(zt, self._t(mask), generator=gen, draws=given)
        pairs = []
        for i, c in enumerate(cots):
            cot = self._t(c).to(out.values.dtype)
            dz, dbook = torch.autograd.grad(
                out.values, [zt, param], cot, retain_graph=i + 1 < len(cots), allow_unused=True
            )
            dbook = torch.zeros_like(param) if dbook is None else dbook
            pairs.append((self._np(dz), self._np(dbook)))
        return _fields(out, self._np), _grads(pairs, bare)

    def descend(self, handle, dcodebook, lr):
        param = handle[0]._param()
        with self.torch.no_grad():
            param.add_(self._t(dcodebook).to(param.dtype), alpha=-lr)

    def state(self, handle):
        layer = handle[0]
        store = layer._warmup  # kept rows in call order, slot padding invalid
        found = np.zeros((0,))
        if store.rows is not None:
            found = self._np(store.rows[store.valid].double())
        return _canonical(
            layer.spec,
            self._np(layer._param().double()),
            layer.train_calls,
            self._np(layer.hits),
            self._np(layer.calls_used),
            found,
        )

    def restore(self, handle):
        layer, gen = handle
        buffer = io.BytesIO()
        self.torch.save({"layer": layer.state_dict(), "rng": gen.get_state()}, buffer)
        buffer.seek(0)
        saved = self.torch.load(buffer, weights_only=True)
        dtype = layer._param().dtype
        # another seed: the checkpoint, not the build, must set the generator
        fresh, rng = self._fresh(type(layer), _args(layer), _options(layer), dtype, seed=12345)
        fresh.load_state_dict(saved["layer"])
        rng.set_state(saved["rng"])
        return fresh, rng


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
    """JAX layers (float64 needs x64 on), eager or under ``jax.jit``, drawing from a key split
    per train-mode call; checkpoints by saving the state's leaves and the key data with
    ``np.savez``."""

    def __init__(self, jit: bool = False, rows_per_call: int = 64) -> None:
        import jax

        import diveq.backends.jax as dq
        from diveq.backends.jax import _state

        self.jax, self.dq, self.jit, self.rows = jax, dq, jit, rows_per_call
        self.dq_state = _state
        self.name = "jax-jit" if jit else "jax"
        self._compiled: dict[Any, Any] = {}

    def build(self, cls, args, options, codebook, seed=0):
        jnp, options = self.jax.numpy, dict(options)
        dtype = jnp.dtype(options.pop("dtype", "float64"))
        if cls == "SFDiVeQ" or options.get("space_filling"):  # sizes the static warm-up buffer
            options["rows_per_call"] = self.rows
        layer = getattr(self.dq, cls)(*args, **options, dtype=dtype)
        key = self.jax.random.key(seed)
        state = layer.init(key)
        books = jnp.asarray(np.asarray(codebook), dtype=dtype)
        return [layer, state._replace(**{state._fields[0]: books}), key]

    def _fn(self, layer: Any, train: bool) -> Any:
        jax = self.jax

        def run(state, z, mask, draws, key, cots):
            def values(z, books):
                s = state._replace(**{state._fields[0]: books})
                out, new = layer.apply(s, z, key=key, mask=mask, draws=draws, train=train)
                return out.values, (out, new)

            if not cots:
                return values(z, state[0])[1], ()
            v, pull, aux = jax.vjp(values, z, state[0], has_aux=True)
            return aux, tuple(pull(c.astype(v.dtype)) for c in cots)

        if not self.jit:
            return run
        if (layer, train) not in self._compiled:  # jit retraces per shape, dtype and structure
            self._compiled[layer, train] = jax.jit(run)
        return self._compiled[layer, train]

    def call(self, handle, z, mask, draws, train, cotangent):
        jnp = self.jax.numpy
        layer, state, key = handle
        if train:
            key, handle[2] = self.jax.random.split(key)
        cots, bare = _cotangents(cotangent, train)
        given = (
            None
            if draws is None
            else LayerDraws(*(None if d is None else jnp.asarray(d) for d in draws))
        )
        (out, handle[1]), pulled = self._fn(layer, train)(
            state,
            jnp.asarray(z),
            None if mask is None else jnp.asarray(mask),
            given,
            key,
            tuple(jnp.asarray(c) for c in cots),
        )
        pairs = [(np.asarray(dz), np.asarray(dbook)) for dz, dbook in pulled]
        return _fields(out, np.asarray), _grads(pairs, bare)

    def descend(self, handle, dcodebook, lr):
        state = handle[1]
        books = state[0] - lr * self.jax.numpy.asarray(dcodebook, dtype=state[0].dtype)
        handle[1] = state._replace(**{state._fields[0]: books})

    def state(self, handle):
        layer, s = handle[:2]
        rows = np.zeros((0,))
        if s.buffer is not None:
            buffer = self.dq_state.from_bits(s.buffer, layer.dtype)
            rows = np.asarray(buffer)[np.asarray(s.buffer_valid)]
        return _canonical(layer.spec, s[0], s.calls, s.hits, s.calls_used, rows)

    def restore(self, handle):
        jax, (layer, state, key) = self.jax, handle
        leaves, tree = jax.tree_util.tree_flatten(state)
        buffer = io.BytesIO()
        np.savez(buffer, jax.random.key_data(key), *map(np.asarray, leaves))
        buffer.seek(0)
        with np.load(buffer) as saved:
            data, *arrays = (saved[f"arr_{i}"] for i in range(len(saved.files)))
        # .npy keeps no ml_dtypes dtype (bfloat16 comes back as raw bytes): the template's
        arrays = [a.view(np.asarray(leaf).dtype) for a, leaf in zip(arrays, leaves, strict=True)]
        loaded = jax.tree_util.tree_unflatten(tree, [jax.numpy.asarray(a) for a in arrays])
        return [layer, loaded, jax.random.wrap_key_data(jax.numpy.asarray(data))]


def driver_for(name: str) -> LayerDriver:
    """The driver of a named implementation: ``reference``, ``torch``, ``jax``, ``jax-jit``."""
    if name == "reference":
        return ReferenceLayerDriver()
    if name == "torch":
        return TorchLayerDriver()
    if name in ("jax", "jax-jit"):
        return JaxLayerDriver(jit=name == "jax-jit")
    raise ValueError(f"no layer driver named {name!r}")
