# `make demo` and `make test` set themselves up on a fresh clone: a .venv with the pinned dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow lint bench mutate clean

# PIP_CONSTRAINT also pins what source-only packages need to build (seqeval's setuptools_scm); -c does not reach there.
$(STAMP): pyproject.toml requirements/constraints.txt requirements/dev.txt requirements/no-deps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=$(CURDIR)/requirements/constraints.txt $(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/no-deps.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

# Realistic bugs applied one at a time to a copy of the tree: do the tests catch them? (tools/mutate.py; slow)
mutate: $(STAMP)
	$(BIN)/python tools/mutate.py

clean:
	rm -rf $(VENV) build *.egg-info
