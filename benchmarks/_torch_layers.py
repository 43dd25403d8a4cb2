"""torch layer cases: the train call of each of our layer kinds and of the official layers.

A train call is what one training step asks of a layer: forward in train mode (the estimator,
usage counts, perplexity, the state update) and the backward to ``z`` and the codebook(s).
"""

from __future__ import annotations

from typing import Any

import torch

import diveq.backends.torch as dq
from benchmarks._kinds import Kind, M, positional
from benchmarks._peers import load_official
from benchmarks._torch_cases import Case


def _train_call(layer: Any, z: torch.Tensor, grad: torch.Tensor, param: torch.Tensor, **kw: Any):
    def run() -> object:
        z.grad = param.grad = None
        out = layer(z, **kw)
        values = out.values if hasattr(out, "values") else out[0]
        values.backward(grad)
        return values

    return run


def ours(kind: Kind, t: dict[str, torch.Tensor]) -> Case:
    """``dq.<kind.layer>`` train call on ``t["z"]``, starting from the data's codebook(s)."""
    k, d = t["codebook"].shape
    layer = getattr(dq, kind.layer)(*positional(kind, k, d), **kind.options)
    layer = layer.to(t["z"].device).train()
    param = layer.codebooks if kind.composite else layer.codebook
    with torch.no_grad():
        param.copy_(t[kind.books])
    z = t["z"].clone().requires_grad_(True)
    gen = torch.Generator(device=z.device).manual_seed(1)
    return _train_call(layer, z, t["grad"], param, generator=gen)


def official(kind: Kind, t: dict[str, torch.Tensor]) -> Case | None:
    """The official ``diveq`` 0.1.3 class of ``kind`` (``None`` when not unpacked or none)."""
    mod = load_official()
    if mod is None or kind.official is None:
        return None
    k, d = t["codebook"].shape
    args: tuple[int, ...] = (k, d, M) if kind.composite else (k, d)
    options: dict[str, Any] = {"allow_warning": False}
    if kind.official != "SFDIVEQ":  # the one class without the option
        options["verbose"] = False
    if "SF" in kind.official:  # initialised within the timing warm-up
        options.update(skip_iters=2, avg_iters=1)
        if kind.composite:  # the official composites require replacement_iters < skip_iters
            options["replacement_iters"] = 1
    layer = getattr(mod, kind.official)(*args, **options).to(t["z"].device)
    param = layer.codebook
    if param.shape == t[kind.books].shape:
        with torch.no_grad():
            param.copy_(t[kind.books])
    z = t["z"].clone().requires_grad_(True)
    return _train_call(layer, z, t["grad"], param)
