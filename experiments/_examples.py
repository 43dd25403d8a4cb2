"""The demo's building blocks (``examples/``), imported rather than copied.

The demo's helper modules import each other by their bare names (sphinx-gallery runs the
scripts from their own folder), so the folder goes on ``sys.path`` here once.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from _patches import load_patches, to_image  # noqa: E402
from _train import Config, Metrics, Run, evaluate, train  # noqa: E402
from _vqvae import INITS, VQVAE, Autoencoder, Baseline, Layer, make_quantizer  # noqa: E402

__all__ = [
    "INITS",
    "VQVAE",
    "Autoencoder",
    "Baseline",
    "Config",
    "Layer",
    "Metrics",
    "Run",
    "evaluate",
    "load_patches",
    "make_quantizer",
    "to_image",
    "train",
]
