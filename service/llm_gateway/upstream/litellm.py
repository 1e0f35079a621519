"""The gateway's client of the LiteLLM proxy: every upstream call goes through here.

Each call runs under one `Deadline`. Each attempt passes the model's circuit breaker, gets its
time from the one budget (resilience/budget.py: room for LiteLLM's whole fallback chain, whose
length the `ModelCatalog` reads from LiteLLM, with LiteLLM's per-model `timeout` sent in the
request), and is timed into the `upstream_request_duration_seconds` histogram. The
`RetryPolicy` decides whether a failed attempt is tried again. Every request carries
`Authorization: Bearer <LITELLM_API_KEY>` (when set), this request's `X-Request-ID` and, with
tracing on, W3C `traceparent`.

The network is behind the `Upstream` port (upstream/port.py): `AiohttpUpstream` in production,
`HttpxUpstream` for UPSTREAM_TRANSPORT=httpx and for tests that inject an httpx transport.

Usage, model and cost come from the successful response only: failed attempts are never billed
to the caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from llm_gateway.errors import CircuitOpen, UpstreamError, UpstreamTimeout
from llm_gateway.observability.context import current_request_id
from llm_gateway.observability.metrics import Metrics
from llm_gateway.resilience.breaker import CircuitBreakerRegistry
from llm_gateway.resilience.budget import AttemptPlan, plan_attempt, plan_one_model
from llm_gateway.resilience.deadline import Deadline
from llm_gateway.resilience.retry import RetryPolicy
from llm_gateway.upstream.attempt_timing import AttemptTiming
from llm_gateway.upstream.catalog import ModelCatalog
from llm_gateway.upstream.mapping import (
    Usage,
    attempted_fallbacks,
    error_for_response,
    error_for_transport,
    parse_cost,
    upstream_message,
)
from llm_gateway.upstream.port import (
    TransportError,
    Upstream,
    UpstreamResponse,
    UpstreamStreamResponse,
)
from llm_gateway.upstream.recovery import RecoveringStream, no_model_can_answer
from llm_gateway.upstream.sse import SseEventReader, StreamTranscript
from llm_gateway.upstream.stream import UpstreamStream, read_first_event

_TRANSPORT_FAILURES = (TimeoutError, TransportError)


@dataclass(frozen=True)
class UpstreamResult:
    body: dict[str, Any]
    # The model group that answered, after LiteLLM's fallbacks (x-litellm-model-group; LiteLLM
    # 1.106 sets it to the fallback's group), else the body's `model`.
    model_used: str
    provider_model: str | None  # the body's `model`: the provider's own name for it
    model_id: str | None  # LiteLLM's deployment id (x-litellm-model-id)
    fallbacks: int  # x-litellm-attempted-fallbacks
    usage: Usage | None
    cost: float | None
    attempts: int
    latency_ms: float


class LiteLLMClient:
    def __init__(
        self,
        upstream: Upstream,
        *,
        api_key: str | None,
        retry: RetryPolicy,
        breakers: CircuitBreakerRegistry,
        request_timeout: float,
        stream_first_token_timeout: float,
        stream_idle_timeout: float,
        models_cache_ttl: float,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        read_cascades: bool = False,
    ) -> None:
        """`read_cascades`: ask LiteLLM for each model's cascade (the factory does); without it
        every model is its own cascade (unit tests that script every upstream answer)."""
        self._upstream = upstream
        # Built once: each request only adds its X-Request-ID to a copy.
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._get_headers: dict[str, str] = auth
        self._post_headers: dict[str, str] = {"Content-Type": "application/json", **auth}
        self._stream_headers: dict[str, str] = {
            **self._post_headers,
            "Accept": "text/event-stream",
        }
        self._retry = retry
        self._breakers = breakers
        self._request_timeout = request_timeout
        self._first_token_timeout = stream_first_token_timeout
        self._idle_timeout = stream_idle_timeout
        self._metrics = metrics
        self._timing = AttemptTiming(metrics, clock)
        self._clock = clock
        self._wall_clock = wall_clock  # Retry-After may be an HTTP date
        self._catalog = ModelCatalog(
            lambda path: self._get_json(path, "models"), ttl=models_cache_ttl, clock=clock
        )
        self._read_cascades = read_cascades

    # --- public API ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the upstream adapter this client was given (it owns it from then on)."""
        await self._upstream.aclose()

    async def chat(self, payload: dict[str, Any], *, deadline: Deadline) -> UpstreamResult:
        """A non-streamed chat completion, OpenAI format in and out."""
        cascade = await self.cascade(str(payload.get("model") or ""))
        skipped: CircuitOpen | None = None
        for position, model in enumerate(cascade):
            # Only an open circuit moves on here (no network was touched): every other failure
            # already had LiteLLM's own walk down the same cascade.
            try:
                return await self._post_json(
                    "/v1/chat/completions",
                    {**payload, "model": model},
                    deadline,
                    chain=len(cascade) - position,
                )
            except CircuitOpen as exc:
                skipped = skipped or exc
            except UpstreamError as exc:
                raise exc if skipped is None else no_model_can_answer(skipped, exc) from exc
        assert skipped is not None, "a cascade is never empty"
        raise skipped

    async def embeddings(
        self, model: str, inputs: list[str], *, deadline: Deadline | None = None
    ) -> dict[str, Any]:
        deadline = deadline or Deadline(self._request_timeout, self._clock)
        result = await self._post_json(
            "/v1/embeddings", {"model": model, "input": inputs}, deadline
        )
        return result.body

    @asynccontextmanager
    async def stream_chat(
        self, payload: dict[str, Any], *, deadline: Deadline
    ) -> AsyncIterator[RecoveringStream]:
        """Open a streamed chat completion; yields a `RecoveringStream` once a first event came.

        The gateway walks the model's cascade itself (upstream/recovery.py): before the first
        byte to fail over, after it to continue the answer on the next model. Errors before any
        model's first event raise the mapped exception from `async with` (nothing has been sent
        to the client yet). Every upstream response is closed on every exit path.
        """
        body = {**payload, "stream": True}
        body["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
        cascade = await self.cascade(str(payload.get("model") or ""))
        if len(cascade) > 1:
            body["disable_fallbacks"] = True  # the gateway walks this cascade (recovery.py)
        started = self._clock()

        async def open_model(model_body: dict[str, Any], models_left: int) -> UpstreamStream:
            model = str(model_body["model"])
            attempts = 0

            async def attempt() -> UpstreamStream:
                nonlocal attempts
                attempts += 1
                plan = plan_one_model(deadline.remaining(), self._first_token_timeout, models_left)
                if plan is None:
                    raise self._out_of_time(deadline, model)
                return await self._open_stream(model_body, model, plan, attempts, started)

            return await self._retry.run(
                attempt,
                deadline=deadline,
                model=model,
                metrics=self._metrics,
                # With a next model to fail over to, that is the better retry (recovery.py).
                retries=None if models_left == 1 else 0,
            )

        stream = RecoveringStream(body, cascade, open_model)
        await stream.open()
        try:
            yield stream
        finally:
            await stream.aclose()

    async def list_models(self) -> list[dict[str, Any]]:
        """GET /v1/models, reused for `models_cache_ttl` s; one fetch at a time."""
        return await self._catalog.models()

    async def cascade(self, model: str) -> tuple[str, ...]:
        """`model`, then the models LiteLLM falls back to after it (never raises)."""
        if not self._read_cascades:
            return (model,)
        return await self._catalog.cascade(model)

    async def health(self) -> dict[str, Any]:
        """LiteLLM's liveness (no auth needed there); raises when the proxy is down."""
        body = await self._get_json("/health/liveliness", "health")
        return {"liveliness": body.get("status", body.get("liveliness", "alive"))}

    # --- attempts ------------------------------------------------------------------------

    @staticmethod
    def _headers(static: dict[str, str]) -> dict[str, str]:
        headers = static.copy()
        request_id = current_request_id()
        if request_id:
            headers["X-Request-ID"] = request_id
        return headers

    async def _post_json(
        self, path: str, payload: dict[str, Any], deadline: Deadline, *, chain: int = 1
    ) -> UpstreamResult:
        model = str(payload.get("model") or "")
        attempts = 0
        started = self._clock()

        async def attempt() -> tuple[UpstreamResponse, dict[str, Any]]:
            nonlocal attempts
            attempts += 1
            plan = self._plan(deadline, self._request_timeout, chain, model)
            timeout = plan.gateway_timeout
            content = orjson.dumps({**payload, "timeout": plan.upstream_timeout})
            with self._breakers.guard(model), self._timing.measure(model):
                try:
                    async with asyncio.timeout(timeout):
                        response = await self._upstream.send(
                            "POST", path, content, self._headers(self._post_headers)
                        )
                except _TRANSPORT_FAILURES as exc:
                    raise error_for_transport(exc, model, timeout) from exc
                return response, self._json_body(response, model)

        response, body = await self._retry.run(
            attempt,
            deadline=deadline,
            model=model,
            metrics=self._metrics,
            retry_timeouts=chain == 1,
        )
        provider_model = body.get("model") if isinstance(body.get("model"), str) else None
        return UpstreamResult(
            body=body,
            model_used=response.headers.get("x-litellm-model-group") or provider_model or model,
            provider_model=provider_model,
            model_id=response.headers.get("x-litellm-model-id"),
            fallbacks=attempted_fallbacks(response.headers),
            usage=Usage.from_body(body.get("usage")),
            cost=parse_cost(response.headers.get("x-litellm-response-cost")),
            attempts=attempts,
            latency_ms=round((self._clock() - started) * 1000, 3),
        )

    async def _get_json(self, path: str, label: str) -> dict[str, Any]:
        timeout = self._request_timeout
        try:
            async with asyncio.timeout(timeout):
                response = await self._upstream.send(
                    "GET", path, None, self._headers(self._get_headers)
                )
        except _TRANSPORT_FAILURES as exc:
            raise error_for_transport(exc, label, timeout) from exc
        return self._json_body(response, label)

    def _json_body(self, response: UpstreamResponse, model: str) -> dict[str, Any]:
        if response.status >= 400:
            raise error_for_response(response, model, self._wall_clock)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"The upstream answered HTTP {response.status} with a body that is not "
                f"JSON: {upstream_message(response.content)[:200]}",
                upstream_status=502,
            ) from exc
        if not isinstance(body, dict):
            return {"data": body} if isinstance(body, list) else {"status": body}
        return body

    def _plan(self, deadline: Deadline, timeout: float, chain: int, model: str) -> AttemptPlan:
        plan = plan_attempt(deadline.remaining(), timeout, chain)
        if plan is None:
            raise self._out_of_time(deadline, model)
        return plan

    @staticmethod
    def _out_of_time(deadline: Deadline, model: str) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"The request deadline of {deadline.seconds:g} s passed before model '{model}' answered"
        )

    async def _open_stream(
        self, body: dict[str, Any], model: str, plan: AttemptPlan, attempt: int, started: float
    ) -> UpstreamStream:
        """One attempt: connect, check the status, read up to the first data event."""
        timeout = plan.gateway_timeout
        with self._breakers.guard(model), self._timing.measure(model):
            # LiteLLM reads `stream_timeout` for streams: its per-model time to the first chunk.
            content = orjson.dumps({**body, "stream_timeout": plan.upstream_timeout})
            headers = self._headers(self._stream_headers)
            response: UpstreamStreamResponse | None = None
            reader: SseEventReader | None = None
            try:
                async with asyncio.timeout(timeout):
                    response = await self._upstream.open_stream(
                        "POST", "/v1/chat/completions", content, headers
                    )
                    if response.status >= 400:
                        whole = UpstreamResponse(
                            response.status, response.headers, await response.aread()
                        )
                        raise error_for_response(whole, model, self._wall_clock)
                    reader = SseEventReader(response.aiter_bytes())
                    transcript = StreamTranscript(requested_model=model)
                    pending = await read_first_event(reader, transcript, model)
            except BaseException as exc:
                if reader is not None:
                    await reader.aclose()
                if response is not None:
                    await response.aclose()
                if isinstance(exc, _TRANSPORT_FAILURES):
                    raise error_for_transport(exc, model, timeout) from exc
                raise
            return UpstreamStream(
                response,
                reader,
                transcript,
                pending,
                idle_timeout=self._idle_timeout,
                attempts=attempt,
                first_event_ms=round((self._clock() - started) * 1000, 3),
                clock=self._clock,
            )
