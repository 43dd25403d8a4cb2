"""Run the study (or a part of it), skipping every run that already has a row.

::

    python -m experiments.run                      # the whole study (hours on 2 cores)
    python -m experiments.run --parts main,noise   # some parts
    python -m experiments.run --jobs 2             # two runs at a time, 1 thread each
    python -m experiments.run --quick              # smoke run of the whole pipeline
    python -m experiments.run --dry-run            # what would train, and an estimate

Interrupt it at any time: finished runs are in the CSV, the next call continues.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the demo: sleep in OpenMP barriers

from experiments._config import RunConfig
from experiments._plan import PARTS, plan
from experiments._store import append, done_keys, read

RESULTS = Path(__file__).resolve().parent / "results" / "runs.csv"
QUICK_RESULTS = Path("out") / "experiments-quick" / "runs.csv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny runs, seconds")
    p.add_argument(
        "--results", type=Path, help=f"CSV of rows (default {RESULTS}; --quick: {QUICK_RESULTS})"
    )
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, one process each")
    p.add_argument("--threads", type=int, help="torch threads per run (default: 2 // jobs)")
    p.add_argument("--limit", type=int, help="train at most this many runs, then stop")
    for name, what in (
        ("datasets", "data sets"),
        ("methods", "methods"),
        ("seeds", "seeds"),
        ("steps", "budgets (steps)"),
        ("codes", "codebook sizes"),
    ):
        p.add_argument(f"--{name}", help=f"only these {what} of the plan (comma-separated)")
    p.add_argument("--dry-run", action="store_true", help="list what would train; train nothing")
    return p.parse_args(argv)


def _work(item: tuple[RunConfig, int]) -> dict[str, Any] | str:
    from experiments._runner import run_one

    cfg, threads = item
    try:
        return run_one(cfg, threads)
    except Exception as exc:  # one failed run must not stop the others
        return f"{cfg.method} seed {cfg.seed} ({cfg.key}) failed: {exc!r}"


def _selected(cfg: RunConfig, args: argparse.Namespace) -> bool:
    """Whether ``cfg`` passes the ``--datasets/--methods/--seeds/--steps/--codes`` filters."""
    for option, value in (
        (args.datasets, cfg.dataset),
        (args.methods, cfg.method),
        (args.seeds, str(cfg.seed)),
        (args.steps, str(cfg.steps)),
        (args.codes, str(cfg.num_codes)),
    ):
        if option and value not in {v.strip() for v in option.split(",")}:
            return False
    return True


def _estimate(path: Path, todo: list[RunConfig]) -> str:
    """CPU time still to spend, from the measured CPU seconds per step of finished rows
    (median per data set and method; a method without rows gets its data set's median)."""
    rates: dict[tuple[str, str], list[float]] = {}
    for row in read(path):
        rate = float(row["cpu_seconds"]) / int(row["steps"])
        rates.setdefault((row["dataset"], row["method"]), []).append(rate)
        rates.setdefault((row["dataset"], "*"), []).append(rate)
    total, guessed, unknown = 0.0, 0, 0
    for c in todo:
        measured = rates.get((c.dataset, c.method))
        if measured is None:
            measured = rates.get((c.dataset, "*"))
            guessed += measured is not None
        if measured is None:
            unknown += 1
            continue
        total += c.steps * float(np.median(measured))
    return (
        f"about {total / 3600:.1f} CPU-hours to go ({guessed} runs at their data set's median "
        f"rate, no rows of their method yet; {unknown} runs without any estimate)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"unknown parts {unknown}; choose from {list(PARTS)}")
    path = args.results or (QUICK_RESULTS if args.quick else RESULTS)
    runs, missing = plan(parts, quick=args.quick)
    runs = [c for c in runs if _selected(c, args)]
    done = done_keys(path)
    todo = [c for c in runs if c.key not in done]
    if args.limit is not None:
        todo = todo[: args.limit]
    print(
        f"{len(runs)} runs planned, {len(runs) - len(todo)} have rows in {path}, "
        f"{len(todo)} to train"
    )
    for name in missing:
        print(f"not implemented yet, left out: {name} (experiments/_methods.py)")
    if args.dry_run:
        print(_estimate(path, todo))
        return 0
    threads = args.threads or max(1, 2 // args.jobs)
    items = [(c, threads) for c in todo]
    start, failed = time.perf_counter(), 0
    pool = multiprocessing.get_context("spawn").Pool(args.jobs) if args.jobs > 1 else None
    results: Iterator[dict[str, Any] | str] = (
        pool.imap_unordered(_work, items) if pool is not None else map(_work, items)
    )
    try:
        for i, result in enumerate(results, 1):
            if isinstance(result, str):
                failed += 1
                print(result, file=sys.stderr)
                continue
            append(path, result)
            print(
                f"[{i}/{len(items)}] {result['dataset']} {result['method']} "
                f"K={result['num_codes']} steps={result['steps']} seed={result['seed']}: "
                f"PSNR {float(result['psnr']):.2f} dB, {float(result['seconds']):.0f} s",
                flush=True,
            )
    except BaseException:  # Ctrl-C or a store error: stop the workers now
        if pool is not None:
            pool.terminate()
        raise
    if pool is not None:
        pool.close()
        pool.join()
    print(
        f"{len(items) - failed} runs trained in {time.perf_counter() - start:.0f} s; "
        f"{failed} failed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
