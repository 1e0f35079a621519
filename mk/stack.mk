# The local stack: the LiteLLM proxy and MLflow server in their own venvs under .stack/, `make run`,
# which starts them with the gateway (devstack/run.py), and the redis-server the tests start.

.PHONY: litellm-venv
litellm-venv: install ## build the LiteLLM proxy's venv (.stack/litellm-venv) if missing or outdated
	$(BIN)/python -m devstack.litellm ensure

.PHONY: stack-venvs
stack-venvs: install ## build both side venvs (LiteLLM proxy, MLflow server) ahead of the tests
	$(BIN)/python -m devstack.litellm ensure
	$(BIN)/python -m devstack.mlflow ensure

# Ports of `make run`; move any of them with e.g. `make run PORT=8001 LITELLM_PORT=4001`.
PORT ?= 8000
LITELLM_PORT ?= 4000
MLFLOW_PORT ?= 5000

.PHONY: run
run: install ## the whole local stack on http://localhost:8000; other ports: make run PORT=8001 LITELLM_PORT=4001 MLFLOW_PORT=5001
	$(BIN)/python -m devstack run --port $(PORT) --litellm-port $(LITELLM_PORT) --mlflow-port $(MLFLOW_PORT)

# The MLflow tracking server's own virtualenv (devstack/mlflow.py; never the service's .venv).
.PHONY: mlflow-venv
mlflow-venv: install ## builds the MLflow server venv (.stack/mlflow-venv, pinned by devstack/requirements/mlflow.txt)
	$(BIN)/python -m devstack.mlflow ensure

# redis-server (Debian's package) for the integration tests, which start their own on a free
# loopback port and stop it. Installed when missing, never started as a system service.
.PHONY: redis-server
redis-server: ## install Debian's redis-server if missing (tests start their own, never the service)
	@command -v redis-server >/dev/null 2>&1 || scripts/stack/install-redis-server.sh

pytest: redis-server
