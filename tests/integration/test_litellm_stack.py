"""The real LiteLLM proxy in front of the fake upstream: what the gateway will see from it.

These tests pin down LiteLLM's observable behaviour (status, body shape, headers, stream framing)
for every upstream failure the gateway's error mapping and retry policy depend on. If a LiteLLM
upgrade changes one of them, the test names say which contract moved.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from devstack.processes import ServiceProcess
from devstack.venvs import STAMP_NAME, ensure_venv

from tests.support.fake_upstream import FakeUpstreamProcess
from tests.support.litellm_proxy import (
    SHIPPED_CONFIG,
    LiteLLMStack,
    new_master_key,
    start_proxy,
    wait_proxy_ready,
)

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Say hello"}]


def chat(stack: LiteLLMStack, model: str = "fake-model", **extra: Any) -> httpx.Response:
    with stack.client() as client:
        return client.post(
            "/v1/chat/completions", json={"model": model, "messages": MESSAGES, **extra}
        )


def stream_lines(
    stack: LiteLLMStack, model: str = "fake-model"
) -> tuple[int, list[tuple[float, str]]]:
    """Status and (arrival time, line) for every non-empty SSE line of a streamed completion."""
    started = time.monotonic()
    lines: list[tuple[float, str]] = []
    body = {"model": model, "messages": MESSAGES, "stream": True}
    with (
        stack.client() as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        for line in response.iter_lines():
            if line:
                lines.append((time.monotonic() - started, line))
        return response.status_code, lines


def error_message(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    return str(body["error"]["message"])


def test_chat_completion_returns_the_upstream_text_and_usage(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    response = chat(litellm_stack)

    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Hello from fake upstream model fake-model."
    assert body["model"] == "fake-model"
    assert body["usage"]["completion_tokens"] == 6
    assert response.headers["x-litellm-model-group"] == "fake-model"
    assert fake_upstream.attempts("fake-model") == 1


def test_stream_ends_with_done_after_the_full_text(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    fake_upstream.control(model="fake-model", stream_chunks=4)

    status, lines = stream_lines(litellm_stack)

    assert status == 200
    assert lines[-1][1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for _, line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello from fake upstream model fake-model."
    assert len([line for _, line in lines if '"content"' in line]) == 4


def test_stream_chunks_reach_the_client_before_the_upstream_finishes(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    # The upstream sends 2 chunks and then hangs: a buffering proxy would deliver nothing.
    # (Timing-free on purpose: LiteLLM's event loop stalls for seconds after start-up here.)
    fake_upstream.control(model="fake-model", stream_chunks=4)
    fake_upstream.fault("stream_stall", model="fake-model", after=2)
    body = {"model": "fake-model", "messages": MESSAGES, "stream": True}

    contents: list[str] = []
    with (
        litellm_stack.client(timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        for line in response.iter_lines():
            assert line != "data: [DONE]"
            if '"content"' in line:
                contents.append(line)
            if len(contents) == 2:
                break

    assert response.status_code == 200
    assert len(contents) == 2


@pytest.mark.parametrize(
    ("fault", "expected_status", "message_part"),
    [
        pytest.param({"kind": "status", "status": 500}, 500, "InternalServerError", id="500"),
        pytest.param({"kind": "status", "status": 503}, 503, "ServiceUnavailable", id="503"),
        pytest.param(
            {"kind": "status", "status": 400, "message": "max_tokens is too large"},
            400,
            "max_tokens is too large",
            id="400-keeps-upstream-message",
        ),
        pytest.param({"kind": "status", "status": 401}, 401, "injected status 401", id="401"),
        pytest.param({"kind": "reset"}, 500, "Connection error", id="connection-reset"),
    ],
)
def test_upstream_failure_surfaces_as_error_status_after_one_attempt(
    litellm_stack: LiteLLMStack,
    fake_upstream: FakeUpstreamProcess,
    fault: dict[str, Any],
    expected_status: int,
    message_part: str,
) -> None:
    fake_upstream.fault(model="fake-model", **fault)

    response = chat(litellm_stack)

    assert response.status_code == expected_status, response.text
    assert message_part in error_message(response)
    assert response.json()["error"]["code"] == str(expected_status)
    # num_retries 0: LiteLLM made exactly one attempt, the gateway owns retries.
    assert fake_upstream.attempts("fake-model") == 1


def test_upstream_429_keeps_status_but_retry_after_only_as_provider_header(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    fake_upstream.fault("status", model="fake-model", status=429, retry_after="7")

    response = chat(litellm_stack)

    assert response.status_code == 429
    assert response.json()["error"]["type"] == "throttling_error"
    # LiteLLM does not forward Retry-After itself; it relays provider headers with a prefix.
    assert "retry-after" not in response.headers
    assert response.headers["llm_provider-retry-after"] == "7"


def test_stalled_upstream_becomes_408_at_the_request_timeout(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    fake_upstream.fault("stall", model="fake-model")

    started = time.monotonic()
    response = chat(litellm_stack, timeout=1)
    elapsed = time.monotonic() - started

    assert response.status_code == 408
    assert "Timeout" in error_message(response)
    assert 0.9 <= elapsed < 10


def test_fallback_group_answers_from_secondary_and_says_so(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    fake_upstream.fault("status", model="primary-model", status=500)

    response = chat(litellm_stack, model="primary-model")

    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "secondary-model"
    assert body["choices"][0]["message"]["content"].endswith("model secondary-model.")
    assert response.headers["x-litellm-model-group"] == "secondary-model"
    assert response.headers["x-litellm-attempted-fallbacks"] == "1"
    assert fake_upstream.attempts("primary-model") == 1
    assert fake_upstream.attempts("secondary-model") == 1


def test_unknown_model_is_a_400_naming_the_model(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    response = chat(litellm_stack, model="no-such-model")

    assert response.status_code == 400
    assert "Invalid model name passed in model=no-such-model" in error_message(response)
    assert fake_upstream.stats()["total"] == 0


def test_stream_cut_before_the_proxy_answers_is_a_500(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    fake_upstream.fault("stream_cut", model="fake-model", after=0)

    status, lines = stream_lines(litellm_stack)

    assert status == 500
    assert "APIConnectionError" in json.loads(lines[0][1])["error"]["message"]


def test_malformed_stream_chunk_becomes_an_in_band_error_without_done(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    fake_upstream.control(model="fake-model", stream_chunks=4)
    fake_upstream.fault("stream_malformed", model="fake-model", after=1)

    status, lines = stream_lines(litellm_stack)

    assert status == 200  # headers were already sent with the first chunk
    events = [line for _, line in lines]
    assert '"content"' in events[0]
    error = json.loads(events[-1].removeprefix("data: "))["error"]
    assert "APIConnectionError" in error["message"]
    assert "data: [DONE]" not in events


def test_stream_without_done_from_upstream_still_ends_with_done_from_the_proxy(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    fake_upstream.fault("stream_no_done", model="fake-model")

    status, lines = stream_lines(litellm_stack)

    # LiteLLM re-frames the stream: a missing [DONE] upstream is invisible to the gateway.
    assert status == 200
    assert lines[-1][1] == "data: [DONE]"


def test_embeddings_through_the_proxy_are_deterministic(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    with litellm_stack.client() as client:
        first, again, other = (
            client.post("/v1/embeddings", json={"model": "fake-embedding", "input": text})
            for text in ("enable 2FA", "enable 2FA", "disable 2FA")
        )

    vectors = [r.json()["data"][0]["embedding"] for r in (first, again, other)]
    assert vectors[0] == pytest.approx(vectors[1])
    assert vectors[0] != pytest.approx(vectors[2])
    assert len(vectors[0]) == 64
    assert fake_upstream.attempts("fake-embedding") == 3


def test_models_lists_the_configured_groups(
    litellm_stack: LiteLLMStack, fake_upstream: FakeUpstreamProcess
) -> None:
    with litellm_stack.client() as client:
        response = client.get("/v1/models")

    ids = {model["id"] for model in response.json()["data"]}
    assert {"fake-model", "primary-model", "secondary-model", "fake-embedding"} <= ids


@pytest.fixture(scope="session", autouse=True)
def shipped_proxy_booting(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, str] | None]:
    """Spawn the shipped-config proxy first, so its boot overlaps the session stack's.

    Session scope and autouse put it ahead of `litellm_stack` (also session scoped); it only
    spawns when a selected test needs it.
    """
    if not any("shipped_proxy" in item.fixturenames for item in request.session.items):
        yield None
        return
    if not SHIPPED_CONFIG.is_file():
        pytest.fail(f"the shipped LiteLLM config is missing: {SHIPPED_CONFIG}")
    key = new_master_key()
    # No provider key at all, whatever the developer's shell holds.
    provider_keys = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "OPENROUTER_API_KEY")
    saved = {name: os.environ.pop(name) for name in provider_keys if name in os.environ}
    try:
        work_dir = tmp_path_factory.mktemp("shipped")
        proxy = start_proxy(SHIPPED_CONFIG, work_dir, master_key=key, wait=False)
    finally:
        os.environ.update(saved)
    try:
        yield proxy, key
    finally:
        proxy.stop()


@pytest.fixture
def shipped_proxy(shipped_proxy_booting: tuple[ServiceProcess, str] | None) -> tuple[str, str]:
    """(url, master key) of a ready proxy running the shipped config with no provider keys."""
    assert shipped_proxy_booting is not None
    proxy, key = shipped_proxy_booting
    wait_proxy_ready(proxy)
    return proxy.url, key


@pytest.mark.parametrize(
    ("model", "answered_by", "text_part"),
    [
        pytest.param("mock-gpt", "mock-gpt", "Hello from mock-gpt", id="mock-gpt"),
        pytest.param("smart-router", "smart-router", "primary tier", id="smart-router"),
        pytest.param("mock-unavailable", "mock-fast", "Hello from mock-fast", id="fallback"),
    ],
)
def test_shipped_config_answers_offline_without_keys(
    shipped_proxy: tuple[str, str], model: str, answered_by: str, text_part: str
) -> None:
    url, key = shipped_proxy
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": MESSAGES},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )

    assert response.status_code == 200, response.text
    assert text_part in response.json()["choices"][0]["message"]["content"]
    assert response.headers["x-litellm-model-group"] == answered_by


def test_side_venv_is_built_once_and_rebuilt_only_when_its_pins_change(tmp_path: Path) -> None:
    # A real uv/venv build of an empty pin set: the same code path as the LiteLLM venv, offline.
    requirements = tmp_path / "pins.txt"
    requirements.write_text("# no packages\n")
    venv = ensure_venv(tmp_path, "side", requirements, entry_point="python")
    sentinel = venv / "sentinel"
    sentinel.write_text("built by the first call")

    assert ensure_venv(tmp_path, "side", requirements, entry_point="python") == venv
    assert sentinel.exists()  # second call with the same pins: untouched

    requirements.write_text("# no packages, new pins\n")
    ensure_venv(tmp_path, "side", requirements, entry_point="python")
    assert not sentinel.exists()  # pins changed: rebuilt from scratch
    assert (venv / STAMP_NAME).read_text().strip() != ""
    assert (venv / "bin" / "python").exists()
