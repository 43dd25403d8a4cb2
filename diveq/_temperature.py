"""The temperature schedule of the Gumbel-softmax quantiser (framework-free)."""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["gumbel_temperature"]


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be finite and > 0; got {value!r}")
    return float(value)


def gumbel_temperature(
    step: int, *, start: float = 1.0, end: float = 0.5, rate: float = 1e-5, every: int = 1
) -> float:
    """The annealed temperature ``max(end, start exp(-rate t))`` of Jang et al. (2017).

    Parameters
    ----------
    step : int
        Training step ``>= 0``.
    start : float, default 1.0
        Temperature at step 0.
    end : float, default 0.5
        Floor of the temperature.
    rate : float, default 1e-5
        Decay rate ``r >= 0`` per step.
    every : int, default 1
        Update period: ``t`` is ``step`` rounded down to a multiple of ``every``.

    Returns
    -------
    float
        The temperature ``tau`` for ``step``, for ``gumbel_softmax(..., tau=tau)`` or a
        ``GumbelVQ`` layer's ``tau``.

    Raises
    ------
    TypeError
        If ``step`` or ``every`` is not an int, or a rate or temperature is not a real number.
    ValueError
        If ``step < 0``, ``every < 1``, ``rate < 0`` or a temperature is not finite and ``> 0``.

    Notes
    -----
    Jang, Gu and Poole, *Categorical Reparameterization with Gumbel-Softmax* (ICLR 2017),
    anneal ``tau = max(0.5, exp(-r t))`` with ``r`` in ``{1e-5, 1e-4}``, updated every
    ``N = 500`` steps: ``gumbel_temperature(step, rate=1e-4, every=500)``. A DALL-E style
    dVAE anneals from 1 to 1/16 instead (``end=1/16``).

    Examples
    --------
    >>> gumbel_temperature(0)
    1.0
    >>> round(gumbel_temperature(5_000, rate=1e-4, every=500), 4)
    0.6065
    >>> gumbel_temperature(100_000, rate=1e-4)
    0.5
    """
    for name, value in (("step", step), ("every", every)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be an int; got {value!r}")
    if step < 0:
        raise ValueError(f"`step` must be >= 0; got {step}")
    if every < 1:
        raise ValueError(f"`every` must be >= 1; got {every}")
    start, end = _positive("start", start), _positive("end", end)
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"`rate` must be a real number; got {rate!r}")
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"`rate` must be finite and >= 0; got {rate!r}")
    t = (int(step) // int(every)) * int(every)
    return max(end, start * math.exp(-float(rate) * t))
