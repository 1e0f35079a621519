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
# MLflow's backend store: sqlite (default, nothing to install) or postgres (Debian's postgresql
# package, started in DATA_DIR/postgres on POSTGRES_PORT); MLFLOW_WORKERS defaults to 1 on
# sqlite, 2 on postgres.
MLFLOW_BACKEND ?= sqlite
POSTGRES_PORT ?= 5432
MLFLOW_WORKERS ?=

.PHONY: run
run: install ## the whole local stack on http://localhost:8000; other ports: make run PORT=8001 LITELLM_PORT=4001 MLFLOW_PORT=5001; MLflow on Postgres: make run MLFLOW_BACKEND=postgres
	$(BIN)/python -m devstack run --port $(PORT) --litellm-port $(LITELLM_PORT) --mlflow-port $(MLFLOW_PORT) \
		--mlflow-backend $(MLFLOW_BACKEND) --postgres-port $(POSTGRES_PORT) $(if $(MLFLOW_WORKERS),--mlflow-workers $(MLFLOW_WORKERS))

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
