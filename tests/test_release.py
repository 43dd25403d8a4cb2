"""A release that installs: ``python -m build`` makes a wheel and an sdist that pass
``twine check``, and the wheel, installed into a fresh virtual environment with ``[torch]`` or
``[jax]`` (under the pinned constraints, so torch stays the CPU 2.13.0), runs the quickstart pages
there: no editable install, the repository not on the path.

About 1.5 minutes on 2 cores (the two environments install torch and jax from pip's cache or the
local wheels); ``DIVEQ_SKIP_RELEASE_TEST=1`` skips it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import diveq

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "docs" / "quickstart"
# extra -> (what else the quickstart needs, the pages it runs)
EXTRAS = {
    "torch": ([], ["reference.rst", "torch.rst"]),
    "jax": (["optax"], ["reference.rst", "jax.rst"]),
}

pytestmark = pytest.mark.skipif(
    os.environ.get("DIVEQ_SKIP_RELEASE_TEST") == "1", reason="DIVEQ_SKIP_RELEASE_TEST=1"
)


def _run(*args: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )
    assert proc.returncode == 0, f"{args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


# Not copied into the private source tree the release is built from.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "build", "dist", "out", "_build", "gallery", "generated",
    ".*_cache", ".hypothesis", "__pycache__", "_vendor", "results",
)  # fmt: skip


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    """The wheel and sdist, built from a private copy of the tree: setuptools writes
    ``*.egg-info`` and a staging folder into the tree it builds, so two builds of one tree (two
    test workers) would trip over each other, and the working tree stays clean."""
    pytest.importorskip("build")
    pytest.importorskip("twine")
    tmp = tmp_path_factory.mktemp("release")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    _run(sys.executable, "-m", "build", "--outdir", tmp / "dist", source)
    return tmp / "dist"


def test_build_makes_a_wheel_and_an_sdist_that_twine_accepts(dist):
    version = diveq.__version__  # the single source (pyproject reads it)
    wheel = dist / f"diveq-{version}-py3-none-any.whl"
    sdist = dist / f"diveq-{version}.tar.gz"
    assert wheel.is_file() and sdist.is_file(), sorted(p.name for p in dist.iterdir())
    _run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    names = zipfile.ZipFile(wheel).namelist()
    assert "diveq/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "docs/", "examples/"))]
    assert f"diveq-{version}.dist-info/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"diveq-{version}.dist-info/METADATA").decode()
    assert f"Version: {version}" in metadata
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    for extra in EXTRAS:
        assert f"Provides-Extra: {extra}" in metadata
    members = {m.split("/", 1)[-1] for m in tarfile.open(sdist).getnames()}
    assert {
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "tests/conftest.py",
        "diveq/py.typed",
    } <= members


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_the_wheel_runs_the_quickstart_in_a_fresh_venv(dist, extra, tmp_path):
    wheel = next(dist.glob("diveq-*.whl"))
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    also, pages = EXTRAS[extra]
    _run(
        python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "-c", ROOT / "requirements" / "constraints.txt", f"{wheel}[{extra}]", *also,
    )  # fmt: skip
    work = tmp_path / "pages"  # the pages and their runner, away from the repository
    work.mkdir()
    shutil.copy(ROOT / "tests" / "_run_pages.py", work)
    for page in pages:
        shutil.copy(QUICKSTART / page, work)
    where = _run(python, "-I", "-c", "import diveq; print(diveq.__file__)", cwd=work)
    assert Path(where.strip()).is_relative_to(env), where  # the installed wheel, not the repo
    if extra == "torch":
        torch_version = _run(python, "-I", "-c", "import torch; print(torch.__version__)")
        assert torch_version.startswith("2.13.0"), torch_version  # the pinned CPU build
    print(_run(python, "-I", "_run_pages.py", *pages, cwd=work))
