"""The fake upstream's contract: what tests can make it do, served in-process on a loopback port."""

from __future__ import annotations

import base64
import json
import math
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from devstack.fake_upstream import Controls, create_app, start
from devstack.fake_upstream.payloads import split_pieces

from tests.support.processes import free_port

CHAT = "/v1/chat/completions"


@pytest.fixture
async def upstream() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Controls(), embedding_dims=8, stall_seconds=5.0)
    port = free_port()
    runner = await start(app, "127.0.0.1", port)
    try:
        # Plain HTTP on loopback: skip loading the CA bundle (a third of a second per client).
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=2.0, verify=False
        ) as client:
            yield client
    finally:
        await runner.shutdown()
        await runner.cleanup()


def chat_body(model: str = "m", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}


async def sse_events(client: httpx.AsyncClient, body: dict[str, Any]) -> list[str]:
    async with client.stream("POST", CHAT, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line async for line in response.aiter_lines() if line]


async def read_until_failure(
    client: httpx.AsyncClient, body: dict[str, Any], timeout: float = 2.0
) -> tuple[list[str], Exception | None]:
    """The SSE lines received before the stream broke, and how it broke (None: it did not)."""
    received: list[str] = []
    try:
        async with client.stream("POST", CHAT, json=body, timeout=timeout) as response:
            async for line in response.aiter_lines():
                if line:
                    received.append(line)
    except httpx.TransportError as exc:
        return received, exc
    return received, None


async def test_chat_completion_names_the_model_and_counts_usage(
    upstream: httpx.AsyncClient,
) -> None:
    response = await upstream.post(CHAT, json=chat_body("alpha"))

    body = response.json()
    assert body["model"] == "alpha"
    assert body["choices"][0]["message"]["content"] == "Hello from fake upstream model alpha."
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 6, "total_tokens": 8}


async def test_stream_sends_the_configured_chunks_then_done(upstream: httpx.AsyncClient) -> None:
    await upstream.post("/_control", json={"stream_chunks": 5})

    events = await sse_events(upstream, chat_body(stream=True))

    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks]
    assert len([c for c in contents if c]) == 5
    assert "".join(c for c in contents if c) == "Hello from fake upstream model m."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_stream_usage_chunk_only_when_asked(upstream: httpx.AsyncClient) -> None:
    events = await sse_events(
        upstream, chat_body(stream=True, stream_options={"include_usage": True})
    )

    usage = json.loads(events[-2].removeprefix("data: "))
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 6


@pytest.mark.parametrize(
    ("fault", "status", "error_type", "retry_after"),
    [
        pytest.param({"status": 429, "retry_after": 3}, 429, "rate_limit_error", "3", id="429"),
        pytest.param({"status": 503}, 503, "server_error", None, id="503"),
        pytest.param({"status": 400}, 400, "invalid_request_error", None, id="400"),
        pytest.param({"status": 401}, 401, "invalid_request_error", None, id="401"),
    ],
)
async def test_status_fault_answers_an_openai_style_error(
    upstream: httpx.AsyncClient,
    fault: dict[str, Any],
    status: int,
    error_type: str,
    retry_after: str | None,
) -> None:
    await upstream.post("/_control", json={"fault": {"kind": "status", **fault}})

    response = await upstream.post(CHAT, json=chat_body())

    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert response.headers.get("retry-after") == retry_after
    assert (await upstream.post(CHAT, json=chat_body())).status_code == 200  # count was 1


async def test_model_fault_is_used_before_global_and_only_for_that_model(
    upstream: httpx.AsyncClient,
) -> None:
    await upstream.post("/_control", json={"fault": {"kind": "status", "status": 500}})
    await upstream.post(
        "/_control", json={"model": "a", "fault": {"kind": "status", "status": 502, "count": 2}}
    )

    statuses = [(await upstream.post(CHAT, json=chat_body(m))).status_code for m in "aaab"]

    assert statuses == [502, 502, 500, 200]
    stats = (await upstream.get("/_stats")).json()
    assert stats["models"] == {"a": 3, "b": 1}
    assert stats["faults_applied"] == 3


async def test_fault_with_count_minus_one_never_runs_out(upstream: httpx.AsyncClient) -> None:
    await upstream.post("/_control", json={"fault": {"kind": "status", "status": 503, "count": -1}})

    statuses = {(await upstream.post(CHAT, json=chat_body())).status_code for _ in range(5)}

    assert statuses == {503}


async def test_reset_closes_the_connection_without_a_response(upstream: httpx.AsyncClient) -> None:
    await upstream.post("/_control", json={"fault": {"kind": "reset"}})

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await upstream.post(CHAT, json=chat_body())
    assert (await upstream.post(CHAT, json=chat_body())).status_code == 200


async def test_stall_before_headers_never_answers(upstream: httpx.AsyncClient) -> None:
    await upstream.post("/_control", json={"fault": {"kind": "stall"}})

    with pytest.raises(httpx.ReadTimeout):
        await upstream.post(CHAT, json=chat_body(), timeout=0.2)


async def test_stall_after_headers_sends_status_but_no_body(upstream: httpx.AsyncClient) -> None:
    await upstream.post("/_control", json={"fault": {"kind": "stall", "phase": "headers"}})

    async with upstream.stream("POST", CHAT, json=chat_body(), timeout=0.3) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            await response.aread()


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        pytest.param("stream_no_done", "no_done", id="ends-without-done"),
        pytest.param("stream_malformed", "malformed", id="malformed-chunk"),
    ],
)
async def test_stream_faults_break_the_framing(
    upstream: httpx.AsyncClient, kind: str, check: str
) -> None:
    await upstream.post("/_control", json={"fault": {"kind": kind, "after": 2}})

    events = await sse_events(upstream, chat_body(stream=True))

    if check == "no_done":
        assert "data: [DONE]" not in events
        assert json.loads(events[-1].removeprefix("data: "))["choices"][0]["finish_reason"]
    else:
        with pytest.raises(json.JSONDecodeError):
            json.loads(events[2].removeprefix("data: "))
        assert events[-1] == "data: [DONE]"


async def test_stream_cut_drops_the_connection_after_k_chunks(upstream: httpx.AsyncClient) -> None:
    await upstream.post("/_control", json={"stream_chunks": 4, "fault": {"kind": "stream_cut"}})

    received, failure = await read_until_failure(upstream, chat_body(stream=True))

    assert isinstance(failure, (httpx.RemoteProtocolError, httpx.ReadError))
    assert len(received) == 1


async def test_stream_stall_after_k_chunks(upstream: httpx.AsyncClient) -> None:
    await upstream.post("/_control", json={"fault": {"kind": "stream_stall", "after": 2}})

    received, failure = await read_until_failure(upstream, chat_body(stream=True), timeout=0.3)

    assert isinstance(failure, httpx.ReadTimeout)
    assert len(received) == 2


async def test_stream_faults_leave_plain_requests_alone(upstream: httpx.AsyncClient) -> None:
    await upstream.post("/_control", json={"fault": {"kind": "stream_cut"}})

    assert (await upstream.post(CHAT, json=chat_body())).status_code == 200
    control = (await upstream.get("/_control")).json()
    assert control["global"]["faults"][0]["kind"] == "stream_cut"


async def test_latency_delays_the_answer_per_model(upstream: httpx.AsyncClient) -> None:
    await upstream.post("/_control", json={"model": "slow", "latency_ms": 120})

    started = time.monotonic()
    await upstream.post(CHAT, json=chat_body("slow"))
    slow = time.monotonic() - started
    started = time.monotonic()
    await upstream.post(CHAT, json=chat_body("fast"))
    fast = time.monotonic() - started

    assert slow >= 0.12
    assert fast < 0.1


async def test_response_bytes_pads_the_body_to_the_requested_size(
    upstream: httpx.AsyncClient,
) -> None:
    await upstream.post("/_control", json={"response_bytes": 2048})

    response = await upstream.post(CHAT, json=chat_body())

    assert abs(len(response.content) - 2048) <= 16
    assert response.json()["choices"][0]["message"]["content"].startswith("Hello from")


async def test_embeddings_are_deterministic_unit_vectors_in_either_encoding(
    upstream: httpx.AsyncClient,
) -> None:
    inputs = ["enable 2FA", "disable 2FA", "enable 2FA"]
    floats = (await upstream.post("/v1/embeddings", json={"model": "e", "input": inputs})).json()
    encoded = (
        await upstream.post(
            "/v1/embeddings", json={"model": "e", "input": inputs[0], "encoding_format": "base64"}
        )
    ).json()

    vectors = [item["embedding"] for item in floats["data"]]
    assert len(vectors[0]) == 8
    assert vectors[0] == vectors[2] != vectors[1]
    assert math.isclose(sum(v * v for v in vectors[0]), 1.0)
    decoded = struct.unpack("<8f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert decoded == pytest.approx(vectors[0], abs=1e-6)


async def test_models_lists_configured_and_seen_models(upstream: httpx.AsyncClient) -> None:
    await upstream.post("/_control", json={"model": "configured", "latency_ms": 1})
    await upstream.post(CHAT, json=chat_body("seen"))

    ids = [m["id"] for m in (await upstream.get("/v1/models")).json()["data"]]

    assert ids == ["configured", "fake-model", "seen"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param({"latency": 5}, "unknown control fields", id="unknown-field"),
        pytest.param({"fault": {"kind": "explode"}}, "unknown fault kind", id="unknown-kind"),
        pytest.param({"fault": {"kind": "status", "count": 0}}, "count", id="zero-count"),
        pytest.param({"fault": {"kind": "status", "status": 99}}, "status", id="bad-status"),
        pytest.param({"fault": {"kind": "stall", "phase": "later"}}, "phase", id="bad-phase"),
        pytest.param({"stream_chunks": 0}, "stream_chunks", id="zero-chunks"),
        pytest.param([1, 2], "JSON object", id="not-an-object"),
    ],
)
async def test_control_rejects_what_it_cannot_honour_and_changes_nothing(
    upstream: httpx.AsyncClient, document: object, message: str
) -> None:
    before = (await upstream.get("/_control")).json()

    response = await upstream.post("/_control", json=document)

    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert (await upstream.get("/_control")).json() == before


async def test_clear_restores_defaults_and_zeroes_stats(upstream: httpx.AsyncClient) -> None:
    await upstream.post("/_control", json={"model": "a", "fault": {"kind": "status"}})
    await upstream.post(CHAT, json=chat_body("b"))

    await upstream.post("/_control", json={"clear": True})

    assert (await upstream.get("/_control")).json()["models"] == {}
    assert (await upstream.get("/_stats")).json()["total"] == 0


@pytest.mark.parametrize(
    ("text", "count"),
    [
        pytest.param("abcdefghij", 3, id="uneven"),
        pytest.param("abcd", 4, id="one-char-each"),
        pytest.param("ab", 5, id="shorter-than-count"),
        pytest.param("abcdefghi", 4, id="ceil-starves-tail"),
    ],
)
def test_split_pieces_gives_exactly_count_non_empty_pieces(text: str, count: int) -> None:
    pieces = split_pieces(text, count)

    assert len(pieces) == count
    assert all(pieces)
    assert "".join(pieces).startswith(text)
