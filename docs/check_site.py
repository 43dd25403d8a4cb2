"""Check the built documentation as a reader sees it: offline, in headless Chromium.

    python docs/check_site.py docs/_build/html --out docs/_build/check   # make docs-check

Two passes. The first reads every HTML file of the site and fails on an internal link to a page
or anchor that does not exist, an image file that is missing, or a "SPEC section" pointer. The
second serves the site on 127.0.0.1, opens the key pages in Debian's Chromium (driven by
Playwright, which downloads no browser of its own) with every other address blocked, at 1280 px
and at a phone's 390 px, and fails on

- a request that left the machine (the site must work offline),
- raw TeX left in the text (MathJax did not render it) or a MathJax error,
- at 1280 px: a code block or display equation wider than its column, anything wider than the
  window, an image that did not load, an empty "Section Navigation", a top-level page hidden
  under the header's "More" menu, a "SPEC section" pointer, a code block without a copy button;
- at 390 px: anything wider than the window (code blocks may scroll inside the column).

It writes a screenshot of each page at each width to ``--out`` (the first screen;
``--screens N``: the first N screens, scrolled as a reader scrolls) and prints one line per
page. Exit status 0: all passed; 1: problems (listed); 2: Chromium or Playwright missing
(``make chromium`` installs Debian's Chromium).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import shutil
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

KEY_PAGES = [
    "index.html",
    "installation.html",
    "quickstart/reference.html",
    "quickstart/torch.html",
    "quickstart/jax.html",
    "api/torch.html",
    "api/jax.html",
    "api/flax_nnx.html",
    "api/flax_linen.html",
    "api/equinox.html",
    "semantics.html",
    "testing.html",
    "performance.html",
    "reliability.html",
    "gallery/index.html",
    "gallery/compress.html",
    "gallery/toy2d_jax.html",
    "api/generated/diveq.backends.jax.diveq.html",
    "api/generated/diveq.backends.jax.DiVeQ.html",
]
TOP_NAV = ("Quickstart", "API", "Examples", "Performance", "Reliability")
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_SPEC_POINTER = re.compile(r"\bSPEC(\s+sections?\s+[\d, and/]+|\.md|'s)")
_MEASURE = Path(__file__).with_name("_check_page.js").read_text()


class _Refs(HTMLParser):
    """The ids, link targets and image sources of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        if tag == "img" and a.get("src"):
            self.images.append(a["src"] or "")


def check_files(site: Path) -> list[str]:
    """Every internal link and image of every page resolves (files and anchors), and no page
    points readers to the team's SPEC file, which they do not have."""
    pages = {p: _Refs() for p in sorted(site.rglob("*.html"))}
    problems = []
    for path, refs in pages.items():
        text = path.read_text(encoding="utf-8", errors="replace")
        refs.feed(text)
        for match in _SPEC_POINTER.finditer(text):
            problems.append(f"{path.relative_to(site)}: points to the SPEC: {match[0]!r}")
    for path, refs in pages.items():
        rel = path.relative_to(site)
        for kind, targets in (("link", refs.links), ("image", refs.images)):
            for target in targets:
                parts = urlsplit(target)
                if parts.scheme or parts.netloc or target.startswith(("mailto:", "#!")):
                    continue  # external: not followed (the site must not need them)
                file = (path.parent / unquote(parts.path)).resolve() if parts.path else path
                if file.is_dir():
                    file = file / "index.html"
                if not file.is_file():
                    problems.append(f"{rel}: broken {kind} {target}")
                elif kind == "link" and parts.fragment and file in pages:
                    if unquote(parts.fragment) not in pages[file].ids:
                        problems.append(f"{rel}: link to a missing anchor {target}")
    return problems


def _serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def _page_problems(view: str, facts: dict) -> list[str]:
    """Turn what _check_page.js measured into problems for this width."""
    problems = [f"raw TeX: {t!r}" for t in facts["rawTex"]]
    problems += [f"MathJax error: {t!r}" for t in facts["mathErrors"]]
    if facts["pageWidth"] > facts["windowWidth"]:
        problems.append(
            f"page is {facts['pageWidth']} px wide in a {facts['windowWidth']} px window"
        )
    if view == "phone":
        return problems
    problems += [f"wider than its column: {t}" for t in facts["overflowing"]]
    problems += [f"image did not load: {src}" for src in facts["brokenImages"]]
    if facts["emptySectionNav"]:
        problems.append('empty "Section Navigation" sidebar')
    hidden = [name for name in TOP_NAV if name not in facts["topNav"]]
    if hidden:
        problems.append(f"not in the top navigation bar: {hidden} (bar: {facts['topNav']})")
    problems += [f"points to the SPEC: {t!r}" for t in facts["specPointers"]]
    if facts["copyButtons"] < facts["codeBlocks"]:
        problems.append(
            f"{facts['codeBlocks'] - facts['copyButtons']} code blocks without a copy button"
        )
    return problems


def _screenshots(page, stem: Path, screens: int) -> None:
    """The first ``screens`` screens of the page, as a reader scrolls through it (a full-page
    screenshot would lay the page out in one very tall window, which is not what anyone sees)."""
    height = page.viewport_size["height"]
    for i in range(screens):
        top = page.evaluate(f"() => {{ window.scrollTo(0, {i * (height - 80)}); return scrollY; }}")
        if i and top < i * (height - 80):  # already at the bottom
            break
        page.screenshot(path=f"{stem}{'' if i == 0 else f'-{i + 1}'}.png")


def check_pages(site: Path, out: Path, chromium: str, *, screens: int = 1) -> list[str]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    server, root = _serve(site)
    problems: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            for view, (width, height) in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": height})
                offsite: list[str] = []

                def only_local(route, offsite=offsite):
                    if route.request.url.startswith(root):
                        return route.continue_()
                    offsite.append(route.request.url)
                    return route.abort()

                context.route("**/*", only_local)
                for page_path in KEY_PAGES:
                    page = context.new_page()
                    page.goto(root + page_path, wait_until="load")
                    facts = page.evaluate(_MEASURE)
                    _screenshots(page, out / f"{page_path.replace('/', '_')[:-5]}-{view}", screens)
                    found = _page_problems(view, facts)
                    found += [f"request left the machine: {u}" for u in offsite]
                    offsite.clear()
                    status = "ok" if not found else f"{len(found)} problem(s)"
                    print(f"{view:7} {page_path:48} {facts['mathCount']:4} formulas  {status}")
                    problems += [f"{page_path} ({view}): {p}" for p in found]
                    page.close()
                context.close()
            browser.close()
    finally:
        server.shutdown()
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    p.add_argument("site", type=Path, help="the built HTML (docs/_build/html)")
    p.add_argument("--out", type=Path, default=Path("docs/_build/check"), help="screenshots")
    p.add_argument("--screens", type=int, default=1, help="screenshots per page (scrolled)")
    args = p.parse_args(argv)
    missing = [page for page in KEY_PAGES if not (args.site / page).is_file()]
    if missing:
        print(f"not built: {missing}", file=sys.stderr)
        return 1
    chromium = find_chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        chromium = None
    if chromium is None:
        print("Chromium or Playwright missing: `make chromium` installs Debian's", file=sys.stderr)
        return 2
    problems = check_files(args.site)
    pages = len(list(args.site.rglob("*.html")))
    print(f"links and images of {pages} pages: {len(problems)} broken")
    problems += check_pages(args.site, args.out, chromium, screens=args.screens)
    print(f"screenshots in {args.out}")
    for problem in problems:
        print(f"PROBLEM {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
