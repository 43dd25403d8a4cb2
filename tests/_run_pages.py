"""Run documentation pages as a reader would paste them: every example, in order.

    python tests/_run_pages.py docs/quickstart/reference.rst docs/quickstart/jax.rst

In a reST page the ``>>>`` examples (``.. doctest::`` blocks) run as doctests and the
``.. code-block:: python`` blocks as scripts, top to bottom in one namespace per page, so a code
block may use what a doctest above it defined. Other blocks (bash, console, text) are not run.
Exit status 1 lists the failures. Standard library only: ``tests/test_release.py`` runs it in
fresh virtual environments where only the built wheel is installed.
"""

from __future__ import annotations

import doctest
import re
import sys
import textwrap
import traceback
from pathlib import Path

DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(doctest|code-block|code|sourcecode)::\s*(\S*)\s*$")
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def blocks(text: str) -> list[tuple[int, str, str]]:
    """``(line number, kind, source)`` of each runnable block; kind is doctest or python."""
    lines = text.splitlines()
    found = []
    i = 0
    while i < len(lines):
        match = DIRECTIVE.match(lines[i])
        i += 1
        if not match:
            continue
        indent, directive, language = len(match[1]), match[2], match[3]
        body: list[str] = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
            body.append(lines[i])
            i += 1
        source = textwrap.dedent("\n".join(body)).strip("\n")
        source = re.sub(r"\A(:[\w-]+:.*\n)+", "", source)  # directive options
        if directive == "doctest" or source.lstrip().startswith(">>>"):
            found.append((i - len(body), "doctest", source + "\n"))
        elif language in ("python", "python3", "py"):
            found.append((i - len(body), "python", source + "\n"))
    return found


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def run_page(path: Path) -> list[str]:
    """Run one page; return its failures (empty when every example passed)."""
    namespace: dict[str, object] = {"__name__": "__main__"}
    failures = []
    for lineno, kind, source in blocks(path.read_text(encoding="utf-8")):
        where = f"{path}:{lineno}"
        if kind == "python":
            try:
                exec(compile(source, where, "exec"), namespace)
            except Exception:
                failures.append(f"{where}: code block raised\n{traceback.format_exc()}")
            continue
        test = doctest.DocTestParser().get_doctest(source, namespace, where, str(path), lineno)
        report: list[str] = []
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        runner.run(test, out=report.append, clear_globs=False)
        namespace.update(test.globs)  # a DocTest runs on a copy of the namespace
        if runner.failures:
            failures.append("".join(report))
    return failures


def main(argv: list[str]) -> int:
    failures = []
    for name in argv:
        path = Path(name)
        found = run_page(path)
        print(
            f"{path}: {len(blocks(path.read_text(encoding='utf-8')))} blocks, {len(found)} failed"
        )
        failures += found
    for failure in failures:
        print(failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
