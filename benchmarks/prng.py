"""The cost of the noise and dither draws under each PRNG implementation JAX offers.

A diveq function or layer splits the caller's key, so the generator is the one the key was made
with: ``jax.random.key(seed, impl=...)`` or, for every key, the ``jax_default_prng_impl`` flag.
This times, jitted and interleaved, one ``N x D`` standard-normal draw (the DiVeQ noise) and one
``(K - 1,)`` uniform draw (the SF dither) per implementation, a whole jitted DiVeQ forward +
backward with each key, and ``torch.randn`` for scale; ratios are to threefry (JAX's default).

Run: ``python benchmarks/prng.py [--n 16384 --d 64 --k 1024 --rounds 15]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16384)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import torch

    import diveq.backends.jax as dq
    from benchmarks._timing import interleaved, median, ratio

    torch.set_num_threads(args.threads)
    n, d, k = args.n, args.d, args.k
    z = jax.random.normal(jax.random.key(1), (n, d))
    c = 0.5 * jax.random.normal(jax.random.key(2), (k, d))
    grad = jax.random.normal(jax.random.key(3), (n, d))

    normal = jax.jit(lambda key: jax.random.normal(key, (n, d)))
    uniform = jax.jit(lambda key: jax.random.uniform(key, (k - 1,)))

    def loss(z: jax.Array, c: jax.Array, key: jax.Array) -> jax.Array:
        return jnp.sum(dq.diveq(z, c, key=key).values * grad)

    step = jax.jit(jax.grad(loss, argnums=(0, 1)))
    cases = {}
    for impl in IMPLS:
        key = jax.random.key(0, impl=impl)
        cases[f"normal {impl}"] = lambda key=key: normal(key).block_until_ready()
        cases[f"uniform {impl}"] = lambda key=key: uniform(key).block_until_ready()
        cases[f"diveq {impl}"] = lambda key=key: jax.block_until_ready(step(z, c, key))
    gen = torch.Generator().manual_seed(0)
    cases["normal torch.randn"] = lambda: torch.randn(n, d, generator=gen)
    samples = interleaved(cases, rounds=args.rounds)
    print(
        f"N={n} D={d} K={k}, jax {jax.__version__} on {jax.default_backend()}, "
        f"{args.rounds} interleaved rounds"
    )
    print(f"{'case':<26} {'median ms':>10} {'x threefry2x32':>22}")
    for name, sec in samples.items():
        what = name.split(" ")[0]
        base = samples.get(f"{what} threefry2x32" if what != "normal" else "normal threefry2x32")
        mid, q1, q3 = ratio(sec, base) if base is not None else (1.0, 1.0, 1.0)
        print(f"{name:<26} {median(sec) * 1e3:10.2f} {mid:8.2f} {f'[{q1:.2f}-{q3:.2f}]':>13}")


if __name__ == "__main__":
    main()
