# Course tasks. On a fresh machine with Python 3.11 (or 3.12/3.13) and network: `make course` then `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The interpreter that creates .venv: PYTHON=/path/to/python overrides; otherwise the first of
# python3.11, python3.12, python3.13 on the PATH that actually runs and is 3.11-3.13 (a pyenv shim
# can exist for a version that is not active, so each candidate is run, not just looked up).
# 3.11 comes first: it is the course's Python (environment.yml) and the one the pinned
# torch==2.13.0 CPU wheel is provided for on the course machines; 3.12 and 3.13 work where torch
# has a wheel for them. (Recursive `=`: the search runs only when .venv has to be created.)
PYTHON_CANDIDATES := python3.11 python3.12 python3.13
ifeq ($(origin PYTHON),undefined)
PYTHON = $(firstword $(foreach py,$(PYTHON_CANDIDATES),$(shell $(py) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' >/dev/null 2>&1 && echo $(py))))
endif
LOCK := requirements.lock
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(wildcard notebooks/*.ipynb)

# Repeatable runs: fixed hash seed; one BLAS/OpenMP thread per core unless the caller says otherwise.
export PYTHONHASHSEED := 0
OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 1)
export OMP_NUM_THREADS

.PHONY: help setup course test unit lint-imports lab board learner readme bench strip lint clean

help:
	@echo "make course  - install, execute every notebook (build/), regenerate README tables"
	@echo "make test    - notebook hygiene, ruff, import contracts, unit tests, every notebook on every dataset it lists"
	@echo "make unit    - the fast unit tests only (skips tests marked slow), under a minute"
	@echo "make lab     - open JupyterLab in the course environment"
	@echo "make board   - open TensorBoard on the training runs the notebooks logged (build/runs, 127.0.0.1:6006)"
	@echo "make learner - write the learner edition (no solutions or answers) to build/learner/"
	@echo "make readme  - regenerate README tables from build/results.json"
	@echo "make bench   - run benchmarks/bench_*.py; speed ratios and scaling exponents in build/bench.json"
	@echo "make strip   - remove outputs and execution counts from notebooks/"
	@echo "make lint    - ruff and notebook hygiene only"
	@echo "make lint-imports - the import-linter contracts in pyproject.toml (layers, no cycles)"
	@echo "make clean   - remove build/ and caches (keeps .venv and data/)"

setup: $(STAMP)

# Reinstalls only when requirements.lock or pyproject.toml change; otherwise instant.
# The lock pins every package (library, notebooks, tests, benchmarks); the package itself goes in
# editable, without resolving its ranges again.
$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || { \
	  if [ -z "$(PYTHON)" ]; then \
	    echo "make: no Python 3.11, 3.12 or 3.13 found (tried $(PYTHON_CANDIDATES)); install one or pass PYTHON=/path/to/python" >&2; \
	    exit 1; \
	  fi; \
	  $(PYTHON) -m venv $(VENV); \
	}
	$(BIN)/python -m pip install -r $(LOCK)
	$(BIN)/python -m pip install -e . --no-deps
	@touch $@

course: setup
	$(BIN)/python scripts/run_course.py $(if $(ONLY),--only $(ONLY))
	$(BIN)/python scripts/update_readme.py

test: setup
	$(BIN)/python scripts/check_notebooks.py
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -q tests
	@# Every notebook under nbval on every dataset its metadata lists: the marketplace always, the real
	@# datasets when their files are beside the checkout (../shared/data or $$RECSYS_DATA_SOURCE_DIR),
	@# each into a scratch build dir (build/nbval/<dataset>) so a test run never overwrites the course's results.
	$(BIN)/python scripts/run_notebook_tests.py

# Tests marked slow (tests/conftest.py lists those measured above ~1.5 s) run only in `make test`.
unit: setup
	$(BIN)/pytest -q -m "not slow" -p no:cacheprovider tests

lint-imports: setup
	$(BIN)/lint-imports

lab: setup
	$(BIN)/jupyter lab

# Training runs logged by the one training loop's TensorBoard callback (notebook 17 writes them).
board: setup
	$(BIN)/tensorboard --logdir build/runs --host 127.0.0.1 --port 6006

learner: setup
	$(BIN)/python scripts/make_learner.py

readme: setup
	$(BIN)/python scripts/update_readme.py

# implicit (the bench extra) is in requirements.lock, so setup has installed it. bench_cf.py writes
# the speed ratios against implicit and bench_scaling.py the scaling exponents into build/bench.json
# (started afresh here); `make readme` turns it into the README's performance table.
bench: setup
	@mkdir -p build; rm -f build/bench.json
	@shopt -s nullglob; status=0; files=(benchmarks/bench_*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "no benchmarks/bench_*.py yet"; fi; \
	for f in "$${files[@]}"; do \
	  echo "== $$f"; $(BIN)/python "$$f" || { echo "FAILED: $$f"; status=1; }; \
	done; exit $$status

strip: setup
	$(BIN)/python scripts/check_notebooks.py --strip

lint: setup
	$(BIN)/python scripts/check_notebooks.py
	$(BIN)/ruff check .

clean:
	rm -rf build .pytest_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	find notebooks -name .ipynb_checkpoints -type d -prune -exec rm -rf {} + 2>/dev/null || true
