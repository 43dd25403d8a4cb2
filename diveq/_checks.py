"""Argument validation shared by every implementation.

Only shapes, dtypes and Python scalars are inspected here, so the checks never force a device
synchronisation. Value checks (finiteness, dither range) live in :mod:`diveq.reference`, which
always runs them, and in the layers where they are cheap.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from array_api_compat import array_namespace, device, is_torch_array

__all__ = [
    "check_codebook",
    "check_codebooks",
    "check_draw",
    "check_hard",
    "check_indices",
    "check_latents",
    "check_noise_std",
    "check_num_codes",
    "check_same_device",
    "check_tau",
]


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in x.shape)


def dtype_name(dtype: Any) -> str:
    """A dtype as every framework spells it in messages: ``float32``, not ``torch.float32``."""
    return str(dtype).removeprefix("torch.")


def check_latents(z: Any, name: str = "z") -> None:
    """Raise unless ``z`` is a real floating array with at least one axis."""
    xp = array_namespace(z)
    if not xp.isdtype(z.dtype, "real floating"):
        raise TypeError(
            f"`{name}` must have a real floating dtype (float16/bfloat16/float32/float64); "
            f"got dtype {dtype_name(z.dtype)} with shape {_shape(z)}"
        )
    if z.ndim < 1:
        raise ValueError(f"`{name}` must have shape (..., D); got a 0-d array")


def _check_codebook_dtype(codebook: Any, name: str) -> None:
    xp = array_namespace(codebook)
    if not xp.isdtype(codebook.dtype, "real floating"):
        raise TypeError(
            f"`{name}` must have a real floating dtype; got dtype {codebook.dtype} "
            f"with shape {_shape(codebook)}"
        )


def check_same_device(z: Any, **arrays: Any) -> None:
    """Raise unless every torch tensor in ``arrays`` is on the device of ``z``.

    Only torch tensors are compared: JAX checks devices itself when it dispatches (naming the
    arguments), and traced arrays have no device.
    """
    if not is_torch_array(z):
        return
    where = device(z)
    for name, a in arrays.items():
        if is_torch_array(a) and device(a) != where:
            raise ValueError(
                f"`{name}` is on device {device(a)} but `z` is on device {where} "
                f"({name}.shape = {_shape(a)}, z.shape = {_shape(z)}); move both to one device"
            )


def check_codebook(z: Any, codebook: Any, *, min_codes: int = 1, name: str = "codebook") -> None:
    """Validate a single codebook of shape ``(K, D)`` against latents ``(..., D)``."""
    check_latents(z)
    _check_codebook_dtype(codebook, name)
    check_same_device(z, **{name: codebook})
    if codebook.ndim != 2:
        raise ValueError(
            f"`{name}` must have rank 2, shape (K, D); got shape {_shape(codebook)} "
            f"(z.shape = {_shape(z)})"
        )
    k, d = _shape(codebook)
    if d != z.shape[-1]:
        raise ValueError(
            f"feature size mismatch: `z` has D = {z.shape[-1]} (z.shape = {_shape(z)}) but "
            f"`{name}` has D = {d} ({name}.shape = {_shape(codebook)})"
        )
    check_num_codes(k, min_codes, name=name, shape=_shape(codebook))


def check_codebooks(z: Any, codebooks: Any, *, product: bool, min_codes: int = 1) -> None:
    """Validate stacked codebooks ``(M, K, D')`` for product (``D = M D'``) or residual
    (``D' = D``) quantisation."""
    check_latents(z)
    _check_codebook_dtype(codebooks, "codebooks")
    check_same_device(z, codebooks=codebooks)
    if codebooks.ndim != 3:
        raise ValueError(
            f"`codebooks` must have rank 3, shape (M, K, D'); got shape {_shape(codebooks)} "
            f"(z.shape = {_shape(z)})"
        )
    m, k, dm = _shape(codebooks)
    d = int(z.shape[-1])
    if m < 1:
        raise ValueError(
            f"`codebooks` must hold at least one codebook; got shape {_shape(codebooks)}"
        )
    if product:
        if d % m != 0:
            raise ValueError(
                f"product quantisation needs D % M == 0: z.shape = {_shape(z)} has D = {d}, "
                f"codebooks.shape = {_shape(codebooks)} has M = {m}"
            )
        if dm * m != d:
            raise ValueError(
                f"feature size mismatch: product codebooks need D' = D / M = {d // m}; got "
                f"codebooks.shape = {_shape(codebooks)} for z.shape = {_shape(z)}"
            )
    elif dm != d:
        raise ValueError(
            f"feature size mismatch: residual codebooks need D' = D = {d}; got "
            f"codebooks.shape = {_shape(codebooks)} for z.shape = {_shape(z)}"
        )
    check_num_codes(k, min_codes, name="codebooks", shape=_shape(codebooks))


def check_num_codes(k: int, min_codes: int, *, name: str, shape: tuple[int, ...]) -> None:
    """Raise unless the number of codewords ``k`` is at least ``min_codes``."""
    if k < min_codes:
        what = "space-filling quantisation needs" if min_codes >= 2 else "quantisation needs"
        raise ValueError(
            f"{what} at least {min_codes} codewords; `{name}` has K = {k} ({name}.shape = {shape})"
        )


def check_noise_std(noise_std: Any) -> None:
    """Raise unless ``noise_std`` is a finite number ``>= 0``.

    Array-valued ``noise_std`` (a traced or device scalar) is accepted without a value check, so
    that the check never synchronises with a device.
    """
    if isinstance(noise_std, bool):
        raise TypeError(f"`noise_std` must be a real number; got {noise_std!r}")
    if isinstance(noise_std, (int, float)):
        if not math.isfinite(noise_std) or noise_std < 0:
            raise ValueError(f"`noise_std` must be finite and >= 0; got {noise_std!r}")
        return
    if getattr(noise_std, "ndim", None) != 0:
        raise ValueError(
            f"`noise_std` must be a scalar; got {type(noise_std).__name__} "
            f"with shape {getattr(noise_std, 'shape', None)}"
        )


def check_tau(tau: Any) -> None:
    """Raise unless the temperature ``tau`` is a finite number ``> 0`` (arrays: a scalar, whose
    value is not inspected, as for :func:`check_noise_std`)."""
    if isinstance(tau, bool):
        raise TypeError(f"`tau` must be a real number; got {tau!r}")
    if isinstance(tau, (int, float)):
        if not math.isfinite(tau) or tau <= 0:
            raise ValueError(f"`tau` must be finite and > 0; got {tau!r}")
        return
    if getattr(tau, "ndim", None) != 0:
        shape = getattr(tau, "shape", None)
        raise ValueError(f"`tau` must be a scalar; got {type(tau).__name__} with shape {shape}")


def check_hard(hard: Any) -> None:
    """Raise unless ``hard`` is a bool."""
    if not isinstance(hard, bool):
        raise TypeError(f"`hard` must be a bool; got {hard!r}")


def check_draw(name: str, draw: Any, expected: tuple[int, ...], like: Any = None) -> None:
    """Raise unless an explicit random draw has the expected shape, a floating dtype and (given
    ``like``, the latents) the device of ``like``."""
    got = _shape(draw)
    if got != tuple(expected):
        raise ValueError(f"`{name}` must have shape {tuple(expected)}; got shape {got}")
    xp = array_namespace(draw)
    if not xp.isdtype(draw.dtype, "real floating"):
        raise TypeError(f"`{name}` must have a real floating dtype; got {draw.dtype}")
    if like is not None:
        check_same_device(like, **{name: draw})


def check_indices(indices: Any, num_codes: Any = None, *, z: Any = None) -> None:
    """Raise unless ``indices`` is an integer array (of shape ``z.shape[:-1]`` given ``z``) and
    ``num_codes`` (when given) is an int ``>= 1``. Index values are not inspected (no sync)."""
    integral = isinstance(num_codes, numbers.Integral) and not isinstance(num_codes, bool)
    if num_codes is not None and not integral:
        raise TypeError(f"`num_codes` must be a positive int; got {num_codes!r}")
    if num_codes is not None and num_codes < 1:
        raise ValueError(f"`num_codes` must be >= 1; got {num_codes}")
    xp = array_namespace(indices)
    if not xp.isdtype(indices.dtype, "integral"):
        raise TypeError(
            f"`indices` must have an integer dtype; got dtype {indices.dtype} "
            f"with shape {_shape(indices)}"
        )
    if z is not None:
        if _shape(indices) != _shape(z)[:-1]:
            raise ValueError(
                f"`indices` must have shape {_shape(z)[:-1]}; got shape {_shape(indices)} "
                f"(z.shape = {_shape(z)})"
            )
        check_same_device(z, indices=indices)
