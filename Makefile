# guomen: common tasks. `make help` lists them.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PY := .venv/bin/python
DEMO_DECLARATIONS ?= 200000

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

uv:
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

install: uv ## create .venv from the lock file (uv.lock)
	@$$(command -v uv || echo $(UV)) sync --frozen

demo: install ## make demo data, ingest, train, register, promote and serve on http://127.0.0.1:8000
	.venv/bin/guomen up --declarations $(DEMO_DECLARATIONS)

test: install ## run the whole test suite (installs PostgreSQL and Chromium for their tests when root)
	@bash scripts/test_services.sh > .test-services.env
	@set -a; source .test-services.env; set +a; $(PY) -m pytest $(PYTEST_ARGS)

lint: install ## ruff lint and format check, mypy on the packages
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

format: install ## apply ruff formatting
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench: install ## run every benchmark and refresh benchmarks/results/
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
	$(PY) benchmarks/report.py

.PHONY: help uv install demo test lint format bench
