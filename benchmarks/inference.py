"""Hard inference against the floor: what an eval-mode layer runs.

A ``DiVeQ`` layer in eval mode runs ``quantize`` (the nearest codeword); an ``SFDiVeQ`` layer
runs ``sf_quantize``, the exact projection onto the polyline of the codewords, whose scores are
``K - 1`` segments' worth of element-wise arithmetic on top of the same ``z C^T`` product. This
times, interleaved, the torch functions, the torch layers' eval call (``torch.no_grad``) and the
jitted JAX functions, each as a multiple of its backend's floor (one untiled ``z C^T`` +
``argmin``).

    python benchmarks/inference.py [--n 4096 16384] [--d 64] [--k 256 1024 4096] [--no-jax]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

Case = Callable[[], object]


def torch_cases(t: dict) -> dict[str, Case]:
    """The torch floor, ``quantize``, ``sf_quantize`` and the two layers' eval calls."""
    import torch

    import diveq.backends.torch as dq
    from benchmarks._torch_cases import floor

    z, c = t["z"], t["codebook"]
    k, d = c.shape

    def eval_call(name: str) -> Case:
        layer = getattr(dq, name)(k, d).eval()
        with torch.no_grad():
            layer.codebook.copy_(c)

        def run() -> object:
            with torch.no_grad():
                return layer(z)

        return run

    return {
        "torch floor": floor(t),
        "torch quantize": lambda: dq.quantize(z, c),
        "torch sf_quantize": lambda: dq.sf_quantize(z, c),
        "torch DiVeQ layer, eval": eval_call("DiVeQ"),
        "torch SFDiVeQ layer, eval": eval_call("SFDiVeQ"),
    }


def jax_cases(t: dict) -> dict[str, Case]:
    """The JAX floor (that of ``make bench``) and the jitted ``quantize`` and ``sf_quantize``."""
    import jax
    import jax.numpy as jnp

    import diveq.backends.jax as dq
    from benchmarks._jax_cases import cases

    arrays = {name: v.cpu().numpy() for name, v in t.items()}
    z, c = jnp.asarray(arrays["z"]), jnp.asarray(arrays["codebook"])
    quantize, sf_quantize = jax.jit(dq.quantize), jax.jit(dq.sf_quantize)
    return {
        "jax floor": cases(arrays, layers=False)["jax floor"],
        "jax quantize": lambda: jax.block_until_ready(quantize(z, c)),
        "jax sf_quantize": lambda: jax.block_until_ready(sf_quantize(z, c)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-jax", action="store_true")
    args = parser.parse_args()

    import torch

    from benchmarks._timing import interleaved, median, ratio
    from benchmarks._torch_cases import data

    torch.set_num_threads(args.threads)
    print(f"hard inference, D={args.d}, {args.threads} threads, {args.rounds} rounds: ms, x floor")
    for n in args.n:
        for k in args.k:
            t = data(n, args.d, k)  # the data of `make bench`
            cases = torch_cases(t) | ({} if args.no_jax else jax_cases(t))
            samples = interleaved(cases, rounds=args.rounds)
            print(f"\nN={n} K={k}")
            for name, s in samples.items():
                floor = samples[f"{name.split(' ', 1)[0]} floor"]
                mid, q1, q3 = ratio(s, floor)
                print(f"  {name:28s} {1e3 * median(s):8.2f} ms  {mid:5.2f}x [{q1:.2f}-{q3:.2f}]")


if __name__ == "__main__":
    main()
