"""Smoke test: the README's curl sequence against a running gateway, failing on any surprise.

Works against anything that serves the gateway: `make run` (localhost:8000), a kind cluster
behind `make port-forward`, or a real deployment. Standard library only, so it runs anywhere
python3 does.

    python3 scripts/smoke.py --base-url http://localhost:8000 [--username admin]

Credentials default to the development/kind accounts (admin / dev-password); override with
--username/--password or SMOKE_USERNAME/SMOKE_PASSWORD. Exit status 0 only if every step
answered with its expected status and shape.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


class SmokeFailure(Exception):
    pass


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]
    elapsed_ms: float = 0.0


def call(
    base_url: str,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 30.0,
) -> Answer:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url.rstrip("/") + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, headers = error.code, error.read(), dict(error.headers)
    except (urllib.error.URLError, OSError) as error:
        raise SmokeFailure(f"{method} {path}: cannot reach {base_url}: {error}") from None
    try:
        parsed: Any = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        parsed = raw.decode(errors="replace")
    return Answer(status, parsed, headers, (time.monotonic() - started) * 1000)


def expect(answer: Answer, step: str, statuses: tuple[int, ...]) -> Answer:
    if answer.status not in statuses:
        raise SmokeFailure(
            f"{step}: expected {' or '.join(map(str, statuses))}, got {answer.status}: "
            f"{json.dumps(answer.body)[:300]}"
        )
    return answer


def run(base_url: str, username: str, password: str, model: str | None, degraded_ok: bool) -> None:
    def step(name: str, answer: Answer, statuses: tuple[int, ...] = (200,)) -> Answer:
        expect(answer, name, statuses)
        print(f"ok  {name:<28} {answer.status}  ({answer.elapsed_ms:.0f} ms)")
        return answer

    step("GET /livez", call(base_url, "GET", "/livez"))
    step("GET /readyz", call(base_url, "GET", "/readyz"))

    login = step(
        "POST /auth/login",
        call(base_url, "POST", "/auth/login", body={"username": username, "password": password}),
    )
    token = login.body.get("access_token") if isinstance(login.body, dict) else None
    if not token:
        raise SmokeFailure("POST /auth/login: no access_token in the answer")

    step("GET /auth/me (no token)", call(base_url, "GET", "/auth/me"), (401,))
    me = step("GET /auth/me", call(base_url, "GET", "/auth/me", token=token))
    if me.body.get("username") != username:
        raise SmokeFailure(f"GET /auth/me: expected {username!r}, got {me.body!r}")

    request: dict[str, Any] = {"prompt": "Say hello in five words.", "max_tokens": 32}
    if model:
        request["model"] = model
    generated = step(
        "POST /llm/generate", call(base_url, "POST", "/llm/generate", body=request, token=token)
    )
    text = generated.body.get("response") if isinstance(generated.body, dict) else None
    if not isinstance(text, str) or not text:
        raise SmokeFailure(f"POST /llm/generate: no text in {generated.body!r}")
    print(f"    model={generated.body.get('model')!r} response={text[:60]!r}")

    models = step("GET /models", call(base_url, "GET", "/models", token=token))
    if not models.body:
        raise SmokeFailure("GET /models: empty model list")
    step("GET /v1/models", call(base_url, "GET", "/v1/models", token=token))

    detailed = step(
        "GET /health/detailed",
        call(base_url, "GET", "/health/detailed", token=token),
        (200, 503) if degraded_ok else (200,),
    )
    if isinstance(detailed.body, dict):
        print(f"    status={detailed.body.get('status')!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="llm-gateway smoke test")
    parser.add_argument(
        "--base-url", default=os.environ.get("SMOKE_BASE_URL", "http://localhost:8000")
    )
    parser.add_argument("--username", default=os.environ.get("SMOKE_USERNAME", "admin"))
    parser.add_argument("--password", default=os.environ.get("SMOKE_PASSWORD", "dev-password"))
    parser.add_argument(
        "--model", default=os.environ.get("SMOKE_MODEL"), help="default: the gateway's"
    )
    parser.add_argument(
        "--allow-degraded",
        action="store_true",
        help="accept 503 from /health/detailed (a dependency is down)",
    )
    args = parser.parse_args(argv)
    print(f"smoke test against {args.base_url}")
    try:
        run(args.base_url, args.username, args.password, args.model, args.allow_degraded)
    except SmokeFailure as failure:
        print(f"FAIL {failure}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
