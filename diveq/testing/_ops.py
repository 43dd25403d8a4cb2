"""The table of public functions the conformance kit checks, and how to call each one."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OPS", "Op"]


@dataclass(frozen=True)
class Op:
    """One public function of SPEC section 10/11.

    Attributes
    ----------
    name : str
        Function name, the same in every implementation.
    books : {"single", "product", "residual"}
        Codebook layout: ``(K, D)``, ``(M, K, D/M)`` or ``(M, K, D)``.
    space_filling : bool
        Polyline methods (``K >= 2``, result has ``weights``).
    noise : {None, "z", "z2"}
        Shape of the ``noise`` draw: none, ``z.shape`` or ``(2, *z.shape)``.
    dither : bool
        Whether the op takes a ``dither`` draw.
    noise_std : bool
        Whether the op takes ``noise_std``.
    train : bool
        Differentiable estimator (has a reference ``_vjp``); otherwise hard inference.
    """

    name: str
    books: str = "single"
    space_filling: bool = False
    noise: str | None = None
    dither: bool = False
    noise_std: bool = False
    train: bool = False

    @property
    def min_codes(self) -> int:
        return 2 if self.space_filling else 1

    @property
    def stochastic(self) -> bool:
        return self.noise is not None or self.dither


OPS: tuple[Op, ...] = (
    Op("nearest"),
    Op("quantize"),
    Op("sf_quantize", space_filling=True),
    Op("diveq", noise="z", noise_std=True, train=True),
    Op("sf_diveq", space_filling=True, noise="z2", dither=True, noise_std=True, train=True),
    Op("product_diveq", books="product", noise="z", noise_std=True, train=True),
    Op("residual_diveq", books="residual", noise="z", noise_std=True, train=True),
    Op("product_sf_diveq", "product", True, "z", True, True, True),
    Op("residual_sf_diveq", "residual", True, "z", True, True, True),
    Op("product_quantize", books="product"),
    Op("residual_quantize", books="residual"),
    Op("product_sf_quantize", books="product", space_filling=True),
    Op("residual_sf_quantize", books="residual", space_filling=True),
    Op("ste", train=True),
    Op("nsvq", noise="z", train=True),
    Op("rotation_trick", train=True),
)

OPS_BY_NAME = {op.name: op for op in OPS}
