"""What a layer's checkpoint says about the layer that wrote it, and the check when it loads.

A checkpoint carries the layer's kind and every option that shapes its state (the codebook
shapes) or its schedule (the replacement window, the SF warm-up). Loading it into a layer built
differently is then a ``ValueError`` naming both values, never a silent change of meaning (an SF
state read as a DiVeQ one, a warm-up resumed under another schedule). Options that do neither
(``noise_std``, ``discard_threshold``, ``perturb_eps``, ``feature_axis``, ``codebook_init``)
may differ. Only Python scalars; no framework is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from diveq._layer_spec import LayerSpec

__all__ = ["check_checkpoint", "describe", "from_signature", "layer_kind", "signature"]

#: Version of the checkpoint layout; a newer one is refused with a clear error. 2: the torch
#: layers keep the call count in a ``calls`` buffer and the SF warm-up rows in one fixed-capacity
#: tensor (their format-1 checkpoints, the count and per-call row lists in the extra state, still
#: load); the JAX state is unchanged (format-1 signatures fit).
FORMAT = 2

_NAMES = {"single": "DiVeQ", "product": "ProductDiVeQ", "residual": "ResidualDiVeQ"}
_SHAPES = ("num_codebooks", "num_codes", "dim")
_FIX = (
    "build the layer with the checkpoint's values (to change them on purpose, load first, then "
    "assign the new value, e.g. `layer.{name} = {new}`)"
)


def layer_kind(spec: LayerSpec) -> str:
    """The layer class a spec belongs to, as its constructor would be written."""
    name = _NAMES[spec.layout]
    if not spec.space_filling:
        return name
    return "SFDiVeQ" if spec.layout == "single" else f"{name}(space_filling=True)"


def describe(spec: LayerSpec) -> dict[str, Any]:
    """The layer's kind, shape and schedule options, for its checkpoint (picklable scalars)."""
    return {
        "format": FORMAT,
        "kind": layer_kind(spec),
        **{name: getattr(spec, name) for name in _SHAPES},
        "replacement_iters": spec.replacement_iters,
        "skip_iters": spec.skip_iters,
        "avg_iters": spec.avg_iters,
    }


#: The layer kinds in the order of their codes in :func:`signature`.
_KINDS = (
    "DiVeQ",
    "SFDiVeQ",
    "ProductDiVeQ",
    "ProductDiVeQ(space_filling=True)",
    "ResidualDiVeQ",
    "ResidualDiVeQ(space_filling=True)",
)
_CODED = ("num_codebooks", "num_codes", "dim", "replacement_iters", "skip_iters", "avg_iters")


def signature(spec: LayerSpec) -> tuple[int, ...]:
    """:func:`describe` as integers (for array-only checkpoints, e.g. the JAX layer state):
    the format, the kind's code, then :data:`_CODED` (``-1`` for ``replacement_iters=None``)."""
    values = describe(spec)
    coded = [-1 if values[name] is None else int(values[name]) for name in _CODED]
    return (FORMAT, _KINDS.index(values["kind"]), *coded)


def from_signature(codes: Sequence[int]) -> dict[str, Any]:
    """Inverse of :func:`signature`: the :func:`describe` mapping; ``ValueError`` if ``codes``
    is not a signature this version can read."""
    codes = [int(c) for c in codes]
    if len(codes) != 2 + len(_CODED) or not 0 <= codes[1] < len(_KINDS):
        raise ValueError(f"not a diveq layer signature: {codes}")
    saved: dict[str, Any] = {"format": codes[0], "kind": _KINDS[codes[1]]}
    saved.update(zip(_CODED, codes[2:], strict=True))
    if saved["replacement_iters"] < 0:
        saved["replacement_iters"] = None
    return saved


def _warmup_done(skip_iters: int, calls: int) -> bool:
    """Whether ``calls`` train-mode calls have finished an SF warm-up of ``skip_iters``."""
    return skip_iters < 2 or calls >= skip_iters - 1


def check_checkpoint(
    spec: LayerSpec, saved: Mapping[str, Any], calls: int, fix: str = _FIX
) -> None:
    """Raise ``ValueError`` if a checkpoint written by the layer ``saved`` (:func:`describe`),
    after ``calls`` train-mode calls, would change meaning in a layer built as ``spec``.

    The kind and shapes must match. The SF warm-up schedule must match unless no warm-up has
    started or both schedules have finished it by ``calls``; the replacement window must match
    unless the checkpoint sits on a window boundary (empty counters), this layer replaces no
    more codes, or replacement is off here.
    """
    if saved.get("format", FORMAT) > FORMAT:
        raise ValueError(
            f"the checkpoint was written by a newer diveq (layer format {saved['format']}; this "
            f"version reads format {FORMAT}): upgrade diveq to load it"
        )
    kind = layer_kind(spec)
    if saved["kind"] != kind:
        raise ValueError(
            f"the checkpoint was written by a layer {saved['kind']} and cannot load into a layer "
            f"{kind}"
        )
    for name in _SHAPES:
        if saved[name] != getattr(spec, name):
            raise ValueError(
                f"the checkpoint's {kind} has {name} = {saved[name]}; this layer has "
                f"{name} = {getattr(spec, name)}"
            )
    if spec.space_filling:
        _check_warmup(spec, saved, calls, fix)
    _check_window(spec, saved, calls, fix)


def _check_warmup(spec: LayerSpec, saved: Mapping[str, Any], calls: int, fix: str) -> None:
    old = (saved["skip_iters"], saved["avg_iters"])
    new = (spec.skip_iters, spec.avg_iters)
    if old == new or calls == 0:
        return
    if _warmup_done(old[0], calls) and _warmup_done(new[0], calls):
        return
    name, value = ("skip_iters", new[0]) if old[0] != new[0] else ("avg_iters", new[1])
    if not _warmup_done(old[0], calls):
        where, effect = "inside its SF warm-up", "the warm-up would resume under another schedule"
    else:
        where, effect = "after its SF warm-up", "this layer would warm up again and overwrite it"
    raise ValueError(
        f"the checkpoint was saved at train call {calls}, {where}, with skip_iters = {old[0]}, "
        f"avg_iters = {old[1]}; this layer has skip_iters = {new[0]}, avg_iters = {new[1]}, so "
        f"{effect}: " + fix.format(name=name, new=value)
    )


def _check_window(spec: LayerSpec, saved: Mapping[str, Any], calls: int, fix: str) -> None:
    old, new = saved["replacement_iters"], spec.replacement_iters
    if old == new or new is None or not spec.replaces:
        return
    if spec.space_filling and _warmup_done(spec.skip_iters, calls):
        return  # space-filling composites replace during their warm-up only
    done = calls % old if old is not None else calls
    if done == 0:
        return
    counted = f"{done} of the window's {old} calls" if old is not None else f"all {calls} calls"
    raise ValueError(
        f"the checkpoint was saved at train call {calls} with replacement_iters = {old}, its "
        f"usage counters covering {counted}; this layer has replacement_iters = {new}, so the "
        "next dead-code judgement would mix two windows: "
        + fix.format(name="replacement_iters", new=new)
    )
