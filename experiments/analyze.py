"""Tables and figures of the study from its result rows.

::

    python -m experiments.analyze                  # experiments/results/runs.csv -> docs/evidence/
    python -m experiments.analyze --results out/experiments-quick/runs.csv --out out/evidence

Writes one CSV per table (``status``, ``main``, ``noise``, ``init``, ``data_init``,
``sf_init``, ``gumbel``, ``diagnostics``, ``train_usage``; the docs page includes them) and
the figures, and prints the tables. Cells are mean ± half-width of the 95 % Student-t interval
over seeds; paired columns compare runs with the same seed (paired t-test).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from experiments._plots import FIGURES
from experiments._store import read
from experiments._tables import TABLES, status, typed
from experiments.run import RESULTS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "evidence"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="the rows (CSV)")
    p.add_argument("--out", type=Path, default=DOCS, help="where tables and figures go")
    p.add_argument("--quick", action="store_true", help="the rows are from --quick runs")
    return p.parse_args(argv)


def _write(table: list[list[str]], path: Path) -> None:
    if len(table) == 1:  # a table without rows says so (and stays a valid csv-table)
        table = [*table, ["no results yet"] + ["-"] * (len(table[0]) - 1)]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(table)


def _show(name: str, table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    return f"{name}\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = [r for r in typed(read(args.results)) if r["quick"] == args.quick]
    args.out.mkdir(parents=True, exist_ok=True)
    tables = {"status": status(rows, quick=args.quick)}
    tables.update({name: make(rows) for name, make in TABLES.items()})
    for name, table in tables.items():
        _write(table, args.out / f"{name}.csv")
        print(_show(name, table), end="\n\n")
    for figure in FIGURES:
        print(f"wrote {figure(rows, args.out)}")


if __name__ == "__main__":
    main()
