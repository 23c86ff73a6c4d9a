# Course tasks. On a fresh machine with Python 3.11 and network: `make course` then `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
NOTEBOOKS := $(wildcard notebooks/*.ipynb)

# Repeatable runs: fixed hash seed; one BLAS/OpenMP thread per core unless the caller says otherwise.
export PYTHONHASHSEED := 0
OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 1)
export OMP_NUM_THREADS

.PHONY: help setup course test lab readme bench strip lint clean

help:
	@echo "make course  - install, execute every notebook (build/), regenerate README tables"
	@echo "make test    - notebook hygiene, ruff, unit tests, every notebook under nbval"
	@echo "make lab     - open JupyterLab in the course environment"
	@echo "make readme  - regenerate README tables from build/results.json"
	@echo "make bench   - run benchmarks/bench_*.py (installs the bench extra)"
	@echo "make strip   - remove outputs and execution counts from notebooks/"
	@echo "make lint    - ruff and notebook hygiene only"
	@echo "make clean   - remove build/ and caches (keeps .venv and data/)"

setup: $(STAMP)

# Reinstalls only when requirements.txt or pyproject.toml change; otherwise instant.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install -e . --no-deps
	@touch $@

course: setup
	$(BIN)/python scripts/run_course.py $(if $(ONLY),--only $(ONLY))
	$(BIN)/python scripts/update_readme.py

test: setup
	$(BIN)/python scripts/check_notebooks.py
	$(BIN)/ruff check .
	$(BIN)/pytest -q tests
	@# Notebooks record into a scratch build dir so a test run never overwrites the course's results.
	@# pytest exits 5 when it collects nothing: accepted only while there are no notebooks.
	MPLBACKEND=Agg RECSYS_BUILD_DIR=$(CURDIR)/build/nbval \
	  $(BIN)/pytest -q --nbval-lax --nbval-cell-timeout=1200 -p no:cacheprovider notebooks/ \
	  $(if $(NOTEBOOKS),,|| test $$? -eq 5)

lab: setup
	$(BIN)/jupyter lab

readme: setup
	$(BIN)/python scripts/update_readme.py

bench: $(BENCH_STAMP)
	@shopt -s nullglob; status=0; files=(benchmarks/bench_*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "no benchmarks/bench_*.py yet"; fi; \
	for f in "$${files[@]}"; do \
	  echo "== $$f"; $(BIN)/python "$$f" || { echo "FAILED: $$f"; status=1; }; \
	done; exit $$status

$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(BIN)/python -m pip install -r requirements-bench.txt
	@touch $@

strip: setup
	$(BIN)/python scripts/check_notebooks.py --strip

lint: setup
	$(BIN)/python scripts/check_notebooks.py
	$(BIN)/ruff check .

clean:
	rm -rf build .pytest_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	find notebooks -name .ipynb_checkpoints -type d -prune -exec rm -rf {} + 2>/dev/null || true
