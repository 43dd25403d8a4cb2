"""Large-size check: time and peak resident memory of one DiVeQ forward + backward.

Each (backend, N) runs in a fresh subprocess so its peak RSS is its own. At N = 2^19,
K = 2^14, D = 64 the N x K distance matrix alone would take 32 GiB (float32); the tiled search
never holds more than one tile. Time per N*K shows whether the cost scales linearly.

    python benchmarks/scale.py [--k 16384] [--d 64] [--log2n 17 18 19]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
backend, n, k, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
import numpy as np
rng = np.random.default_rng(0)
z, c, g = (rng.standard_normal(s).astype(np.float32) for s in ((n, d), (k, d), (n, d)))
c *= 0.5
if backend == "torch":
    import torch
    torch.set_num_threads(2)
    import diveq.backends.torch as dq
    zt = torch.from_numpy(z).requires_grad_(True)
    ct = torch.from_numpy(c).requires_grad_(True)
    gt = torch.from_numpy(g)
    gen = torch.Generator().manual_seed(0)
    def run():
        dq.diveq(zt, ct, generator=gen).values.backward(gt)
else:
    import jax, jax.numpy as jnp
    import diveq.backends.jax as dq
    zj, cj, gj = jnp.asarray(z), jnp.asarray(c), jnp.asarray(g)
    step = jax.jit(jax.grad(lambda z, c, key: jnp.sum(dq.diveq(z, c, key=key).values * gj),
                            argnums=(0, 1)))
    def run():
        jax.block_until_ready(step(zj, cj, jax.random.key(0)))
start = time.perf_counter(); run(); first = time.perf_counter() - start
start = time.perf_counter(); run(); sec = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"backend": backend, "n": n, "k": k, "d": d, "first_s": first,
                  "seconds": sec, "peak_rss_gib": rss}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=2**14)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--log2n", type=int, nargs="+", default=[17, 18, 19])
    parser.add_argument("--backends", nargs="+", default=["torch", "jax"])
    args = parser.parse_args()
    print(
        f"{'backend':<7} {'N':>8} {'K':>6} {'first s':>8} {'s':>7} {'ns/(N*K)':>9} {'peak GiB':>9}"
    )
    for backend in args.backends:
        for log2n in args.log2n:
            n = 2**log2n
            out = subprocess.run(
                [sys.executable, "-c", CHILD, backend, str(n), str(args.k), str(args.d)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            per = r["seconds"] / (n * args.k) * 1e9
            print(
                f"{backend:<7} {n:>8} {args.k:>6} {r['first_s']:8.1f} {r['seconds']:7.1f} "
                f"{per:9.3f} {r['peak_rss_gib']:9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
