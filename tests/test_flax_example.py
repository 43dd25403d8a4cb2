"""The Flax NNX VQ-VAE example runs end to end in ``--quick`` mode and prints finite numbers."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("flax")
pytest.importorskip("skimage")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "vqvae_flax_nnx.py"


def test_vqvae_flax_nnx_quick(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [line for line in proc.stdout.splitlines() if re.match(r"(DiVeQ|SF-DiVeQ)\s", line)]
    assert [r.split()[0] for r in rows] == ["DiVeQ", "SF-DiVeQ"], proc.stdout
    for row in rows:
        bits, mse, psnr, perplexity, usage, seconds = map(float, row.split()[1:])
        assert bits == 24 and all(math.isfinite(v) for v in (mse, psnr, perplexity, seconds))
        assert 1 <= perplexity <= 64 and 0 < usage <= 100
