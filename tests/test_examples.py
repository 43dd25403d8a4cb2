"""The examples run end to end (in ``--quick`` mode) and print finite numbers."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("skimage")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\d+|nan|inf)", re.IGNORECASE)
METHOD_ROWS = ("STE", "rotation trick", "NSVQ", "DiVeQ", "SF-DiVeQ (polyline)")


def _run(script: str, out: Path, timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=out,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _numbers(text: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(text)]


def test_compress_quick(tmp_path):
    stdout = _run("compress.py", tmp_path, timeout=300)
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    for column in ("bits/patch", "test PSNR dB", "SSIM", "usage %", "perplexity", "seconds"):
        assert column in lines[header]
    rows = {}
    for line in lines[header + 2 :]:
        for name in METHOD_ROWS:
            if re.match(re.escape(name) + r"\s{2,}", line):
                rows[name] = line
    assert set(rows) == set(METHOD_ROWS), stdout
    for name, line in rows.items():
        values = _numbers(line[len(name) :])
        assert len(values) == 6, line  # bits, PSNR, SSIM, usage, perplexity, seconds
        assert all(math.isfinite(v) for v in values), line
        assert values[0] == 128, line
        assert 0 <= values[3] <= 100, line
    for name in ("psnr_curves.png", "codebook_usage.png", "reconstructions.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_toy2d_jax_quick(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    stdout = _run("toy2d_jax.py", tmp_path, timeout=120)
    lines = [line for line in stdout.splitlines() if "distortion" in line]
    assert [line.split()[0] for line in lines] == ["DiVeQ", "SF-DiVeQ"], stdout
    for line in lines:
        values = _numbers(line)
        assert values and all(math.isfinite(v) for v in values), line
    assert (tmp_path / "toy2d.png").stat().st_size > 0
