# Audience Workbench: developer and CI entry points. `make` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
PY := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff
LINT_PATHS := $(wildcard workbench tests bench)

PERSONS ?= 10000
BENCH_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help setup test test-fast demo lab dashboard bench lint clean

help:
	@echo "Audience Workbench"
	@echo ""
	@echo "  make setup       install system packages (postgresql, sshd, ...) and .venv"
	@echo "  make test        setup, start PostgreSQL and sshd, ruff check, pytest (PYTEST_ARGS=...)"
	@echo "  make test-fast   same, without tests marked slow"
	@echo "  make demo        the daily pipeline on the sample brand through the job notebooks (PERSONS=$(PERSONS))"
	@echo "  make lab         JupyterLab on notebooks/ (WORKBENCH_WORKSPACE, default data/workspace from make demo)"
	@echo "  make dashboard   Voila on dashboards/ at http://127.0.0.1:8866 (WORKBENCH_WORKSPACE, default data/workspace)"
	@echo "  make bench       run the benchmarks (BENCH_ARGS=...)"
	@echo "  make lint        ruff check + ruff format --check"
	@echo "  make clean       remove generated data, the workspace and .ci/state"

setup:
	@bash scripts/setup.sh

test: setup
	@bash scripts/test.sh $(PYTEST_ARGS)

test-fast: setup
	@bash scripts/test.sh -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/workbench demo --persons $(PERSONS)

# the notebooks read WORKBENCH_WORKSPACE; kernels start in notebooks/, so the default is absolute
lab: setup
	WORKBENCH_WORKSPACE="$${WORKBENCH_WORKSPACE:-$(CURDIR)/data/workspace}" $(VENV)/bin/jupyter lab --notebook-dir=notebooks

# the stakeholder dashboards (Voila on loopback); kernels start in dashboards/
dashboard: setup
	WORKBENCH_WORKSPACE="$${WORKBENCH_WORKSPACE:-$(CURDIR)/data/workspace}" $(VENV)/bin/workbench dashboard

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

lint: setup
	$(RUFF) check $(LINT_PATHS)
	$(RUFF) format --check $(LINT_PATHS)

clean:
	@for d in .ci/state/pg .ci/state/pg-*; do \
	  if [ -d "$$d" ]; then bash scripts/pg.sh stop "$$d" || true; fi; \
	done
	@for d in .ci/state/sshd .ci/state/sshd-*; do \
	  if [ -d "$$d" ]; then bash scripts/sshd.sh stop "$$d" || true; fi; \
	done
	rm -rf data/sample data/workspace .ci/state
