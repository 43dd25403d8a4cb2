"""The benchmark runner must not rot: a tiny-size run (timings are never asserted)."""

from __future__ import annotations

import csv
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
    cases = ("torch floor", "torch diveq", "torch sf_diveq", "jax floor", "jax diveq",
             "jax floor + diveq draws")  # fmt: skip
    layers = ("torch DiVeQ layer", "torch ResidualDiVeQ SF warm-up layer", "jax DiVeQ layer")
    for case in cases + layers:
        assert case in result.stdout
    with open(tmp_path / "times.csv", newline="") as f:
        written = {row["case"]: row for row in csv.DictReader(f)}
    # every layer is compared with the function it runs, on the same input
    assert float(written["torch DiVeQ layer"]["x_function"]) > 0
    assert float(written["jax DiVeQ layer"]["x_function"]) > 0
    assert written["torch floor"]["x_floor"] == ""


def test_breakdown_smoke():
    for fn in ("diveq", "sf_diveq"):
        out = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "breakdown.py"), "--fn", fn,
             "--n", "64", "--k", "8", "--d", "4", "--rounds", "1"],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        for part in ("floor", "search", "draws", "forward + backward, given draws", "lower bound"):
            assert part in out


def test_inference_smoke():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "inference.py"),
         "--n", "64", "--k", "8", "--d", "4", "--rounds", "1"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    for part in ("torch sf_quantize", "torch SFDiVeQ layer, eval", "jax sf_quantize"):
        assert part in out


def test_sweep_summary_marks_the_cases_over_their_target():
    sys.path.insert(0, str(ROOT))
    from benchmarks._report import sweep_summary

    def row(n, k, case, x):
        return {"n": n, "d": 64, "k": k, "case": case, "x_floor": x}

    result = [
        row(4096, 256, "torch diveq", 1.25),  # small N K: target 1.3
        row(4096, 256, "jax diveq", 1.2),
        row(4096, 4096, "torch diveq", 1.25),  # N K = 2^24: target 1.10
        row(4096, 4096, "torch floor", 1.0),
    ]
    head, small, big = sweep_summary(result)
    assert head[:4] == ["N", "K", "D", "torch diveq"]
    assert small[3] == "1.25" and small[-1] == "JAX diveq"
    assert big[3] == "1.25" and big[-1] == "torch diveq"
    assert big[head.index("torch sf_diveq")] == "-"
