"""Where the time of a torch ``diveq`` / ``sf_diveq`` training call goes, against the floor.

At small ``N K`` the search is cheap and the ``O(N D)`` work sets the time. This times,
interleaved, the parts of one function call on the same input and prints each as a multiple of
the floor (one untiled ``addmm`` + ``argmin``, no gradient):

- ``search``: the library's nearest-codeword search (tiled on CPUs); for ``sf_diveq`` the
  one its training call runs, over the ``K - 1`` dithered points of the polyline (not the
  exact projection of hard inference, ``sf_quantize``);
- ``draws``: the standard-normal draws the function's semantics require (``N x D`` per
  vertex: one for DiVeQ, two for SF-DiVeQ), from torch's generator;
- ``forward`` and ``forward + backward``: the function as users call it, drawing its noise;
- ``forward + backward, given draws``: the same with the draws passed in (``noise=``).

``floor + draws`` is a lower bound for any implementation that draws from torch's generator
and searches no faster than the floor.

    python benchmarks/breakdown.py [--fn sf_diveq] [--n 4096 16384] [--d 64] [--k 256 1024 4096]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cases(fn_name: str, n: int, k: int, d: int) -> dict[str, Callable[[], object]]:
    """The parts of one ``fn_name`` call at ``N = n, K = k, D = d``, each a no-argument call."""
    import torch

    import diveq.backends.torch as dq

    fn = getattr(dq, fn_name)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(n, d, generator=gen).requires_grad_(True)
    c = torch.randn(k, d, generator=gen).requires_grad_(True)
    g = torch.randn(n, d, generator=gen)
    shape = (n, d) if fn_name == "diveq" else (2, n, d)
    given = {"noise": torch.randn(shape, generator=gen)}
    if fn_name == "sf_diveq":
        given["dither"] = torch.rand(k - 1, generator=gen)
    zd, cd = z.detach(), c.detach()

    def floor() -> object:
        return torch.addmm((cd * cd).sum(1), zd, cd.t(), beta=1, alpha=-2).argmin(1)

    points = cd
    if fn_name == "sf_diveq":  # the training search: over the K - 1 dithered polyline points
        lam = given["dither"][:, None]
        points = (1.0 - lam) * cd[:-1] + lam * cd[1:]

    def search() -> object:
        return dq.nearest(zd, points)

    def forward() -> object:
        with torch.no_grad():
            return fn(z, c, noise_std=1e-3)

    def step(**kw: torch.Tensor) -> None:
        z.grad = c.grad = None
        fn(z, c, noise_std=1e-3, **kw).values.backward(g)

    return {
        "floor": floor,
        "search": search,
        "draws": lambda: torch.randn(shape),
        "forward": forward,
        "forward + backward": step,
        "forward + backward, given draws": lambda: step(**given),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--fn", choices=("diveq", "sf_diveq"), default="diveq")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from benchmarks._timing import interleaved, median, ratio

    torch.set_num_threads(args.threads)
    print(f"torch {args.fn}, D={args.d}, {args.threads} threads, {args.rounds} rounds: ms, x floor")
    for n in args.n:
        for k in args.k:
            samples = interleaved(cases(args.fn, n, k, args.d), rounds=args.rounds)
            samples["floor + draws (a lower bound)"] = [
                a + b for a, b in zip(samples["floor"], samples["draws"], strict=True)
            ]
            print(f"\nN={n} K={k}")
            for name, s in samples.items():
                mid, q1, q3 = ratio(s, samples["floor"])
                print(f"  {name:34s} {1e3 * median(s):8.2f} ms  {mid:5.2f}x [{q1:.2f}-{q3:.2f}]")


if __name__ == "__main__":
    main()
