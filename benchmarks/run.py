"""Side-by-side benchmark: our functions and layers against the floor, each other and the peers.

Times one forward + backward per case (for layers: the train call, state update included),
interleaved in one process, and prints medians and per-round ratios -- to the floor (the bare
``addmm`` + ``argmin`` search without gradient; for composites, their ``M`` bare searches), to
the function a layer runs, and to the official layer -- with their quartiles. ``--sweep`` then
repeats the function cases over a grid of sizes. Writes a CSV and a plot. ``make bench`` installs
the peers and runs it.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks import _torch_cases as tc
from benchmarks import _torch_layers as tl
from benchmarks._kinds import DRAWS, FUNCTIONS, KINDS
from benchmarks._report import Baselines, fieldnames, rows, sweep_summary, table
from benchmarks._timing import interleaved, median

#: ``--sweep full`` (what ``make bench`` runs) and ``--sweep small``: K x D x N.
GRIDS = {
    "full": ((256, 1024, 4096, 16384), (16, 64, 256), (4096, 16384, 65536)),
    "small": ((256, 4096), (64,), (4096, 16384)),
}
#: The peers materialise the N x K scores (several times): skipped above this many entries.
PEER_SCORES = 1 << 28
#: The function cases of a sweep point.
SWEPT = ("diveq", "sf_diveq", "product_diveq", "residual_diveq")


def _floor_of(fn: str) -> str:
    books = FUNCTIONS[fn]
    return "floor" if books == "codebook" else f"{books} floor"


def build(
    t: dict[str, torch.Tensor],
    *,
    functions: tuple[str, ...],
    layers: bool,
    peers: bool,
    jax: tuple[str, ...] | None,
    jax_layers: tuple[str, ...] = (),
) -> tuple[dict[str, object], Baselines]:
    """The cases of one size and the baselines each is compared with."""
    cases: dict[str, object] = {"torch floor": tc.floor(t)}
    base: Baselines = {}
    for books in {FUNCTIONS[f] for f in functions} - {"codebook"}:
        cases[f"torch {books} floor"] = tc.floor_books(t, books)
    official = {kind.function: kind.official for kind in KINDS if kind.official}
    for fn in functions:
        cases[f"torch {fn}"] = tc.ours(fn, t, FUNCTIONS[fn])
        base[f"torch {fn}"] = {"floor": f"torch {_floor_of(fn)}"}
        if fn in DRAWS:
            cases[f"torch floor + {fn} draws"] = tc.floor_draws(t, fn)
            base[f"torch {fn}"]["draws"] = f"torch floor + {fn} draws"
        if peers and fn in official:
            base[f"torch {fn}"]["official"] = f"official {official[fn]}"
    if layers:
        for kind in KINDS:
            name = f"torch {kind.name} layer"
            cases[name] = tl.ours(kind, t)
            books = "floor" if not kind.composite else f"{kind.books} floor"
            base[name] = {"floor": f"torch {books}"}
            if kind.function:
                base[name]["function"] = f"torch {kind.function}"
            if peers and kind.official:
                base[name]["official"] = f"official {kind.official}"
    if peers:
        for kind in KINDS:
            if kind.official and (layers or kind.function in functions):
                case = tl.official(kind, t)
                if case is not None:
                    cases[f"official {kind.official}"] = case
                    books = "floor" if not kind.composite else f"{kind.books} floor"
                    base[f"official {kind.official}"] = {"floor": f"torch {books}"}
        for flavour in ("directional", "rotation"):
            case = tc.vqtorch(t, flavour)
            if case is not None:
                cases[f"vqtorch {flavour}"] = case
                base[f"vqtorch {flavour}"] = {"floor": "torch floor"}
    if jax is not None:
        from benchmarks._jax_cases import cases as jax_cases

        arrays = {name: v.cpu().numpy() for name, v in t.items()}
        wanted = {"jax floor", "jax product floor", "jax residual floor"}
        wanted |= {f"jax {fn}" for fn in jax} | {f"jax {k} layer" for k in jax_layers}
        wanted |= {f"jax floor + {fn} draws" for fn in jax if fn in DRAWS}
        for name, case in jax_cases(arrays, layers=bool(jax_layers)).items():
            if name in wanted:
                cases[name] = case
        for fn in jax:
            base[f"jax {fn}"] = {"floor": f"jax {_floor_of(fn)}"}
            if fn in DRAWS:
                base[f"jax {fn}"]["draws"] = f"jax floor + {fn} draws"
        for kind in KINDS:
            name = f"jax {kind.name} layer"
            if name in cases:
                books = "floor" if not kind.composite else f"{kind.books} floor"
                base[name] = {"floor": f"jax {books}"}
                if kind.function:
                    base[name]["function"] = f"jax {kind.function}"
    # a composite's floor only where a composite is timed
    floors = {b.get("floor") for b in base.values()}
    for name in [c for c in cases if c.endswith(("product floor", "residual floor"))]:
        if name not in floors:
            del cases[name]
    return cases, base


def measure(args: argparse.Namespace, n: int, d: int, k: int, rounds: int, **what: object):
    t = tc.data(n, d, k, device=args.device)
    cases, base = build(t, **what)  # type: ignore[arg-type]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    samples = interleaved(cases, rounds=rounds, sync=sync)  # type: ignore[arg-type]
    return rows({"n": n, "d": d, "k": k}, samples, base), samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16384)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument(
        "--sweep",
        nargs="?",
        const="full",
        choices=sorted(GRIDS),
        help="also time the functions over a grid of K x D x N (default grid: full)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
    if args.smoke:
        args.n, args.d, args.k, args.rounds = 256, 8, 32, 2
    print(
        f"N={args.n} D={args.d} K={args.k} float32, {args.device}, {args.threads} threads, "
        f"{args.rounds} interleaved rounds, torch {torch.__version__}"
    )
    jax_fns = None if args.no_jax else (("diveq", "sf_diveq") if args.smoke else tuple(FUNCTIONS))
    jax_layers = () if args.no_jax else tuple(k.name for k in KINDS[: 1 if args.smoke else None])
    result, samples = measure(
        args,
        args.n,
        args.d,
        args.k,
        args.rounds,
        functions=tuple(FUNCTIONS),
        layers=True,
        peers=True,
        jax=jax_fns,
        jax_layers=jax_layers,
    )
    print(table(result))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sweep:
        result += sweep(args, samples)
    with open(args.out / "times.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames())
        writer.writeheader()
        writer.writerows(result)
    print(f"wrote {args.out / 'times.csv'}")


def estimate(args: argparse.Namespace, samples: dict[str, list[float]], grid) -> float:
    """Seconds the sweep should take, scaled from this run's times at the main point: the
    searches grow as ``N K D``, the rest as ``N D`` (a guide, not a promise, under load)."""
    swept = [n for n in samples if n.split(" ", 1)[-1] in SWEPT or "floor" in n]
    swept += [n for n in samples if n.startswith(("official DIVEQ", "vqtorch"))]
    floor = median(samples["torch floor"])
    total = sum(median(samples[n]) for n in swept)
    searches = floor * (len(swept) + 6)  # a residual case searches M = 4 times
    rest = max(total - searches, 0.0)
    calls = max(3, args.rounds // 3) + 2
    seconds = 0.0
    for k, d, n in itertools.product(*GRIDS[args.sweep]):
        seconds += calls * (
            searches * (n * k * d) / (args.n * args.k * args.d) + rest * (n * d) / (args.n * args.d)
        )
    return seconds


def sweep(args: argparse.Namespace, samples: dict[str, list[float]]) -> list[dict[str, object]]:
    from benchmarks._plots import plot_sweep

    grid = GRIDS[args.sweep]
    points = list(itertools.product(*grid))
    print(
        f"\nsweep '{args.sweep}': {len(points)} points (K x D x N = "
        f"{' x '.join(str(list(g)) for g in grid)}), estimated "
        f"{estimate(args, samples, grid) / 60:.0f} min from the times above"
    )
    rows_: list[dict[str, object]] = []
    start = time.perf_counter()
    for k, d, n in points:
        result, _ = measure(
            args,
            n,
            d,
            k,
            max(3, args.rounds // 3),
            functions=SWEPT,
            layers=False,
            peers=n * k <= PEER_SCORES,
            jax=None if args.no_jax else ("diveq", "sf_diveq"),
        )
        print(f"\nN={n} D={d} K={k} ({time.perf_counter() - start:.0f} s so far)")
        print(table(result))
        rows_ += result
    plot_sweep(rows_, args)
    summary = sweep_summary(rows_)
    with open(args.out / "sweep.csv", "w", newline="") as f:
        csv.writer(f).writerows(summary)
    met = sum(row[-1] == "none" for row in summary[1:])
    print(f"\nsweep summary (time / floor; {met} of {len(summary) - 1} points meet every target):")
    print("\n".join("  ".join(f"{c:>14}" for c in row) for row in summary))
    return rows_


if __name__ == "__main__":
    main()
