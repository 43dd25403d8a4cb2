"""What the benchmark prints and writes: ratios per round to each case's baselines, with their
spread, as a table and as CSV rows."""

from __future__ import annotations

from benchmarks._timing import median, ratio

#: The baselines a case is compared with, in column order ("draws": the floor plus the random
#: draws the function's semantics require).
COLUMNS = ("floor", "draws", "function", "official")
Baselines = dict[str, dict[str, str]]


def rows(
    point: dict[str, int], samples: dict[str, list[float]], baselines: Baselines
) -> list[dict[str, object]]:
    """One CSV row per case: median seconds and, per baseline, ``x_<baseline>`` (median of the
    per-round ratios) with its quartiles ``x_<baseline>_q1`` / ``_q3``."""
    out = []
    for name, sec in samples.items():
        row: dict[str, object] = {**point, "case": name, "seconds": median(sec)}
        for col in COLUMNS:
            base = baselines.get(name, {}).get(col)
            if base in samples and base != name:
                mid, q1, q3 = ratio(sec, samples[base])
                row.update({f"x_{col}": mid, f"x_{col}_q1": q1, f"x_{col}_q3": q3})
        out.append(row)
    return out


def fieldnames() -> list[str]:
    """CSV columns."""
    names = ["n", "d", "k", "case", "seconds"]
    for col in COLUMNS:
        names += [f"x_{col}", f"x_{col}_q1", f"x_{col}_q3"]
    return names


def table(result: list[dict[str, object]]) -> str:
    """The rows as text: median ms and each ratio as ``median [q1-q3]``."""
    width = max(len(str(r["case"])) for r in result)
    head = f"{'case':<{width}} {'median ms':>10}" + "".join(f" {'x ' + c:>21}" for c in COLUMNS)
    lines = [head]
    for r in result:
        cells = ""
        for col in COLUMNS:
            if f"x_{col}" in r:
                mid, q1, q3 = (float(r[f"x_{col}{s}"]) for s in ("", "_q1", "_q3"))  # type: ignore[arg-type]
                cells += f" {mid:6.2f} {f'[{q1:.2f}-{q3:.2f}]':>14}"
            else:
                cells += " " * 22
        lines.append(f"{r['case']:<{width}} {float(r['seconds']) * 1e3:10.1f}{cells}")  # type: ignore[arg-type]
    return "\n".join(lines)


#: The sweep's cases, their column names and the issue's targets (time / floor) at points with
#: ``N K >= 2^24`` and below: the composites against the floor of their ``M`` searches, JAX
#: against its own floor.
SWEEP_TARGETS = {
    "torch diveq": ("torch diveq", 1.10, 1.3),
    "torch sf_diveq": ("torch sf_diveq", 1.2, 1.5),
    "torch product_diveq": ("product", 1.0, 1.0),
    "torch residual_diveq": ("residual", 1.0, 1.0),
    "jax diveq": ("JAX diveq", 1.15, 1.15),
    "jax sf_diveq": ("JAX sf_diveq", 1.15, 1.15),
}


def sweep_summary(result: list[dict[str, object]]) -> list[list[str]]:
    """One row per sweep point: each case's time / floor (in brackets: / floor + its draws,
    where measured) and the cases over their target."""
    head = ["N", "K", "D", *(name for name, _, _ in SWEEP_TARGETS.values()), "over target"]
    table = [head]
    points = sorted({(int(r["n"]), int(r["k"]), int(r["d"])) for r in result})  # type: ignore[call-overload]
    for n, k, d in points:
        at = {r["case"]: r for r in result if (r["n"], r["k"], r["d"]) == (n, k, d)}
        cells, over = [], []
        for case, (name, big, small) in SWEEP_TARGETS.items():
            x = at.get(case, {}).get("x_floor")
            if x is None:
                cells.append("-")
                continue
            draws = at[case].get("x_draws")
            cell = f"{float(x):.2f}"  # type: ignore[arg-type]
            cells.append(cell if draws is None else f"{cell} ({float(draws):.2f})")  # type: ignore[arg-type]
            if float(x) > (big if n * k >= 1 << 24 else small):  # type: ignore[arg-type]
                over.append(name)
        table.append([str(n), str(k), str(d), *cells, ", ".join(over) or "none"])
    return table
