"""Side-by-side benchmark: our estimators against the floor and the alternatives.

Times one forward + backward per case, interleaved in one process, and prints medians and
ratios to the floor (the bare ``addmm`` + ``argmin`` search without gradient). Writes a CSV and
plots of time against K and N. ``make bench`` installs the peers and runs it.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks import _torch_cases as tc
from benchmarks._timing import interleaved


def torch_cases(t: dict[str, torch.Tensor]) -> dict[str, object]:
    cases = {
        "torch floor": tc.floor(t),
        "torch diveq": tc.ours("diveq", t),
        "torch sf_diveq": tc.ours("sf_diveq", t),
        "torch product_diveq": tc.ours("product_diveq", t, "product"),
        "torch residual_diveq": tc.ours("residual_diveq", t, "residual"),
        "official DIVEQ": tc.official(t),
        "official SFDIVEQ": tc.official(t, space_filling=True),
        "vqtorch directional": tc.vqtorch(t, "directional"),
        "vqtorch rotation": tc.vqtorch(t, "rotation"),
    }
    return {name: fn for name, fn in cases.items() if fn is not None}


def measure(
    n: int, d: int, k: int, rounds: int, with_jax: bool, device: str = "cpu"
) -> dict[str, float]:
    t = tc.data(n, d, k, device=device)
    cases = torch_cases(t)
    if with_jax:
        from benchmarks._jax_cases import cases as jax_cases

        cases.update(jax_cases({name: v.cpu().numpy() for name, v in t.items()}))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    return interleaved(cases, rounds=rounds, sync=sync)  # type: ignore[arg-type]


def report(times: dict[str, float]) -> None:
    floor = times["torch floor"]
    jfloor = times.get("jax floor")
    official = times.get("official DIVEQ")
    print(f"{'case':<24} {'median ms':>10} {'x floor':>8} {'x official':>10}")
    for name, sec in times.items():
        base = jfloor if name.startswith("jax") and jfloor else floor
        vs_official = f"{sec / official:10.2f}" if official and name.startswith("torch") else ""
        print(f"{name:<24} {sec * 1e3:10.1f} {sec / base:8.2f} {vs_official:>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16384)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--sweep", action="store_true", help="also time against K and N")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
    if args.smoke:
        args.n, args.d, args.k, args.rounds = 256, 8, 32, 2
    with_jax = not args.no_jax
    print(
        f"N={args.n} D={args.d} K={args.k} float32, {args.device}, {args.threads} threads, "
        f"{args.rounds} interleaved rounds, torch {torch.__version__}"
    )
    times = measure(args.n, args.d, args.k, args.rounds, with_jax, args.device)
    report(times)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [
        {"n": args.n, "d": args.d, "k": args.k, "case": c, "seconds": s} for c, s in times.items()
    ]
    if args.sweep:
        rows += sweep(args)
    with open(args.out / "times.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["n", "d", "k", "case", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out / 'times.csv'}")


def sweep(args: argparse.Namespace) -> list[dict[str, object]]:
    from benchmarks._plots import plot_sweep

    rows: list[dict[str, object]] = []
    for k in (256, 512, 1024, 2048, 4096):
        for case, sec in measure(args.n, args.d, k, max(3, args.rounds // 3), False).items():
            rows.append({"n": args.n, "d": args.d, "k": k, "case": case, "seconds": sec})
    for n in (4096, 8192, 16384, 32768, 65536):
        for case, sec in measure(n, args.d, args.k, max(3, args.rounds // 3), False).items():
            rows.append({"n": n, "d": args.d, "k": args.k, "case": case, "seconds": sec})
    plot_sweep(rows, args)
    return rows


if __name__ == "__main__":
    main()
