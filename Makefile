# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo experiments test lint docs docs-check chromium release stubs bench clean

# The peers the tests and benchmarks compare with: vector-quantize-pytorch (pinned, with the
# pinned torch), and the official diveq 0.1.3, whose import name is ours: its wheel is unpacked
# into benchmarks/_vendor/official and loaded by path as `diveq_official` (tests/_official.py).
# The registry is read here, at set-up, never while the tests run.
$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check \
		-c requirements/constraints.txt -e '.[dev]' vector-quantize-pytorch
	rm -rf benchmarks/_vendor && mkdir -p benchmarks/_vendor
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps \
		-d benchmarks/_vendor diveq==0.1.3
	$(PY) -m zipfile -e benchmarks/_vendor/diveq-0.1.3-py3-none-any.whl benchmarks/_vendor/official
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/compress.py

# The evidence study (experiments/README.md): trains every run that has no row yet in
# experiments/results/runs.csv (resumable: interrupt and rerun at will), then writes the tables
# and figures of the docs' Evidence page to docs/evidence/. Hours on 2 cores; EXPERIMENTS_ARGS
# passes options, e.g. EXPERIMENTS_ARGS="--parts main --jobs 2".
experiments: $(STAMP)
	$(PY) -m experiments.run $(EXPERIMENTS_ARGS)
	$(PY) -m experiments.analyze

lint: $(STAMP)
	$(VENV)/bin/ruff check diveq tests examples benchmarks docs experiments
	$(VENV)/bin/ruff format --check diveq tests examples benchmarks docs experiments
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy experiments

test: lint chromium
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -n 2 --durations=10 $(PYTEST_ARGS)

# The backends' typed stubs (diveq/backends/*/_api.pyi) are generated from diveq/_ops.py.
stubs: $(STAMP)
	$(PY) -m diveq.core._faces

# The HTML site; the gallery re-runs only the examples that changed (DIVEQ_DOCS_FULL_DEMO=1 with
# an emptied docs/gallery/ runs the full compression demo instead of --quick).
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

# The site as a reader sees it: offline, in headless Chromium at 1280 px and 390 px; screenshots
# land in docs/_build/check/.
docs-check: docs chromium
	$(PY) docs/check_site.py docs/_build/html --out docs/_build/check

# Debian's Chromium for the browser check, installed where missing (needs root, as CI has);
# otherwise the check is skipped and says why. Playwright drives it and downloads no browser.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the docs' browser check"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium >/dev/null; \
	else \
		echo "chromium missing and not installable here: the browser check will be skipped"; \
	fi

# A wheel and an sdist in dist/, checked by twine (tests/test_release.py also installs them).
release: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

bench: $(STAMP)
	$(PY) benchmarks/run.py --sweep

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache *.egg-info build dist \
		docs/_build docs/api/generated docs/gallery out benchmarks/results benchmarks/_vendor
