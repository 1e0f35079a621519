"""A scripted LiteLLM stand-in behind httpx.MockTransport, and helpers to build the client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
from opentelemetry.trace import TracerProvider

from llm_gateway.observability.metrics import Metrics
from llm_gateway.resilience.breaker import CircuitBreakerRegistry
from llm_gateway.resilience.retry import RetryPolicy
from llm_gateway.upstream.aiohttp_upstream import AiohttpUpstream
from llm_gateway.upstream.http import HttpxUpstream, build_upstream_http_client
from llm_gateway.upstream.litellm import LiteLLMClient
from llm_gateway.upstream.port import Upstream
from tests.unit.resilience.fakes import FakeClock

API_KEY = "sk-test-secret-key-0123456789"
# Every adapter a real server can be reached through: the native one and httpx's two pools.
ADAPTERS = ["aiohttp", "httpx"]
Step = bytes | float | BaseException


class ScriptedStream(httpx.AsyncByteStream):
    """A response body that yields bytes, pauses (float seconds of real time) or raises."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for step in self.steps:
            if isinstance(step, bytes):
                yield step
            elif isinstance(step, float):
                await asyncio.sleep(step)
            else:
                raise step

    async def aclose(self) -> None:
        self.closed = True


Reply = httpx.Response | BaseException | Callable[[httpx.Request], Any]


class ScriptedUpstream:
    """Answers requests with the scripted replies in order; the last one repeats."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []
        self.streams: list[ScriptedStream] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if callable(reply) and not isinstance(reply, httpx.Response):
            reply = reply(request)
            if asyncio.iscoroutine(reply):
                reply = await reply
        if isinstance(reply, BaseException):
            raise reply
        assert isinstance(reply, httpx.Response)
        if isinstance(reply.stream, ScriptedStream):
            self.streams.append(reply.stream)
        return reply

    @property
    def calls(self) -> int:
        return len(self.requests)


def completion(model: str = "gpt-4o-mini-2024-07-18", text: str = "Hello!") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(body), headers=headers)


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": str(status)}}
    return json_reply(status, body, headers)


def sse_reply(*steps: Step) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=ScriptedStream(list(steps))
    )


def make_client(
    upstream: ScriptedUpstream,
    clock: FakeClock,
    *,
    max_retries: int = 3,
    request_timeout: float = 30.0,
    first_token_timeout: float = 30.0,
    idle_timeout: float = 15.0,
    models_cache_ttl: float = 30.0,
    metrics: Metrics | None = None,
    breakers: CircuitBreakerRegistry | None = None,
    wall_clock: Callable[[], float] | None = None,
    read_cascades: bool = False,
) -> LiteLLMClient:
    http = build_upstream_http_client(
        "http://litellm.test",
        connect_timeout=5,
        request_timeout=request_timeout,
        max_connections=10,
        transport=httpx.MockTransport(upstream),
    )
    return LiteLLMClient(
        HttpxUpstream(http),
        api_key=API_KEY,
        retry=RetryPolicy(max_retries=max_retries, sleep=clock.sleep, random=lambda: 0.0),
        breakers=breakers or CircuitBreakerRegistry(clock=clock, metrics=metrics),
        request_timeout=request_timeout,
        stream_first_token_timeout=first_token_timeout,
        stream_idle_timeout=idle_timeout,
        models_cache_ttl=models_cache_ttl,
        metrics=metrics,
        clock=clock,
        wall_clock=wall_clock or (lambda: 1_700_000_000.0),
        read_cascades=read_cascades,
    )


def real_adapter(
    kind: str, base_url: str, *, read_timeout: float = 5, provider: TracerProvider | None = None
) -> Upstream:
    """`kind` from ADAPTERS, talking to a real server at `base_url`."""
    if kind == "aiohttp":
        return AiohttpUpstream(
            base_url, connect_timeout=2, read_timeout=read_timeout, max_connections=4,
            tracer_provider=provider,
        )  # fmt: skip
    http = build_upstream_http_client(
        base_url, connect_timeout=2,
        request_timeout=read_timeout, max_connections=4, tracer_provider=provider,
    )  # fmt: skip
    return HttpxUpstream(http)
