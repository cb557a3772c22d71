# clusterkit: `make up` brings up a cluster, `make test` runs the whole suite.
# Every target does its own set-up (venv, base image, node images) on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
BACKEND ?= dask
RUNTIME ?=
WORKERS ?= 2
NAME ?= $(BACKEND)
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/.installed: images/requirements.lock images/requirements-dev.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r images/requirements.lock -r images/requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

.PHONY: venv
venv: $(BIN)/.installed ## Create .venv from the same lock as the node images

.PHONY: lock
lock: venv ## Recompile images/*.lock from images/*.in (needs the package index) and the extras' pins
	$(BIN)/clusterkit image lock --union
	$(BIN)/python -m clusterkit.images.pins --write
	$(BIN)/uv pip compile --quiet --no-header --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_36 images/requirements-dev.in -o images/requirements-dev.lock

.PHONY: tools
tools: # mmdebstrap makes the base image from Debian's packages (skipped when BASE_IMAGE is set)
	@if [ -z "$$BASE_IMAGE" ] && ! command -v mmdebstrap >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null; \
		else echo "error: mmdebstrap is missing; run: sudo apt-get install mmdebstrap (or set BASE_IMAGE)"; exit 2; fi; \
	fi

.PHONY: base
base: venv tools ## Build the base images from nothing (mmdebstrap + docker import)
	$(BIN)/clusterkit image base

.PHONY: images
images: venv tools ## Build the base and node images that are missing or stale (no pull, no network in the build)
	$(BIN)/clusterkit image build

.PHONY: up
up: venv ## Start a cluster (BACKEND=dask|spark WORKERS=N RUNTIME=compose|local|swarm) and print its status
	@# Only the image this backend runs (a Dask user waits for no Spark image).
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory tools && $(BIN)/clusterkit image build $(BACKEND); fi
	$(BIN)/clusterkit up --backend $(BACKEND) --workers $(WORKERS) --name $(NAME) $(if $(RUNTIME),--runtime $(RUNTIME))

.PHONY: down
down: venv ## Stop the cluster NAME (default: BACKEND) and remove what it started
	$(BIN)/clusterkit down --name $(NAME)

.PHONY: status
status: venv ## Show the cluster's workers, cores, memory and versions
	$(BIN)/clusterkit status --name $(NAME)

.PHONY: logs
logs: venv ## Show the cluster's logs
	$(BIN)/clusterkit logs --name $(NAME)

.PHONY: render
render: venv ## Rewrite compose/*.yml from the default specs (CI checks they are current)
	$(BIN)/python -m clusterkit.render compose

.PHONY: lint
lint: venv ## Run ruff and the layer contract (import-linter, pyproject.toml)
	$(BIN)/ruff check clusterkit tests $(wildcard benchmarks)
	$(BIN)/ruff format --check clusterkit tests $(wildcard benchmarks)
	$(BIN)/lint-imports --no-cache

.PHONY: unit
unit: venv ## Unit tests only (no Docker, no clusters)
	$(BIN)/pytest tests/unit -n 2 $(PYTEST_ARGS)

.PHONY: test
test: venv images ## The whole suite: lint, unit, integration and fault tests against real processes and containers
	$(BIN)/ruff check clusterkit tests $(wildcard benchmarks)
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest tests/unit -n 2 $(PYTEST_ARGS)
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)
	$(BIN)/pytest tests/faults $(PYTEST_ARGS)

.PHONY: faults
faults: venv images ## The fault suite alone: killed nodes, signals during up, bad input (real engine)
	$(BIN)/pytest tests/faults $(PYTEST_ARGS)

.PHONY: soak
soak: venv images ## 25 up/down cycles: nothing may be left (containers, networks, volumes, images, processes)
	$(BIN)/pytest tests/soak/soak_up_down.py -m soak -s $(PYTEST_ARGS)

.PHONY: bench
bench: venv images ## Run the benchmarks (P1-P9, P7c, P8w, P8s); writes benchmarks/RESULTS.md and results.png
	$(BIN)/python -m benchmarks

.PHONY: bench-fresh
bench-fresh: venv ## P7a/P7b: time `make up` from a clean clone with no clusterkit image and empty caches
	$(BIN)/python -m benchmarks.fresh --backend both

.PHONY: clean
clean: ## Remove the venv and caches (not images; see `clusterkit image prune`)
	rm -rf $(VENV) .pytest_cache .ruff_cache
