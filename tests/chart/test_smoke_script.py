"""scripts/smoke.py passes only when every step of the README sequence answers as expected.

The gateway is stood in for by a small real HTTP server whose answers each case changes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import pytest

from tests.chart.rendering import ROOT

pytestmark = pytest.mark.chart

TOKEN = "token-123"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke", ROOT / "scripts" / "smoke.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


smoke = _load_script()


def _answers() -> dict[tuple[str, str], tuple[int, Any]]:
    return {
        ("GET", "/livez"): (200, {"status": "alive"}),
        ("GET", "/readyz"): (200, {"status": "ready"}),
        ("POST", "/auth/login"): (200, {"access_token": TOKEN, "token_type": "bearer"}),
        ("GET", "/auth/me"): (200, {"username": "admin", "role": "admin"}),
        ("POST", "/llm/generate"): (200, {"response": "Hello there!", "model": "smart-router"}),
        ("GET", "/models"): (200, {"data": [{"id": "mock-gpt"}]}),
        ("GET", "/v1/models"): (200, {"object": "list", "data": [{"id": "mock-gpt"}]}),
        ("GET", "/health/detailed"): (200, {"status": "healthy"}),
    }


class FakeGateway(ThreadingHTTPServer):
    answers: dict[tuple[str, str], tuple[int, Any]]


class Handler(BaseHTTPRequestHandler):
    server: FakeGateway

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        key = (self.command, self.path)
        status, body = self.server.answers.get(key, (404, {"error": "NotFound"}))
        protected = self.path not in ("/livez", "/readyz", "/auth/login")
        if protected and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, body = 401, {"error": "Unauthorized"}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    server = FakeGateway(("127.0.0.1", 0), Handler)
    server.answers = _answers()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _run(server: FakeGateway, *extra: str) -> int:
    host, port = server.server_address[:2]
    return int(smoke.main(["--base-url", f"http://{host!s}:{port}", *extra]))


def test_passes_when_every_step_answers_as_expected(
    gateway: FakeGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(gateway) == 0
    out = capsys.readouterr().out
    assert "POST /llm/generate" in out
    assert "smoke test passed" in out


@pytest.mark.parametrize(
    ("key", "answer", "message"),
    [
        pytest.param(("GET", "/readyz"), (503, {"status": "draining"}), "/readyz", id="not-ready"),
        pytest.param(("POST", "/auth/login"), (401, {}), "/auth/login", id="login-refused"),
        pytest.param(("POST", "/auth/login"), (200, {}), "access_token", id="login-no-token"),
        pytest.param(("POST", "/llm/generate"), (502, {}), "/llm/generate", id="upstream-error"),
        pytest.param(("POST", "/llm/generate"), (200, {"response": ""}), "no text", id="empty"),
        pytest.param(("GET", "/models"), (200, []), "empty model list", id="no-models"),
        pytest.param(
            ("GET", "/health/detailed"), (503, {"status": "degraded"}), "detailed", id="degraded"
        ),
    ],
)
def test_fails_on_an_unexpected_answer(
    gateway: FakeGateway,
    capsys: pytest.CaptureFixture[str],
    key: tuple[str, str],
    answer: tuple[int, Any],
    message: str,
) -> None:
    gateway.answers[key] = answer
    assert _run(gateway) == 1
    assert message in capsys.readouterr().err


def test_degraded_dependencies_can_be_accepted_explicitly(gateway: FakeGateway) -> None:
    gateway.answers[("GET", "/health/detailed")] = (503, {"status": "degraded"})
    assert _run(gateway, "--allow-degraded") == 0


def test_an_unreachable_gateway_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(["--base-url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach" in capsys.readouterr().err
