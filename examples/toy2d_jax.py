"""Codewords and the SF-DiVeQ polyline on two moons (JAX)
=======================================================

Fit K = 16 codewords to two moons in 2-D with DiVeQ and SF-DiVeQ (JAX backend + optax). The
codebook is the only parameter: each jitted Adam step quantises the data through the
estimator and minimises the mean squared error between the data and its quantised values, so
the gradient reaching the codewords is the one DiVeQ / SF-DiVeQ define (no auxiliary loss).
DiVeQ gets the usual dead-code replacement (every 100 steps, from :mod:`diveq.core`); SF-DiVeQ
needs none, since the dithered points on its polyline pull every codeword towards the data.
The picture shows the codewords over the data, and for SF-DiVeQ the polyline through them in
storage order, which is what SF-DiVeQ quantises onto: at the same number of codewords it
lowers the distortion. ::

    python examples/toy2d_jax.py            # writes out/toy2d/toy2d.png
    python examples/toy2d_jax.py --quick    # fewer steps (test suite)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

import diveq.backends.jax as dq
import diveq.core

matplotlib.use("Agg")
import matplotlib.pyplot as plt

NUM_CODES = 16
REPLACEMENT_ITERS = 100


def two_moons(n: int, *, noise: float = 0.08, seed: int = 0) -> np.ndarray:
    """``(n, 2)`` float32 points on two interleaved half circles, centred near the origin."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x - 0.5, y - 0.25], axis=1) + noise * rng.standard_normal((n, 2))
    return pts.astype(np.float32)


def fit(method: str, data: jax.Array, *, steps: int, lr: float, seed: int) -> dict[str, Any]:
    """Adam on the codebook through ``dq.diveq`` or ``dq.sf_diveq``; returns the codebook.

    The codebook starts from ``U(-1/K, 1/K)`` like the layers' (no SF warm-up here: the
    functions are used directly, so the polyline grows out of the origin).
    """
    key = jax.random.key(seed)
    key, init = jax.random.split(key)
    bound = 1.0 / NUM_CODES  # the library's init, U(-1/K, 1/K)
    codebook = jax.random.uniform(init, (NUM_CODES, 2), minval=-bound, maxval=bound)
    opt = optax.adam(lr)
    opt_state = opt.init(codebook)
    estimator = dq.diveq if method == "diveq" else dq.sf_diveq

    def loss_fn(cb: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = estimator(data, cb, key=key)
        return jnp.mean(jnp.sum((out.values - data) ** 2, axis=-1)), out.indices

    @jax.jit
    def step(cb, opt_state, hits, used, key):
        key, draw = jax.random.split(key)
        (loss, idx), grad = jax.value_and_grad(loss_fn, has_aux=True)(cb, draw)
        updates, opt_state = opt.update(grad, opt_state)
        cb = optax.apply_updates(cb, updates)
        hits, used = diveq.core.update_usage(hits, used, idx, NUM_CODES)
        return cb, opt_state, hits, used, key, loss

    @jax.jit
    def replace(cb, hits, used, key):
        u_key, n_key = jax.random.split(key)
        new, _ = diveq.core.replace_dead_codes(
            cb,
            hits,
            used,
            replacement_iters=REPLACEMENT_ITERS,
            discard_threshold=0.01,
            perturb_eps=1e-3,  # not the layers' 1e-9: visibly split copies in a 2-D plot
            uniform=jax.random.uniform(u_key, (NUM_CODES,)),
            noise=jax.random.normal(n_key, cb.shape),
        )
        return new

    hits = used = jnp.zeros(NUM_CODES, dtype=jnp.int32)
    for i in range(1, steps + 1):
        codebook, opt_state, hits, used, key, loss = step(codebook, opt_state, hits, used, key)
        if method == "diveq" and i % REPLACEMENT_ITERS == 0:
            key, sub = jax.random.split(key)
            codebook = replace(codebook, hits, used, sub)
            hits = used = jnp.zeros_like(hits)
    return {"codebook": codebook, "loss": float(loss)}


def distortion(data: jax.Array, codebook: jax.Array, *, polyline: bool) -> tuple[float, int]:
    """Mean squared error of the hard inference and the number of codes (segments) used."""
    out = dq.sf_quantize(data, codebook) if polyline else dq.quantize(data, codebook)
    mse = float(jnp.mean(jnp.sum((out.values - data) ** 2, axis=-1)))
    return mse, int(np.unique(np.asarray(out.indices)).size)


def plot(data: np.ndarray, fits: dict[str, dict[str, Any]], titles: dict[str, str], path: Path):
    fig, axes = plt.subplots(1, len(fits), figsize=(5.2 * len(fits), 4.6), squeeze=False)
    for ax, (method, res) in zip(axes[0], fits.items(), strict=True):
        cb = np.asarray(res["codebook"])
        ax.scatter(data[:, 0], data[:, 1], s=3, alpha=0.25, color="tab:blue", label="data")
        if method == "sf_diveq":
            ax.plot(cb[:, 0], cb[:, 1], "-", color="tab:orange", lw=1.5, label="polyline")
        ax.scatter(cb[:, 0], cb[:, 1], s=40, color="tab:red", zorder=3, label="codewords")
        for j, (x, y) in enumerate(cb):
            ax.annotate(str(j), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_title(titles[method], fontsize=9)
        ax.set_aspect("equal")
        ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    p.add_argument("--out", type=Path, default=Path("out/toy2d"), help="figure directory")
    p.add_argument("--quick", action="store_true", help="fewer steps (< 20 s)")
    p.add_argument("--steps", type=int, help="Adam steps per method (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    steps = args.steps or (300 if args.quick else 2000)
    data = two_moons(2000, seed=args.seed)
    z = jnp.asarray(data)
    fits, titles = {}, {}
    for method, label in (("diveq", "DiVeQ"), ("sf_diveq", "SF-DiVeQ")):
        start = time.perf_counter()
        fits[method] = res = fit(method, z, steps=steps, lr=0.02, seed=args.seed)
        seconds = time.perf_counter() - start
        mse, used = distortion(z, res["codebook"], polyline=False)
        line = f"{label:<9} codewords: distortion {mse:.5f}, codes used {used}/{NUM_CODES}"
        titles[method] = f"{label}: distortion {mse:.4f} at the codewords ({used} used)"
        if method == "sf_diveq":
            pmse, segs = distortion(z, res["codebook"], polyline=True)
            line += f"; polyline: distortion {pmse:.5f}, segments used {segs}/{NUM_CODES - 1}"
            titles[method] += f"\npolyline: {pmse:.4f} ({segs} segments used)"
        print(f"{line}  [{steps} steps, {seconds:.1f} s]")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "toy2d.png"
    plot(data, fits, titles, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
