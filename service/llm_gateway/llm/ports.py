"""What `LLMService` needs from its parts, as protocols: the upstream, guard, cache and tracker.

The concrete parts (upstream.litellm.LiteLLMClient, guard.policy.PromptGuard, the response
cache, tracking's TraceTracker) satisfy these structurally; unit tests hand in small fakes.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from llm_gateway.cache.request import CacheHit, CacheRequest
from llm_gateway.chat_request import ChatRequest
from llm_gateway.resilience.deadline import Deadline
from llm_gateway.tracking.records import TraceRecord
from llm_gateway.upstream.litellm import UpstreamResult
from llm_gateway.upstream.recovery import RecoveringStream


class ChatUpstream(Protocol):
    async def chat(self, payload: dict[str, Any], *, deadline: Deadline) -> UpstreamResult: ...

    def stream_chat(
        self, payload: dict[str, Any], *, deadline: Deadline
    ) -> AbstractAsyncContextManager[RecoveringStream]:
        """Opens once the first event came; closes the upstream response on every exit."""
        ...

    async def list_models(self) -> list[dict[str, Any]]: ...


class RequestGuard(Protocol):
    def check(self, request: ChatRequest, *, user: str | None, request_id: str | None) -> None:
        """Raises (a GatewayError) when the request must not go upstream."""


class AnswerCache(Protocol):
    async def lookup(self, request: CacheRequest) -> CacheHit | None: ...

    def schedule_store(self, request: CacheRequest, payload: dict[str, Any]) -> None:
        """Called before the response is written; must not block on slow work (defer it)."""


class TraceSink(Protocol):
    def record(self, record: TraceRecord) -> None: ...
