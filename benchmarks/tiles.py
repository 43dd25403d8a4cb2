"""Rows per search tile against the floor, over K x D: the evidence for the CPU tile size.

The search (:func:`diveq.core._search.nearest_rows`) computes the scores one tile of rows at a
time; on a CPU the default tile holds ``TILE_ENTRIES_CPU`` scores (``rows = entries // K``).
This times, interleaved, the untiled floor (one ``addmm`` + ``argmin``) and the search at several
rows per tile, and prints the median per-round ratio to the floor with the default marked ``*``.

    python benchmarks/tiles.py [--n 8192] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROWS = (128, 256, 512, 1024, 2048, 4096)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--k", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--d", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import array_api_compat.torch as xp
    import torch

    from benchmarks._timing import interleaved, median, ratio
    from diveq.core._common import default_chunk
    from diveq.core._search import nearest_rows

    torch.set_num_threads(args.threads)
    print(f"N={args.n}, {args.threads} threads; time / floor, median per round (* = default)")
    for k, d in itertools.product(args.k, args.d):
        g = torch.Generator().manual_seed(0)
        z, c = torch.randn(args.n, d, generator=g), torch.randn(k, d, generator=g)
        default = default_chunk(k, None, z)
        floor = lambda z=z, c=c: torch.addmm((c * c).sum(1), z, c.t(), alpha=-2).argmin(1)  # noqa: E731
        cases = {"floor": floor}
        for rows in sorted({*ROWS, default}):
            if rows < args.n:
                cases[str(rows)] = lambda z=z, c=c, rows=rows: nearest_rows(xp, z, c, rows)
        samples = interleaved(cases, rounds=args.rounds, warmup=1)
        cells = "  ".join(
            f"{name}{'*' if name == str(default) else ''}:{ratio(v, samples['floor'])[0]:.2f}"
            for name, v in samples.items()
            if name != "floor"
        )
        print(f"K={k:<6} D={d:<4} floor {median(samples['floor']) * 1e3:7.1f} ms  {cells}")


if __name__ == "__main__":
    main()
