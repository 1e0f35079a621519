# The local stack: the LiteLLM proxy and MLflow server in their own venvs under .stack/, and
# `make run`, which starts them with the gateway (devstack/run.py).

.PHONY: litellm-venv
litellm-venv: install ## build the LiteLLM proxy's venv (.stack/litellm-venv) if missing or outdated
	$(BIN)/python -m devstack.litellm ensure

.PHONY: stack-venvs
stack-venvs: install ## build both side venvs (LiteLLM proxy, MLflow server) ahead of the tests
	$(BIN)/python -m devstack.litellm ensure
	$(BIN)/python -m devstack.mlflow ensure

.PHONY: run
run: install ## run the whole local stack on http://localhost:8000
	$(BIN)/python -m devstack run
