"""`llm-gateway` command: serve | check-config | hash-password | hash-api-key.

Configuration errors end the process with exit status 2 and one line per problem on stderr,
never a traceback. `serve` replaces itself with gunicorn (exec), so in a container gunicorn is
PID 1 and receives SIGTERM directly.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from llm_gateway.errors import ConfigurationError
from llm_gateway.preflight import check_runtime_configuration
from llm_gateway.settings import Settings, load_settings

EXIT_CONFIG_ERROR = 2

GUNICORN_APP = "llm_gateway.app:create_app()"
GUNICORN_CONF = "python:llm_gateway.gunicorn_conf"


def _load_or_exit() -> Settings:
    try:
        settings = load_settings()
        check_runtime_configuration(settings)
        return settings
    except ConfigurationError as exc:
        for line in exc.lines():
            sys.stderr.write(line + "\n")
        raise SystemExit(EXIT_CONFIG_ERROR) from None


def _check_config(args: argparse.Namespace) -> int:
    settings = _load_or_exit()
    summary = settings.redacted_summary()
    sys.stdout.write(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.write("configuration ok\n")
    return 0


def _serve(args: argparse.Namespace) -> NoReturn:
    if args.host:
        os.environ["HOST"] = args.host
    if args.port:
        os.environ["PORT"] = str(args.port)
    _load_or_exit()  # fail here, before exec, with the same message gunicorn_conf would print
    argv = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF, GUNICORN_APP]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - exec, so gunicorn becomes PID 1


def _hash_password(args: argparse.Namespace) -> int:
    from llm_gateway.auth.passwords import hash_password

    password = args.password if args.password is not None else _read_secret("Password: ")
    sys.stdout.write(hash_password(password) + "\n")
    return 0


def _hash_api_key(args: argparse.Namespace) -> int:
    from llm_gateway.auth.api_keys import generate_api_key, hash_api_key

    key = args.key if args.key is not None else generate_api_key()
    if args.key is None:
        sys.stdout.write(f"api_key: {key}\n")
    sys.stdout.write(f"key_hash: {hash_api_key(key)}\n")
    return 0


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run gunicorn with uvicorn workers")
    serve.add_argument("--host", help="bind address (default HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="bind port (default PORT or 8000)")
    serve.set_defaults(handler=_serve)

    check = commands.add_parser(
        "check-config", help="validate the environment and print a redacted summary"
    )
    check.set_defaults(handler=_check_config)

    hash_pw = commands.add_parser(
        "hash-password", help="print an argon2 hash for a USERS_FILE entry (reads stdin)"
    )
    hash_pw.add_argument("--password", help="the password (default: prompt or stdin)")
    hash_pw.set_defaults(handler=_hash_password)

    hash_key = commands.add_parser(
        "hash-api-key", help="generate (or hash a given) service API key for API_KEYS_FILE"
    )
    hash_key.add_argument("--key", help="an existing key to hash (default: generate one)")
    hash_key.set_defaults(handler=_hash_api_key)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
