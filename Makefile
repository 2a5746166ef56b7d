# Pavilion: `make run` serves the embedded default; `make test` runs every check.
# Both install what they need on a fresh Debian machine (apt packages when run as root).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed
VALIDATOR_STAMP := pipeline/validator/node_modules/.installed
BENCH_STAMP := bench/node_modules/.installed
export PAVILION_PORT ?= 8000

.PHONY: help run test lint types imports pytest web validator fmt bench system clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

system: ## install the Debian packages the project needs (root only; skips what is present)
	@bash .ci/system-packages

$(PIP_STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip==26.3
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(WEB_STAMP): web/package.json web/package-lock.json
	@$(MAKE) --no-print-directory system
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(VALIDATOR_STAMP): pipeline/validator/package.json pipeline/validator/package-lock.json
	@$(MAKE) --no-print-directory system
	npm ci --prefix pipeline/validator --no-audit --no-fund --loglevel=error
	@touch $@

validator: $(VALIDATOR_STAMP) ## install the Khronos glTF validator (npm gltf-validator)

web/dist/index.html: $(WEB_STAMP) web/index.html web/vite.config.js $(wildcard web/src/*)
	cd web && npx vite build --logLevel warn

web: web/dist/index.html ## build the browser client

run: $(PIP_STAMP) web $(VALIDATOR_STAMP) ## serve the embedded default (SQLite, local blobs, demo expo) on 127.0.0.1:$PAVILION_PORT
	$(PY) -m server migrate
	$(PY) -m server seed-demo
	$(PY) -m server serve

lint: $(PIP_STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(PIP_STAMP) ## mypy (strict on pipeline/, scenes/, server/tours/)
	$(VENV)/bin/mypy server pipeline scenes tests bench

imports: $(PIP_STAMP) ## import-linter: server -> scenes -> pipeline, pure pipeline and scenes
	$(VENV)/bin/lint-imports

pytest: $(PIP_STAMP) web $(VALIDATOR_STAMP) ## the test suite (starts PostgreSQL and SeaweedFS on loopback when needed)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint types imports pytest ## everything CI runs

fmt: $(PIP_STAMP) ## format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

$(BENCH_STAMP): bench/package.json bench/package-lock.json
	@$(MAKE) --no-print-directory system
	npm ci --prefix bench --no-audit --no-fund --loglevel=error
	@touch $@

bench: $(PIP_STAMP) $(VALIDATOR_STAMP) $(BENCH_STAMP) ## benchmarks against gltfpack and glTF-Transform (docs/benchmarks.md)
	@command -v gltfpack >/dev/null || { test "$$(id -u)" = 0 && apt-get install -y -qq --no-install-recommends gltfpack; } || { echo "gltfpack missing: apt-get install -y gltfpack" >&2; exit 1; }
	@for b in bench/[!_]*.py; do $(PY) $$b; done

clean: ## remove the venv, node_modules, builds and var/
	rm -rf $(VENV) web/node_modules pipeline/validator/node_modules bench/node_modules web/dist var .mypy_cache .ruff_cache .pytest_cache
