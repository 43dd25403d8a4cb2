"""The benchmark runner must not rot: a tiny-size run (timings are never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_smoke(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    for case in ("torch floor", "torch diveq", "torch sf_diveq", "jax floor", "jax diveq"):
        assert case in result.stdout
    assert (tmp_path / "times.csv").read_text().startswith("n,d,k,case,seconds")
