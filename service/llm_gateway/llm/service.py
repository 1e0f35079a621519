"""The LLM call, end to end: guard → cache → upstream → cache store → trace.

Routes translate HTTP to a `ChatRequest` and back; everything between lives here so that
`/llm/generate` and `/v1/chat/completions` behave the same. Every call, answered or failed,
cached or not, streamed or not, leaves exactly one `TraceRecord` (a guard refusal included: it
is a call the gateway answered).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from llm_gateway.auth.principal import Principal
from llm_gateway.cache.request import CacheHit, CacheRequest, CacheTier, ScopeMode, cache_scope
from llm_gateway.chat_request import ChatRequest
from llm_gateway.llm.ports import AnswerCache, ChatUpstream, RequestGuard, TraceSink
from llm_gateway.observability.context import request_id_var
from llm_gateway.observability.metrics import Metrics
from llm_gateway.resilience.deadline import Deadline
from llm_gateway.tracking.records import TraceError, TraceRecord, now_ns
from llm_gateway.upstream.mapping import Usage
from llm_gateway.upstream.recovery import RecoveringStream

log = logging.getLogger(__name__)

# Only whole answers are worth replaying: a `length` cut or a content filter verdict is not.
_CACHEABLE_FINISH = frozenset({"stop", "tool_calls"})


@dataclass(frozen=True, slots=True)
class Completion:
    body: dict[str, Any]  # the OpenAI chat.completion object
    model_used: str
    usage: Usage | None
    cost: float | None
    cache_tier: CacheTier | None
    latency_ms: float
    attempts: int

    @property
    def cached(self) -> bool:
        return self.cache_tier is not None

    @property
    def text(self) -> str:
        choices = self.body.get("choices") or []
        if not choices:
            return ""
        content = (choices[0].get("message") or {}).get("content")
        return content if isinstance(content, str) else ""


def _is_cacheable(body: dict[str, Any]) -> bool:
    choices = body.get("choices")
    return (
        isinstance(choices, list)
        and bool(choices)
        and all(
            isinstance(choice, dict) and choice.get("finish_reason") in _CACHEABLE_FINISH
            for choice in choices
        )
    )


class LLMService:
    def __init__(
        self,
        *,
        upstream: ChatUpstream,
        guard: RequestGuard,
        cache: AnswerCache | None,
        tracker: TraceSink | None,
        cache_scope_mode: ScopeMode,
        request_deadline: float,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._upstream = upstream
        self._guard = guard
        self._cache = cache
        self._tracker = tracker
        self._scope_mode = cache_scope_mode
        self._request_deadline = request_deadline
        self._metrics = metrics
        self._clock = clock

    async def list_models(self) -> list[dict[str, Any]]:
        return await self._upstream.list_models()

    async def complete(self, request: ChatRequest, principal: Principal) -> Completion:
        started_ns, started = now_ns(), self._clock()
        try:
            self._guard.check(request, user=principal.subject, request_id=request_id_var.get())
            cache_request = self._cache_request(request, principal)
            hit = await self._cache.lookup(cache_request) if self._cache and cache_request else None
            if hit is not None:
                completion = self._from_cache(hit, started)
            else:
                result = await self._upstream.chat(
                    request.upstream_payload(), deadline=Deadline(self._request_deadline)
                )
                completion = Completion(
                    body=result.body,
                    model_used=result.model_used,
                    usage=result.usage,
                    cost=result.cost,
                    cache_tier=None,
                    latency_ms=self._elapsed_ms(started),
                    attempts=result.attempts,
                )
                if self._cache and cache_request and _is_cacheable(result.body):
                    # Before the response: the cache shares the exact answer with the other
                    # workers now and defers the rest until this task yields.
                    self._store_in_background(cache_request, completion)
        except Exception as exc:
            self._trace(request, principal, started_ns, error=exc)
            raise
        self._count_tokens(completion.model_used, completion.usage, cached=completion.cached)
        self._trace(
            request,
            principal,
            started_ns,
            model_used=completion.model_used,
            output=completion.text,
            usage=completion.usage,
            cost=completion.cost,
            cache_tier=completion.cache_tier,
            attempts=completion.attempts,
        )
        return completion

    @asynccontextmanager
    async def stream(self, request: ChatRequest, principal: Principal) -> AsyncIterator[StreamCall]:
        """Open a stream; errors before its first event raise here, as HTTP errors.

        Streams are never served from or stored in the cache: the client asked to watch the
        answer being produced, and a partial answer must never be replayed as a whole one.
        """
        started_ns = now_ns()
        try:
            self._guard.check(request, user=principal.subject, request_id=request_id_var.get())
            opened = self._upstream.stream_chat(
                request.upstream_payload(), deadline=Deadline(self._request_deadline)
            )
            upstream = await opened.__aenter__()
        except Exception as exc:
            self._trace(request, principal, started_ns, error=exc)
            raise
        call = StreamCall(upstream)
        error: BaseException | None = None
        try:
            yield call
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                await opened.__aexit__(None, None, None)
            finally:
                if error is None and not upstream.completed:
                    # The client went away before [DONE]: record what it got, as an error.
                    error = ConnectionAbortedError("client disconnected before the stream ended")
                usage = upstream.usage
                if error is None:
                    self._count_tokens(upstream.model_used, usage, cached=False)
                self._trace(
                    request,
                    principal,
                    started_ns,
                    model_used=upstream.model_used or None,
                    output=upstream.text,
                    usage=usage,
                    attempts=upstream.attempts,
                    error=error,
                )

    # --- helpers -------------------------------------------------------------------------

    def _cache_request(self, request: ChatRequest, principal: Principal) -> CacheRequest | None:
        if self._cache is None or request.stream:
            return None
        return CacheRequest(
            model=request.model,
            messages=request.messages,
            scope=cache_scope(self._scope_mode, principal.limit_key),
            prompt_text=request.prompt_text(),
            params=request.params,
        )

    def _from_cache(self, hit: CacheHit, started: float) -> Completion:
        payload = hit.payload
        return Completion(
            body=payload["body"],
            model_used=str(payload.get("model_used") or payload["body"].get("model") or ""),
            usage=Usage.from_body(payload["body"].get("usage")),
            # A cached answer cost nothing this time.
            cost=0.0 if payload.get("cost") is not None else None,
            cache_tier=hit.tier,
            latency_ms=self._elapsed_ms(started),
            attempts=0,
        )

    def _store_in_background(self, cache_request: CacheRequest, completion: Completion) -> None:
        assert self._cache is not None
        payload = {
            "body": completion.body,
            "model_used": completion.model_used,
            "cost": completion.cost,
        }
        self._cache.schedule_store(cache_request, payload)

    def _elapsed_ms(self, started: float) -> float:
        return round((self._clock() - started) * 1000, 3)

    def _count_tokens(self, model: str, usage: Usage | None, *, cached: bool) -> None:
        if self._metrics is None or usage is None or cached:
            return
        self._metrics.llm_tokens.labels(model, "prompt").inc(usage.prompt_tokens)
        self._metrics.llm_tokens.labels(model, "completion").inc(usage.completion_tokens)

    def _trace(
        self,
        request: ChatRequest,
        principal: Principal,
        started_ns: int,
        *,
        model_used: str | None = None,
        output: str | None = None,
        usage: Usage | None = None,
        cost: float | None = None,
        cache_tier: CacheTier | None = None,
        attempts: int = 1,
        error: BaseException | None = None,
    ) -> None:
        if self._tracker is None:
            return
        inputs: dict[str, Any] = {"messages": request.messages, **request.params}
        record = TraceRecord(
            request_id=request_id_var.get() or "",
            user=principal.subject,
            endpoint=request.endpoint,
            model_requested=request.model,
            inputs=inputs,
            started_at_ns=started_ns,
            ended_at_ns=now_ns(),
            status="error" if error is not None else "ok",
            model_used=model_used,
            outputs=output,
            prompt_tokens=usage.prompt_tokens if usage and not cache_tier else None,
            completion_tokens=usage.completion_tokens if usage and not cache_tier else None,
            total_tokens=usage.total_tokens if usage and not cache_tier else None,
            cost=cost,
            error=TraceError.from_exception(error) if error is not None else None,
            cache_tier=cache_tier,
            stream=request.stream,
            attempts=attempts,
        )
        try:
            self._tracker.record(record)
        except Exception:
            # Tracing must never turn an answer into an error; the tracker journals on its own.
            log.exception("trace_record_failed", extra={"record_id": record.record_id})


class StreamCall:
    """The open stream as the API layer sees it: events to forward, then what was said."""

    def __init__(self, upstream: RecoveringStream) -> None:
        self._upstream = upstream

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._upstream.__aiter__()

    @property
    def model_used(self) -> str:
        return self._upstream.model_used

    @property
    def first_event_ms(self) -> float:
        return self._upstream.first_event_ms
