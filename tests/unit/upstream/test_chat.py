from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from llm_gateway.errors import (
    CircuitOpen,
    GatewayError,
    ModelNotFound,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.observability.context import request_id_var
from llm_gateway.observability.metrics import Metrics
from llm_gateway.resilience.deadline import Deadline
from tests.unit.resilience.fakes import FakeClock
from tests.unit.upstream.scripted import (
    API_KEY,
    ScriptedUpstream,
    completion,
    error_reply,
    json_reply,
    make_client,
)

PAYLOAD = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
INVALID_MODEL = (
    "/chat/completions: Invalid model name passed in model=nope. "
    "Call `/v1/models` to view available models for your key."
)


async def test_a_successful_call_reports_model_usage_cost_and_attempts() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(
        json_reply(
            200,
            completion(model="gpt-4o-mini-2024-07-18"),
            {"x-litellm-response-cost": "0.000123", "x-litellm-model-id": "abc123"},
        )
    )
    client = make_client(upstream, clock)
    result = await client.chat(PAYLOAD, deadline=Deadline(45, clock))
    assert result.body["choices"][0]["message"]["content"] == "Hello!"
    assert result.model_used == "gpt-4o-mini-2024-07-18"
    assert result.model_id == "abc123"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (12, 3)  # type: ignore[union-attr]
    assert result.usage.total_tokens == 15  # type: ignore[union-attr]
    assert result.cost == pytest.approx(0.000123)
    assert result.attempts == 1
    sent = upstream.requests[0]
    assert sent.url == "http://litellm.test/v1/chat/completions"
    # LiteLLM's per-model timeout is the request's: 30 s, the whole chain (one model) fitting.
    assert orjson.loads(sent.content) == {**PAYLOAD, "timeout": 30.0}


async def test_requests_carry_the_bearer_key_and_the_request_id() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(json_reply(200, completion()))
    client = make_client(upstream, clock)
    token = request_id_var.set("req_0123456789abcdef")
    try:
        await client.chat(PAYLOAD, deadline=Deadline(45, clock))
    finally:
        request_id_var.reset(token)
    headers = upstream.requests[0].headers
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["x-request-id"] == "req_0123456789abcdef"
    assert headers["content-type"] == "application/json"


async def test_cost_is_none_when_litellm_could_not_price_the_call() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(json_reply(200, completion(), {"x-litellm-response-cost": "None"}))
    result = await make_client(upstream, clock).chat(PAYLOAD, deadline=Deadline(45, clock))
    assert result.cost is None


@pytest.mark.parametrize(
    ("reply", "error_class", "status", "attempts"),
    [
        pytest.param(
            error_reply(400, INVALID_MODEL), ModelNotFound, 400, 1, id="400-unknown-model"
        ),
        pytest.param(error_reply(404, "no such model"), ModelNotFound, 400, 1, id="404"),
        pytest.param(error_reply(400, "bad temp"), UpstreamBadRequest, 400, 1, id="400"),
        pytest.param(error_reply(422, "bad body"), UpstreamBadRequest, 400, 1, id="422"),
        pytest.param(error_reply(401, "bad key"), UpstreamAuthError, 502, 1, id="401"),
        pytest.param(error_reply(403, "forbidden"), UpstreamAuthError, 502, 1, id="403"),
        pytest.param(
            json_reply(400, {"error": {"message": "No connected db.", "type": "no_db_connection"}}),
            UpstreamAuthError,
            502,
            1,
            id="400-key-unknown-to-a-proxy-without-db",
        ),
        pytest.param(error_reply(500, "boom"), UpstreamError, 502, 2, id="500-retried-once"),
        pytest.param(error_reply(502, "bad gw"), UpstreamError, 502, 4, id="502"),
        pytest.param(error_reply(503, "overloaded"), UpstreamUnavailable, 503, 4, id="503"),
        pytest.param(error_reply(504, "gw timeout"), UpstreamError, 502, 4, id="504"),
        pytest.param(error_reply(429, "slow down"), UpstreamRateLimited, 429, 4, id="429"),
        pytest.param(
            error_reply(408, "litellm.Timeout"), UpstreamTimeout, 504, 4, id="408-litellm-timeout"
        ),
        pytest.param(httpx.ConnectError("refused"), UpstreamUnavailable, 503, 4, id="refused"),
        pytest.param(httpx.ReadError("reset"), UpstreamUnavailable, 503, 4, id="reset"),
        pytest.param(httpx.ReadTimeout("slow"), UpstreamTimeout, 504, 4, id="read-timeout"),
    ],
)
async def test_upstream_failures_map_to_gateway_errors_with_the_right_retries(
    reply: httpx.Response | Exception, error_class: type[GatewayError], status: int, attempts: int
) -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(reply)
    client = make_client(upstream, clock)
    with pytest.raises(error_class) as raised:
        await client.chat(PAYLOAD, deadline=Deadline(45, clock))
    assert type(raised.value) is error_class
    assert raised.value.status_code == status
    assert upstream.calls == attempts
    assert API_KEY not in str(raised.value)


async def test_unknown_model_message_names_the_model() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(error_reply(400, INVALID_MODEL.replace("nope", "gpt-9")))
    with pytest.raises(ModelNotFound, match=r"^Model 'gpt-9' not found"):
        await make_client(upstream, clock).chat(
            {**PAYLOAD, "model": "gpt-9"}, deadline=Deadline(45, clock)
        )


async def test_upstream_bad_request_carries_the_upstreams_own_message() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(error_reply(400, "temperature must be <= 2"))
    with pytest.raises(UpstreamBadRequest) as raised:
        await make_client(upstream, clock).chat(PAYLOAD, deadline=Deadline(45, clock))
    assert raised.value.message == "temperature must be <= 2"


async def test_a_5xx_after_retries_carries_the_upstream_status() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(error_reply(503, "overloaded"))
    with pytest.raises(UpstreamError) as raised:
        await make_client(upstream, clock).chat(PAYLOAD, deadline=Deadline(45, clock))
    assert raised.value.upstream_status == 503
    assert "overloaded" in raised.value.message


async def test_a_connection_error_then_success_takes_two_attempts() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(httpx.ConnectError("refused"), json_reply(200, completion()))
    result = await make_client(upstream, clock).chat(PAYLOAD, deadline=Deadline(45, clock))
    assert result.attempts == 2
    assert clock.sleeps == [1.0]


async def test_usage_counts_only_the_successful_attempt() -> None:
    clock = FakeClock()
    failed = {"error": {"message": "overloaded"}, "usage": {"total_tokens": 999}}
    upstream = ScriptedUpstream(json_reply(503, failed), json_reply(200, completion()))
    result = await make_client(upstream, clock).chat(PAYLOAD, deadline=Deadline(45, clock))
    assert result.usage is not None
    assert result.usage.total_tokens == 15


@pytest.mark.parametrize(
    "retry_after",
    [
        pytest.param("3", id="delta-seconds"),
        pytest.param("Tue, 14 Nov 2023 22:13:23 GMT", id="http-date"),  # wall clock + 3 s
    ],
)
@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Retry-After", id="standard"),
        # LiteLLM 1.106 forwards the provider's value only under this name.
        pytest.param("llm_provider-retry-after", id="litellm-forwarded"),
    ],
)
async def test_retry_after_from_the_upstream_is_honoured(retry_after: str, header: str) -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(
        error_reply(429, "slow down", {header: retry_after}), json_reply(200, completion())
    )
    client = make_client(upstream, clock, wall_clock=lambda: 1_700_000_000.0)
    result = await client.chat(PAYLOAD, deadline=Deadline(45, clock))
    assert result.attempts == 2
    assert clock.sleeps == [pytest.approx(3.0)]


async def test_a_retry_after_past_the_cap_surfaces_429_with_it_at_once() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(error_reply(429, "quota", {"Retry-After": "60"}))
    with pytest.raises(UpstreamRateLimited) as raised:
        await make_client(upstream, clock).chat(PAYLOAD, deadline=Deadline(45, clock))
    assert upstream.calls == 1
    assert raised.value.response_headers()["Retry-After"] == "60"


async def test_the_deadline_stops_retries_with_a_504() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(error_reply(502, "bad gateway"))
    with pytest.raises(UpstreamTimeout) as raised:
        await make_client(upstream, clock).chat(PAYLOAD, deadline=Deadline(2.5, clock))
    assert raised.value.status_code == 504
    assert clock.sleeps == [1.0]  # the next delay (2 s) would not fit in the 1.5 s left
    assert upstream.calls == 2


async def test_a_persistent_503_past_the_deadline_is_a_503_with_retry_after() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(error_reply(503, "overloaded"))
    with pytest.raises(UpstreamUnavailable) as raised:
        await make_client(upstream, clock).chat(PAYLOAD, deadline=Deadline(2.5, clock))
    assert raised.value.status_code == 503
    assert raised.value.response_headers()["Retry-After"] == "2"
    assert upstream.calls == 2


async def test_a_stalled_attempt_is_cut_by_the_request_timeout() -> None:
    clock = FakeClock()

    async def stall(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return json_reply(200, completion())

    upstream = ScriptedUpstream(stall)
    client = make_client(upstream, clock, max_retries=1, request_timeout=0.02)
    with pytest.raises(UpstreamTimeout, match=r"within 0\.022 s"):
        await client.chat(PAYLOAD, deadline=Deadline(45, clock))
    assert upstream.calls == 2


async def test_an_open_circuit_answers_without_calling_the_upstream() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(error_reply(502, "bad gateway"))
    client = make_client(upstream, clock, max_retries=0)
    for _ in range(5):
        with pytest.raises(UpstreamError):
            await client.chat(PAYLOAD, deadline=Deadline(45, clock))
    with pytest.raises(CircuitOpen) as raised:
        await client.chat(PAYLOAD, deadline=Deadline(45, clock))
    assert upstream.calls == 5
    assert raised.value.response_headers()["Retry-After"] == "30"


async def test_attempt_latency_is_recorded_per_outcome() -> None:
    clock = FakeClock()
    metrics = Metrics()
    upstream = ScriptedUpstream(error_reply(503, "busy"), json_reply(200, completion()))
    await make_client(upstream, clock, metrics=metrics).chat(PAYLOAD, deadline=Deadline(45, clock))
    count = metrics.registry.get_sample_value
    labels = {"model": "gpt-4o-mini"}
    assert count("upstream_request_duration_seconds_count", {**labels, "outcome": "http_503"}) == 1
    assert count("upstream_request_duration_seconds_count", {**labels, "outcome": "success"}) == 1


async def test_an_unknown_model_does_not_mint_a_metric_label() -> None:
    clock = FakeClock()
    metrics = Metrics()
    upstream = ScriptedUpstream(error_reply(400, INVALID_MODEL))
    client = make_client(upstream, clock, metrics=metrics)
    with pytest.raises(ModelNotFound):
        await client.chat({**PAYLOAD, "model": "nope"}, deadline=Deadline(45, clock))
    count = metrics.registry.get_sample_value
    name = "upstream_request_duration_seconds_count"
    assert count(name, {"model": "nope", "outcome": "ModelNotFound"}) is None
    assert count(name, {"model": "(unknown)", "outcome": "ModelNotFound"}) == 1


async def test_the_model_group_that_answered_after_a_fallback_is_reported() -> None:
    clock = FakeClock()
    headers = {"x-litellm-model-group": "secondary-model", "x-litellm-attempted-fallbacks": "1"}
    upstream = ScriptedUpstream(json_reply(200, completion(model="gpt-4o-mini"), headers))
    result = await make_client(upstream, clock).chat(
        {**PAYLOAD, "model": "smart-router"}, deadline=Deadline(45, clock)
    )
    assert result.model_used == "secondary-model"
    assert result.provider_model == "gpt-4o-mini"
    assert result.fallbacks == 1


async def test_without_litellm_headers_the_body_model_is_the_model_used() -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(json_reply(200, completion(model="mock-gpt")))
    result = await make_client(upstream, clock).chat(PAYLOAD, deadline=Deadline(45, clock))
    assert (result.model_used, result.fallbacks) == ("mock-gpt", 0)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(
            {"error": {"message": "litellm.ContextWindowExceededError: too long", "code": "400"}},
            "context_length_exceeded",
            id="litellm-class-in-message",
        ),
        pytest.param(
            {"error": {"message": "refused", "code": "content_policy_violation"}},
            "content_policy_violation",
            id="provider-code",
        ),
        pytest.param({"error": {"message": "bad", "code": "400"}}, None, id="status-only"),
    ],
)
async def test_a_refusal_keeps_the_providers_code_and_is_not_retried(
    body: dict[str, Any], code: str | None
) -> None:
    clock = FakeClock()
    upstream = ScriptedUpstream(json_reply(400, body))
    with pytest.raises(UpstreamBadRequest) as raised:
        await make_client(upstream, clock).chat(PAYLOAD, deadline=Deadline(45, clock))
    assert raised.value.code == code
    assert upstream.calls == 1
