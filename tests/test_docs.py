"""The documentation builds without a single warning (``-W``), and reads well in a browser.

One build per test session (both tests share it: ``xdist_group`` keeps them on one worker). It
runs the gallery's examples unless sphinx-gallery's cache in ``docs/gallery/`` says they have
not changed (about 35 s on 2 cores when they run; the build itself about 15 s). The browser
check (``docs/check_site.py``, about 25 s) needs Debian's Chromium, which ``make test``
installs where it is missing; without it the check is skipped with that reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.xdist_group("docs")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    pytest.importorskip("sphinx")
    tmp = tmp_path_factory.mktemp("docs")
    options = ["-W", "--keep-going", "-q", "-b", "html", "-d", tmp / "doctrees"]
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", *options, ROOT / "docs", tmp / "html"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    return tmp / "html", result


def test_docs_build_without_warnings(site):
    _, result = site
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_site_in_headless_chromium(site, tmp_path):
    html, result = site
    if result.returncode != 0:
        pytest.skip("the build failed (test_docs_build_without_warnings says why)")
    check = subprocess.run(
        [sys.executable, ROOT / "docs" / "check_site.py", html, "--out", tmp_path],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check.returncode == 2:
        pytest.skip(check.stderr.strip())
    assert check.returncode == 0, f"screenshots in {tmp_path}\n{check.stdout[-6000:]}"
