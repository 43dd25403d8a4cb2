"""The options of a layer, validated once, and the static facts that follow from them.

Every implementation of the layers (the reference, torch, JAX) builds a :class:`LayerSpec` in its
constructor, so the same bad option gets the same error everywhere. Only Python scalars are
inspected here; nothing imports a framework.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

from array_api_compat import array_namespace

from diveq._checks import check_latents, dtype_name

__all__ = ["INITS", "LAYOUTS", "LayerSpec"]

#: Codebook layouts: one ``(K, D)``; product ``(M, K, D / M)``; residual ``(M, K, D)``.
LAYOUTS = ("single", "product", "residual")
#: Codebook inits: ``"symmetric"`` is ``U(-1/K, 1/K)`` (the VQ-VAE convention), ``"positive"``
#: is ``U[0, 1/K)`` (the official package and the paper's compression code).
INITS = ("symmetric", "positive")


def _int(name: str, value: Any, low: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        what = f"an int >= {low}" + (" or None" if optional else "")
        raise TypeError(f"`{name}` must be {what}; got {value!r}")
    if value < low:
        what = f"an int >= {low}" + (" or None" if optional else "")
        raise ValueError(f"`{name}` must be {what}; got {value!r}")


def _real(name: str, value: Any, *, nonnegative: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {value!r}")
    if not math.isfinite(value) or (nonnegative and value < 0):
        what = "finite and >= 0" if nonnegative else "finite"
        raise ValueError(f"`{name}` must be {what}; got {value!r}")


@dataclass(frozen=True)
class LayerSpec:
    """A layer's options (the constructor arguments every backend shares).

    Attributes
    ----------
    layout : {"single", "product", "residual"}
        One codebook, or ``M`` codebooks on feature blocks / residual stages.
    num_codebooks : int
        ``M`` (1 for ``"single"``).
    num_codes : int
        ``K`` per codebook (``>= 2`` when space-filling).
    dim : int
        ``D``, the feature size of ``z``.
    space_filling : bool
        SF-DiVeQ (polyline) instead of DiVeQ.
    noise_std : float
        Standard deviation of the directional noise.
    replacement_iters : int or None
        Dead-code replacement window in train-mode calls (``None``: off). Space-filling
        layers replace only during their warm-up.
    discard_threshold, perturb_eps : float
        Dead-code threshold (share of the window's calls) and donor perturbation scale.
    skip_iters, avg_iters : int
        SF warm-up: quantisation starts at call ``skip_iters``; the rows of the last
        ``avg_iters`` warm-up calls initialise the codebook(s) at call ``skip_iters - 1``.
    feature_axis : int
        Axis of ``z`` holding the features.
    codebook_init : {"symmetric", "positive"}
        Codebook init: ``U(-1/K, 1/K)`` or ``U[0, 1/K)`` elementwise.
    """

    layout: str
    num_codebooks: int
    num_codes: int
    dim: int
    space_filling: bool = False
    noise_std: float = 1e-3
    replacement_iters: int | None = 100
    discard_threshold: float = 0.01
    perturb_eps: float = 1e-9
    skip_iters: int = 1000
    avg_iters: int = 50
    feature_axis: int = -1
    codebook_init: str = "symmetric"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"`layout` must be one of {LAYOUTS}; got {self.layout!r}")
        _int("num_codebooks", self.num_codebooks, 1)
        if self.layout == "single" and self.num_codebooks != 1:
            raise ValueError(
                f"a one-codebook layer has num_codebooks = 1; got {self.num_codebooks}"
            )
        _int("num_codes", self.num_codes, 2 if self.space_filling else 1)
        _int("dim", self.dim, 1)
        if self.layout == "product" and self.dim % self.num_codebooks:
            raise ValueError(
                f"product quantisation needs dim % num_codebooks == 0; got dim = {self.dim}, "
                f"num_codebooks = {self.num_codebooks}"
                + (self._official_order_hint() if self.num_codebooks > self.dim else "")
            )
        # 16+ stages, outnumbering codes and features: what the official order (K, D, M) gives
        if self.composite and self.num_codebooks > max(self.num_codes, self.dim, 15):
            warnings.warn(
                f"{self.num_codebooks} codebooks of {self.num_codes} codes of dim {self.dim}: "
                f"more codebooks than codes or features{self._official_order_hint()}",
                UserWarning,
                stacklevel=4,
            )
        if not isinstance(self.space_filling, bool):
            raise TypeError(f"`space_filling` must be a bool; got {self.space_filling!r}")
        _real("noise_std", self.noise_std, nonnegative=True)
        _int("replacement_iters", self.replacement_iters, 1, optional=True)
        _real("discard_threshold", self.discard_threshold, nonnegative=False)
        _real("perturb_eps", self.perturb_eps, nonnegative=True)
        if self.space_filling:
            _int("skip_iters", self.skip_iters, 0)
            _int("avg_iters", self.avg_iters, 0)
            if self.skip_iters >= 2 and self.avg_iters < 1:
                raise ValueError(
                    f"`avg_iters` must be >= 1 when skip_iters >= 2; got {self.avg_iters!r}"
                )
        if isinstance(self.feature_axis, bool) or not isinstance(
            self.feature_axis, numbers.Integral
        ):
            raise TypeError(f"`feature_axis` must be an int; got {self.feature_axis!r}")
        if self.codebook_init not in INITS:
            raise ValueError(f"`codebook_init` must be one of {INITS}; got {self.codebook_init!r}")

    def _official_order_hint(self) -> str:
        """A note for composite arguments given in the official package's order
        ``(num_embeddings, embedding_dim, num_codebooks)``, when that reading is valid."""
        name = "ProductDiVeQ" if self.layout == "product" else "ResidualDiVeQ"
        m, k, d = self.dim, self.num_codebooks, self.num_codes  # the official reading
        if self.layout == "product" and d % m:
            return ""
        return (
            f". The order here is {name}(num_codebooks, num_codes, dim); the official package's "
            f"is (num_embeddings, embedding_dim, num_codebooks): for {k} codes of dim {d} in {m} "
            f"codebooks write {name}({m}, {k}, {d})"
        )

    @property
    def init_bounds(self) -> tuple[float, float]:
        """``(low, high)`` of the uniform codebook init."""
        bound = 1.0 / self.num_codes
        return (-bound, bound) if self.codebook_init == "symmetric" else (0.0, bound)

    # -- the input of a call -----------------------------------------------------------------
    def check_input(self, z: Any, mask: Any = None) -> tuple[int, ...]:
        """Check a call's latents (and mask) against the layer; return the rows' lead shape.

        ``z`` must be a real floating array with ``dim`` features on ``feature_axis``; ``mask``
        (optional) a bool array of the shape of ``z`` without that axis. Only shapes and dtypes
        are read (no device synchronisation).
        """
        check_latents(z)
        shape = tuple(int(s) for s in z.shape)
        axis = self.feature_axis
        if not -len(shape) <= axis < len(shape):
            raise ValueError(f"`feature_axis` = {axis} is out of range for z.shape = {shape}")
        axis %= len(shape)
        if shape[axis] != self.dim:
            hint = [j for j, s in enumerate(shape) if s == self.dim]
            fix = (
                f"; axis {hint[0]} has size {self.dim}: pass feature_axis={hint[0]}" if hint else ""
            )
            if self.composite and shape[axis] == self.num_codes:
                fix += self._official_order_hint()
            raise ValueError(
                f"feature size mismatch: the layer has dim = {self.dim} but `z` has "
                f"{shape[axis]} features on axis {self.feature_axis} (z.shape = {shape}){fix}"
            )
        lead = shape[:axis] + shape[axis + 1 :]
        if mask is not None:
            got = tuple(int(s) for s in getattr(mask, "shape", ()))
            is_bool = array_namespace(mask).isdtype(mask.dtype, "bool")
            if not is_bool or got != lead:
                raise (ValueError if is_bool else TypeError)(
                    f"`mask` must be a bool array of shape {lead} (z.shape = {shape} without "
                    f"axis {self.feature_axis}); got dtype {dtype_name(mask.dtype)} and shape {got}"
                )
        return lead

    # -- static facts ------------------------------------------------------------------------
    @property
    def composite(self) -> bool:
        """Whether the layer has ``M`` stacked codebooks (product or residual)."""
        return self.layout != "single"

    @property
    def width(self) -> int:
        """``D'``, the feature size of one codebook."""
        return self.dim // self.num_codebooks if self.layout == "product" else self.dim

    @property
    def book_shape(self) -> tuple[int, ...]:
        """Shape of the codebook parameter: ``(K, D)`` or ``(M, K, D')``."""
        shape = (self.num_codes, self.width)
        return (self.num_codebooks, *shape) if self.composite else shape

    @property
    def warmup(self) -> bool:
        """Whether the layer has an SF warm-up (space-filling with ``skip_iters >= 2``)."""
        return self.space_filling and self.skip_iters >= 2

    @property
    def warmup_slots(self) -> int:
        """Warm-up calls whose rows are kept for the init (0 without a warm-up)."""
        return min(self.avg_iters, self.skip_iters - 1) if self.warmup else 0

    @property
    def replaces(self) -> bool:
        """Whether dead-code replacement can happen at all.

        DiVeQ layers: whenever ``replacement_iters`` is set. Space-filling layers replace only
        during the warm-up, which only composites run quantised.
        """
        if self.replacement_iters is None:
            return False
        return not self.space_filling or (self.composite and self.warmup)
