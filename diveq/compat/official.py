"""The official ``diveq`` 0.1.3 package's classes, on the diveq torch layers (a drop-in).

Change the import line of a script written for the official package and nothing else::

    # from diveq import DIVEQ, SFDIVEQ, ProductDIVEQ   (the official package)
    from diveq.compat.official import DIVEQ, SFDIVEQ, ProductDIVEQ

The eight classes keep the official names, argument order, defaults and results:
``forward(z)`` returns ``(z_q, indices, perplexity)`` (composites: lists of per-codebook
indices and perplexities; perplexities are Python floats) and ``inference(z)`` the hard
quantisation. Each class *is* the native layer (``isinstance(DIVEQ(8, 2),
diveq.backends.torch.DiVeQ)``), so its ``state_dict()`` loads into the native layer unchanged;
official state dicts (``codebook``, ``codebook_usage``, ``iter_counter``) load into it directly,
and into native layers through :func:`convert_state_dict`. What stays different, and why, is on
the documentation's migration and differences pages.
"""

from __future__ import annotations

from diveq.compat._official_layers import (
    DIVEQ,
    SFDIVEQ,
    DIVEQDetach,
    ProductDIVEQ,
    ProductSFDIVEQ,
    ResidualDIVEQ,
    ResidualSFDIVEQ,
    SFDIVEQDetach,
)
from diveq.compat._official_state import convert_state_dict

__all__ = [
    "DIVEQ",
    "SFDIVEQ",
    "DIVEQDetach",
    "ProductDIVEQ",
    "ProductSFDIVEQ",
    "ResidualDIVEQ",
    "ResidualSFDIVEQ",
    "SFDIVEQDetach",
    "convert_state_dict",
]
