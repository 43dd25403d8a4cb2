"""The result store: one CSV row per run, keyed by the run's full configuration.

Rows are appended one at a time, flushed and synced, so a crash loses at most the run in
progress; a torn last line (a crash mid-write) is cut off before the next append. Curves and
diagnostics are JSON inside their cells.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from experiments._config import RunConfig

__all__ = ["COLUMNS", "append", "read", "done_keys"]

CONFIG = [f.name for f in dataclasses.fields(RunConfig)]
METRICS = [
    "bits",
    "seconds",
    "cpu_seconds",
    "psnr",
    "ssim",
    "usage",
    "perplexity",
    "vertex_psnr",
    "vertex_ssim",
    "vertex_usage",
    "vertex_perplexity",
]
JSON = ["curves", "evals", "diag"]
COLUMNS = ["key", *CONFIG, *METRICS, *JSON, "threads", "torch", "finished"]


def _repair(path: Path) -> None:
    """Cut a torn last line (no trailing newline) left by a crash mid-append."""
    with path.open("rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def append(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` (its keys: :data:`COLUMNS`; dicts and lists stored as JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        _repair(path)
    cells = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(cells)
        f.flush()
        os.fsync(f.fileno())


def read(path: Path) -> list[dict[str, Any]]:
    """All complete rows of ``path`` (none if it does not exist), JSON cells decoded."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        text = f.read()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a torn last line is not a row
    rows = list(csv.DictReader(text.splitlines(keepends=True)))
    for row in rows:
        for k in JSON:
            row[k] = json.loads(row[k]) if row.get(k) else {}
    return rows


def done_keys(path: Path) -> set[str]:
    """Keys of the runs that have a row in ``path``."""
    return {row["key"] for row in read(path)}
