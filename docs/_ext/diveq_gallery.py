"""sphinx-gallery hooks for the examples: their command line and the figures they save.

The examples are command-line scripts that save their figures as PNG files (``--out DIR``) and
close them, so sphinx-gallery's matplotlib scraper sees none. :func:`reset_argv` points each
example's ``--out`` at a scratch folder and :func:`scrape_pngs` moves what it wrote into the
gallery, in the order written. The compression demo runs in its ``--quick`` form unless
``DIVEQ_DOCS_FULL_DEMO=1`` (about 5 minutes on 2 CPU cores instead of about 25 s).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sphinx_gallery.scrapers import figure_rst

_SCRATCH = Path(tempfile.gettempdir()) / f"diveq-gallery-{os.getpid()}"


def _out_dir(src_file: str) -> Path:
    return _SCRATCH / Path(src_file).stem


def reset_argv(gallery_conf: dict[str, Any], script_vars: dict[str, Any]) -> list[str]:
    """The arguments each example runs with in the gallery (after the script name)."""
    src_file = script_vars["src_file"]
    out = _out_dir(src_file)
    shutil.rmtree(out, ignore_errors=True)
    args = ["--out", str(out)]
    if Path(src_file).name == "compress.py" and os.environ.get("DIVEQ_DOCS_FULL_DEMO") != "1":
        args.append("--quick")
    return args


def scrape_pngs(block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any]) -> str:
    """Move the PNGs the example wrote since the last block into the gallery's images, each
    shown at the column's width (one ``figure_rst`` per image: several at once become a row of
    thumbnails)."""
    out = _out_dir(block_vars["src_file"])
    pngs = sorted(out.glob("*.png"), key=lambda p: p.stat().st_mtime_ns) if out.is_dir() else []
    rst = ""
    for png in pngs:
        image_path = block_vars["image_path_iterator"].next()
        shutil.move(png, image_path)
        rst += figure_rst([image_path], gallery_conf["src_dir"])
    return rst
