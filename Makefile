# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint docs bench clean

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

lint: $(STAMP)
	$(VENV)/bin/ruff check diveq tests examples benchmarks
	$(VENV)/bin/ruff format --check diveq tests examples benchmarks
	$(VENV)/bin/mypy

test: lint
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -n 2 --durations=10 $(PYTEST_ARGS)

docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(PY) benchmarks/run.py --sweep

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache *.egg-info docs/_build docs/api/generated out benchmarks/results benchmarks/_vendor
