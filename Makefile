# llm-gateway: the one front door. `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(VENV)
export LITELLM_LOCAL_MODEL_COST_MAP := True
# Python trees ruff checks; only those present (git drops empty folders).
PY_PATHS = $(wildcard service tests bench scripts devstack)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups
	@touch $@

.PHONY: install
install: $(VENV)/.installed ## create .venv with the service and its dev tools (pinned by uv.lock)

.PHONY: lock
lock: | $(UV) ## re-resolve uv.lock after changing pyproject.toml
	$(UV) lock

.PHONY: lint
lint: install ## ruff lint and format check; import layers and no cycles (lint-imports)
	$(BIN)/ruff check $(PY_PATHS)
	$(BIN)/ruff format --check $(PY_PATHS)
	$(BIN)/lint-imports

.PHONY: fmt
fmt: install ## format and autofix
	$(BIN)/ruff format $(PY_PATHS)
	$(BIN)/ruff check --fix $(PY_PATHS)

.PHONY: typecheck
typecheck: install ## mypy --strict on the service
	$(BIN)/mypy

.PHONY: pytest
# The side venvs (LiteLLM proxy, MLflow server) and helm are built before the suite, not inside a
# test's timeout.
pytest: install stack-venvs tools ## the pytest suite alone (unit, integration, chart)
	$(BIN)/pytest -m "not e2e and not cluster" $(PYTEST_ARGS)

.PHONY: test
test: lint typecheck pytest ## everything CI checks except the container e2e suite

.PHONY: failure-table
failure-table: install stack-venvs ## rerun the failure scenarios; rewrite docs/failure-scenarios.md
	FAILURE_TABLE=docs/failure-scenarios.md $(BIN)/pytest -m integration \
		tests/integration/test_failure_scenarios.py $(PYTEST_ARGS)

include mk/*.mk
