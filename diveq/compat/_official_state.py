"""Checkpoints of the official ``diveq`` 0.1.3 layers, read into the torch layers.

An official layer saves ``codebook`` (``(K, D)``, or ``(M, K, D')`` for composites),
``codebook_usage`` (per code, the train calls since the last replacement that used it; absent
for ``SFDIVEQ`` / ``SFDIVEQDetach``) and ``iter_counter`` (its call count, shape ``(1,)``). They
become the layer's ``codebook`` / ``codebooks``, ``calls_used`` (the same meaning) and
``hits`` (set to the same counts, so the next replacement draws donors as the official layer
would), and the train-call count of the extra state. The official options are not saved: the
layer must be built with the official run's options (``replacement_iters``, ``skip_iters``,
``avg_iters``) for the schedules to continue in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from diveq._checkpoint import describe, layer_kind
from diveq._layer_spec import LayerSpec
from diveq.backends.torch._layer import Quantizer

__all__ = ["convert_into", "convert_state_dict"]

_KEYS = ("codebook", "codebook_usage", "iter_counter")


def _is_official(state: Mapping[str, Any], prefix: str) -> bool:
    return prefix + "iter_counter" in state or prefix + "codebook_usage" in state


def convert_state_dict(state_dict: Mapping[str, Any], module: nn.Module) -> dict[str, Any]:
    """Rewrite the official ``diveq`` 0.1.3 entries of a state dict for ``module``'s layers.

    Parameters
    ----------
    state_dict : mapping
        A state dict saved from a model with official layers (e.g. ``model.vq`` an official
        ``DIVEQ``): keys ``<name>.codebook``, ``<name>.codebook_usage``,
        ``<name>.iter_counter``. Other entries are kept as they are.
    module : torch.nn.Module
        The model to load into, whose submodule ``<name>`` is a diveq torch layer (or a
        :mod:`diveq.compat.official` class) built with the official run's options.

    Returns
    -------
    dict
        A new state dict for ``module.load_state_dict``.

    Raises
    ------
    ValueError
        If an official entry has no matching layer, or does not fit the one it matches (another
        kind, codebook shape), or if it was saved inside the SF warm-up's collecting window,
        whose latents the official package does not save.

    Examples
    --------
    >>> import torch
    >>> from diveq.backends.torch import DiVeQ
    >>> from diveq.compat.official import convert_state_dict
    >>> official = {
    ...     "codebook": torch.rand(8, 2) / 8,
    ...     "codebook_usage": torch.zeros(8, dtype=torch.int32),
    ...     "iter_counter": torch.tensor([250], dtype=torch.int32),
    ... }
    >>> layer = DiVeQ(8, 2)
    >>> _ = layer.load_state_dict(convert_state_dict(official, layer))
    >>> layer.train_calls
    250
    """
    out = dict(state_dict)
    layers = {
        n + "." if n else "": m for n, m in module.named_modules() if isinstance(m, Quantizer)
    }
    for prefix, layer in layers.items():
        if _is_official(out, prefix):
            convert_into(out, prefix, layer.spec)
    left = sorted(k for k in out if k.rsplit(".", 1)[-1] in _KEYS[1:])
    if left:
        raise ValueError(
            f"`{left[0]}` is an official diveq entry but `{left[0].rsplit('.', 1)[0]}` is not a "
            "diveq layer of the module: load it into a model built like the one that saved it"
        )
    return out


def convert_into(state: dict[str, Any], prefix: str, spec: LayerSpec) -> None:
    """Replace, in place, the official entries under ``prefix`` by the layer's own."""
    kind = layer_kind(spec)
    codebook = state.pop(prefix + "codebook", None)
    usage = state.pop(prefix + "codebook_usage", None)
    counter = state.pop(prefix + "iter_counter", None)
    if codebook is None:
        raise ValueError(f"`{prefix}codebook` is missing from the official checkpoint")
    if spec.layout == "single" and (usage is None) != spec.space_filling:
        saved, has = ("DIVEQ", "has") if usage is not None else ("SFDIVEQ", "has no")
        raise ValueError(
            f"the official checkpoint under `{prefix}` is of a {saved} layer (it {has} "
            f"codebook_usage) and cannot load into a layer {kind}"
        )
    if tuple(codebook.shape) != spec.book_shape:
        raise ValueError(
            f"`{prefix}codebook` has shape {tuple(codebook.shape)}; the layer {kind} has "
            f"{spec.book_shape} (product codebooks are (M, K, D / M), residual (M, K, D))"
        )
    calls = int(counter.reshape(-1)[0]) if counter is not None else 0
    first = max(spec.skip_iters - spec.avg_iters, 1)
    if spec.warmup and first <= calls < spec.skip_iters - 1:
        raise ValueError(
            f"`{prefix}iter_counter` = {calls} is inside the SF warm-up's collecting window "
            f"(calls {first} to {spec.skip_iters - 1} for skip_iters = {spec.skip_iters}, "
            f"avg_iters = {spec.avg_iters}), and the official package does not save the latents "
            "it collected: load a checkpoint from before or after that window"
        )
    counts = torch.zeros(spec.book_shape[:-1], dtype=torch.int64)
    if usage is not None and not (spec.space_filling and calls >= spec.skip_iters - 1):
        counts = usage.to(torch.int64).reshape(counts.shape)  # warm-up ended: counters restart
    state[prefix + ("codebooks" if spec.composite else "codebook")] = codebook
    state[prefix + "hits"] = counts.clone()
    state[prefix + "calls_used"] = counts.clone()
    state[prefix + "calls"] = torch.tensor(calls, dtype=torch.int64)
    state[prefix + "_extra_state"] = {
        "warmup_rows": None,
        "warmup_valid": None,
        "train_calls": calls,
        "layer": describe(spec),
    }
