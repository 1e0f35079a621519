# The local stack: the LiteLLM proxy and MLflow server in their own venvs under .stack/, and
# `make run`, which starts them with the gateway (devstack/run.py).

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
