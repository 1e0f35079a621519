"""`python -m devstack run`: the local stack (see devstack/run.py). `make run` calls it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from devstack.run import MlflowStore, StackError, StackPorts, run, say
from devstack.venvs import repo_root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("run", help="LiteLLM proxy + MLflow + the gateway, foreground")
    serve.add_argument("--port", type=int, default=8000, help="gateway port (make run PORT=)")
    serve.add_argument(
        "--litellm-port", type=int, default=4000, help="LiteLLM proxy port (LITELLM_PORT=)"
    )
    serve.add_argument(
        "--mlflow-port", type=int, default=5000, help="MLflow server port (MLFLOW_PORT=)"
    )
    serve.add_argument(
        "--mlflow-backend",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="MLflow's store: sqlite (default) or a local PostgreSQL (MLFLOW_BACKEND=)",
    )
    serve.add_argument(
        "--postgres-port", type=int, default=5432, help="PostgreSQL port (POSTGRES_PORT=)"
    )
    serve.add_argument(
        "--mlflow-workers", type=int, default=None, help="MLflow server workers (MLFLOW_WORKERS=)"
    )
    args = parser.parse_args(argv)
    ports = StackPorts(gateway=args.port, litellm=args.litellm_port, mlflow=args.mlflow_port)
    store = MlflowStore(args.mlflow_backend, args.postgres_port, args.mlflow_workers)
    try:
        return run(repo_root(), ports, store)
    except StackError as exc:
        say(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
