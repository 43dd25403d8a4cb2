"""The opt-in fused search kernels on a GPU: conformance on the device, then one timing table.

Part ``fused`` of ``benchmarks/device_check.py`` (``python benchmarks/device_check.py fused``).
On a CUDA machine it checks the compiled kernels (Triton for torch, Pallas for JAX when JAX has a
GPU) against :mod:`diveq.reference` and times, per size, the fused kernel, cuBLAS + ``argmin``
over the whole score matrix, the current tiled search and the official layer's forward.
``--dry-run`` runs the same logic on the CPU at tiny sizes through the kernels' interpreters
(Triton's needs ``TRITON_INTERPRET=1`` before Triton is imported, which it sets), so the script
cannot rot without a GPU (``tests/test_fused_search.py`` runs it); its timings mean nothing.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks`, as run.py does

#: (N, K, D) timed on a GPU: the issue's size and two smaller ones
SIZES = ((2**19, 2**14, 64), (2**16, 2**12, 64), (2**14, 2**10, 32))
DRY_SIZES = ((64, 70, 5),)
#: conformance shapes: partial tiles, D not a power of two (and > 64), and a larger random one
#: (the reference is exact but slow: its float64 distances take seconds at 4096 x 1024)
SHAPES = ((45, 70, 67), (1029, 300, 64))
DRY_SHAPES = ((45, 70, 67),)


def inputs(n: int, k: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float64 latents and a codebook with a duplicated codeword (an exact tie)."""
    rng = np.random.default_rng(seed)
    z, c = rng.standard_normal((n, d)), rng.standard_normal((k, d))
    if k > 3:
        c[k - 1] = c[1]
        z[0] = c[1] + 1e-3 * rng.standard_normal(d)
    return z, c


def vertex_distances(z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Exact squared distances from the row ``z`` to every codeword (or point)."""
    return np.sum((c - z) ** 2, axis=1)


def segment_distances(z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Exact squared distances from the row ``z`` to every segment of the polyline ``c``."""
    a, e = c[:-1], c[1:] - c[:-1]
    ee = np.sum(e * e, axis=1)
    t = np.clip(np.sum((z - a) * e, axis=1) / np.where(ee > 0, ee, 1.0), 0.0, 1.0)
    return np.sum((a + t[:, None] * e - z) ** 2, axis=1)


def near_ties(
    z: np.ndarray,
    c: np.ndarray,
    rows: np.ndarray,
    distances: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rel: float = 1e-5,
) -> int:
    """How many of ``rows`` have their best and second-best distinct distances within ``rel``
    of the magnitudes the expanded-form scores round at (``||z||^2 + max ||c||^2``): there fp32
    scores may legitimately pick either (SPEC section 8)."""
    count = 0
    for r in rows:
        dist = np.unique(distances(z[r], c))
        scale = np.sum(z[r] ** 2) + np.max(np.sum(c**2, axis=1))
        if dist.size > 1 and dist[1] - dist[0] <= rel * scale:
            count += 1
    return count


def compare(
    label: str,
    got: np.ndarray,
    want: np.ndarray,
    z: np.ndarray,
    c: np.ndarray,
    distances: Callable[[np.ndarray, np.ndarray], np.ndarray] = vertex_distances,
) -> str:
    """One line: mismatching indices, and how many of them are near-ties."""
    bad = np.flatnonzero(got != want)
    tie = near_ties(z, c, bad, distances) if bad.size else 0
    verdict = "ok" if bad.size == tie else "MISMATCH"
    return f"{label}: {bad.size}/{want.size} differ ({tie} near-ties) {verdict}"


def torch_conformance(device: str, mode: str, shapes: tuple[tuple[int, int, int], ...]) -> None:
    import torch

    import diveq.backends.torch as dq
    import diveq.reference as ref
    from diveq.backends.torch._triton_search import KERNELS
    from diveq.core._fused import dithered_nearest

    for n, k, d in shapes:
        z, c = inputs(n, k, d)
        lam = np.random.default_rng(1).random(k - 1)
        for dtype in (torch.float32, torch.float64):
            zt, ct, lt = (torch.tensor(a, dtype=dtype, device=device) for a in (z, c, lam))
            zr, cr, lr = (a.cpu().double().numpy() for a in (zt, ct, lt))
            tag = f"torch {device} {mode} N={n} K={k} D={d} {str(dtype)[6:]}"
            got = dq.nearest(zt, ct, chunk_size=mode).cpu().numpy()
            print(compare(f"{tag} nearest", got, ref.nearest(zr, cr), zr, cr), flush=True)
            got = dq.sf_quantize(zt, ct, chunk_size=mode).indices.cpu().numpy()
            want = ref.sf_quantize(zr, cr).indices
            line = compare(f"{tag} sf_quantize", got, want, zr, cr, segment_distances)
            print(line, flush=True)
            got = dithered_nearest(KERNELS, zt, ct, lt, mode).cpu().numpy()
            want = ref.sf_diveq(zr, cr, noise_std=0.0, dither=lr).indices
            points = (1 - lr[:, None]) * cr[:-1] + lr[:, None] * cr[1:]
            print(compare(f"{tag} dithered", got, want, zr, points), flush=True)


def jax_conformance(mode: str, shapes: tuple[tuple[int, int, int], ...]) -> None:
    import jax
    import jax.numpy as jnp

    import diveq.backends.jax as dq
    import diveq.reference as ref

    jax.config.update("jax_enable_x64", True)
    for n, k, d in shapes:
        z, c = inputs(n, k, d)
        for dtype in (jnp.float32, jnp.float64):
            zj, cj = jnp.asarray(z, dtype=dtype), jnp.asarray(c, dtype=dtype)
            zr, cr = np.asarray(zj, dtype=np.float64), np.asarray(cj, dtype=np.float64)
            tag = f"jax {jax.default_backend()} {mode} N={n} K={k} D={d} {dtype.__name__}"
            got = np.asarray(dq.nearest(zj, cj, chunk_size=mode))
            print(compare(f"{tag} nearest", got, ref.nearest(zr, cr), zr, cr), flush=True)
            got = np.asarray(dq.sf_quantize(zj, cj, chunk_size=mode).indices)
            want = ref.sf_quantize(zr, cr).indices
            line = compare(f"{tag} sf_quantize", got, want, zr, cr, segment_distances)
            print(line, flush=True)


def clock(fn: Callable[[], Any], sync: Callable[[], None], reps: int) -> float:
    """Median seconds of ``fn`` over ``reps`` runs after one warm-up run."""
    fn()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_cases(z: Any, c: Any, mode: str) -> dict[str, Callable[[], Any]]:
    """The searches timed with torch, by name (``None`` entries are skipped)."""
    import torch

    import diveq.backends.torch as dq
    from benchmarks._peers import load_official

    weight = (-2.0 * c).T.contiguous()
    bias = (c * c).sum(1)
    cases: dict[str, Callable[[], Any]] = {
        "fused kernel": lambda: dq.nearest(z, c, chunk_size=mode),
        "cuBLAS+argmin (full N x K)": lambda: torch.addmm(bias, z, weight).argmin(1),
        "tiled search (default)": lambda: dq.nearest(z, c),
        "fused sf_quantize": lambda: dq.sf_quantize(z, c, chunk_size=mode),
        "tiled sf_quantize": lambda: dq.sf_quantize(z, c),
    }
    official = load_official()
    if official is not None:
        layer = official.DIVEQ(*c.shape, allow_warning=False, verbose=False).to(z.device)
        with torch.no_grad():
            layer.codebook.copy_(c)

        def run_official() -> Any:
            with torch.no_grad():
                return layer(z)[1]

        cases["official DIVEQ forward"] = run_official
    return cases


def timings(device: str, mode: str, sizes: tuple[tuple[int, int, int], ...], reps: int) -> None:
    """One table: milliseconds per search and the ratio to the tiled search."""
    import torch

    import diveq.backends.torch as dq

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = []
    for n, k, d in sizes:
        gen = torch.Generator(device=device).manual_seed(0)
        z = torch.randn(n, d, device=device, generator=gen)
        c = torch.randn(k, d, device=device, generator=gen)
        results = {}
        for name, fn in torch_cases(z, c, mode).items():
            try:
                results[name] = clock(fn, sync, reps)
            except torch.OutOfMemoryError:
                results[name] = float("nan")
                torch.cuda.empty_cache()
        base = results["tiled search (default)"]
        for name, sec in results.items():
            rows.append((f"N={n} K={k} D={d}", name, sec * 1e3, sec / base))
        # at scale the fused indices are checked against the tiled search's
        zn, cn = z.double().cpu().numpy(), c.double().cpu().numpy()
        fused, tiled = (dq.nearest(z, c, chunk_size=m).cpu().numpy() for m in (mode, None))
        print(compare(f"N={n} K={k} D={d} fused vs tiled", fused, tiled, zn, cn), flush=True)
    print(f"{'size':<24} {'case':<28} {'ms':>10} {'/ tiled':>8}")
    for size, name, ms, ratio in rows:
        print(f"{size:<24} {name:<28} {ms:>10.3f} {ratio:>8.2f}", flush=True)


def main(dry_run: bool = False) -> None:
    """Conformance then timings; on the CPU in the interpreters with ``dry_run``."""
    if dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before anything imports Triton
    import torch

    device = "cpu" if dry_run else "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False
    shapes = DRY_SHAPES if dry_run else SHAPES
    torch_conformance(device, "fused", shapes)
    try:
        import jax

        on_gpu = jax.default_backend() != "cpu"
        if on_gpu or dry_run:
            jax_conformance("fused" if on_gpu else "fused-interpret", shapes)
        else:
            print("jax has no GPU here: Pallas conformance skipped", flush=True)
    except Exception as err:  # report and go on: the torch kernel matters most here
        print("jax fused conformance FAILED:", type(err).__name__, str(err)[:2000], flush=True)
    timings(device, "fused", DRY_SIZES if dry_run else SIZES, reps=1 if dry_run else 10)


if __name__ == "__main__":
    main(dry_run="--dry-run" in sys.argv[1:])
