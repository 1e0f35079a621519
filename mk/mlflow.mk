# The MLflow tracking server's own virtualenv (devstack/mlflow.py; never the service's .venv).
.PHONY: mlflow-venv
mlflow-venv: install ## builds the MLflow server venv (.stack/mlflow-venv, pinned by devstack/requirements/mlflow.txt)
	$(BIN)/python -m devstack.mlflow ensure
