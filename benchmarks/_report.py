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
