"""A streamed answer that survives its model: the gateway walks the cascade itself.

For a stream the gateway asks LiteLLM for one model at a time (`disable_fallbacks`), in the
order of the model's cascade (upstream/catalog.py), because only the gateway can see where a
stream broke and what the caller already has:

- **Before the first byte** (a first-token timeout, a 5xx, a reset, a 429, the model's circuit
  open): the next model of the cascade is opened, in the time the deadline has left, and the
  caller sees one clean stream. A refusal (400: context length, content filter) is an answer,
  not a failure: it is raised to the caller, never laundered through another model.
- **After it** (a cut, a stall, a malformed chunk): the next model continues the answer, given
  the partial answer as an assistant message to continue from, and its chunks are forwarded
  into the same stream, so the caller gets one complete answer. A model that refuses that
  prefix (a 400) ends the stream with today's in-band error: something was already sent, so
  starting over without the prefix would repeat it. (With nothing sent yet there is no prefix:
  the next model simply answers.)
- A clean end with a `finish_reason` and no `[DONE]` is a complete answer (stream.py).

Nothing is retried on the same model after a byte reached the caller.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from llm_gateway.errors import (
    CircuitOpen,
    GatewayError,
    StreamInterrupted,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
)
from llm_gateway.upstream.mapping import Usage
from llm_gateway.upstream.stream import UpstreamStream

log = logging.getLogger(__name__)

# Opens `payload` on one model; `models_left` (this one included) sizes its share of the time.
OpenModel = Callable[[dict[str, Any], int], Awaitable[UpstreamStream]]


def worth_another_model(exc: BaseException) -> bool:
    """A failure another model might not have: the upstream's, not the request's or our key's."""
    return isinstance(exc, UpstreamError) and not isinstance(exc, UpstreamAuthError)


def no_model_can_answer(skipped: CircuitOpen, last: GatewayError) -> CircuitOpen:
    """The answer when the primary's circuit is open and its fallbacks failed too: 503 with the
    breaker's Retry-After, naming both."""
    return CircuitOpen(
        f"{skipped.message}; its fallbacks failed too (last: {last.message})",
        retry_after=skipped.retry_after,
        extra=skipped.extra,
    )


def with_prefix(payload: dict[str, Any], model: str, prefix: str) -> dict[str, Any]:
    """`payload` for `model`, continuing from `prefix` (the answer the caller already has)."""
    messages = list(payload.get("messages") or [])
    if prefix:
        messages.append({"role": "assistant", "content": prefix})
    return {**payload, "model": model, "messages": messages}


class RecoveringStream:
    def __init__(self, payload: dict[str, Any], cascade: Sequence[str], open_model: OpenModel):
        self._payload = payload
        self._cascade = tuple(cascade)
        self._open_model = open_model
        self._index = 0
        self._current: UpstreamStream | None = None
        self._earlier: list[UpstreamStream] = []  # models that broke mid-answer
        self._attempts = 0

    async def open(self) -> None:
        """Open the first model that answers; raises (before any byte) when none does."""
        self._current = await self._open_from(0, prefix="")

    async def _open_from(self, index: int, *, prefix: str) -> UpstreamStream:
        skipped: CircuitOpen | None = None
        for position in range(index, len(self._cascade)):
            model = self._cascade[position]
            payload = with_prefix(self._payload, model, prefix)
            last = position == len(self._cascade) - 1
            try:
                stream = await self._open_model(payload, len(self._cascade) - position)
            except GatewayError as exc:
                if prefix and isinstance(exc, UpstreamBadRequest):
                    raise StreamInterrupted(
                        f"Model '{model}' refused to continue the partial answer ({exc.message})",
                        extra={"model": model},
                    ) from exc
                if isinstance(exc, CircuitOpen):
                    skipped = skipped or exc
                if last and skipped is not None and exc is not skipped:
                    raise no_model_can_answer(skipped, exc) from exc
                if last or not worth_another_model(exc):
                    raise
                log.warning(
                    "stream_failover",
                    extra={
                        "model": model,
                        "next_model": self._cascade[position + 1],
                        "error_class": type(exc).__name__,
                        "error_message": exc.message,
                        "mid_answer": bool(prefix),
                    },
                )
                continue
            self._index = position
            self._attempts += stream.attempts
            return stream
        raise AssertionError("a cascade is never empty")

    # --- what the API layer and the trace read -----------------------------------------

    @property
    def _stream(self) -> UpstreamStream:
        assert self._current is not None, "open() first"
        return self._current

    @property
    def model_used(self) -> str:
        return self._stream.model_used

    @property
    def provider_model(self) -> str | None:
        return self._stream.provider_model

    @property
    def usage(self) -> Usage | None:
        return self._stream.usage

    @property
    def text(self) -> str:
        return "".join(s.text for s in (*self._earlier, self._stream))

    @property
    def completed(self) -> bool:
        return self._stream.completed

    @property
    def attempts(self) -> int:
        return self._attempts

    @property
    def first_event_ms(self) -> float:
        return (self._earlier[0] if self._earlier else self._stream).first_event_ms

    @property
    def recovered(self) -> int:
        """How many times the answer moved to another model mid-stream."""
        return len(self._earlier)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._events()

    async def _events(self) -> AsyncIterator[bytes]:
        while True:
            try:
                async for raw in self._stream:
                    yield raw
                return
            except StreamInterrupted as exc:
                broken, partial = self._stream, self.text
                if self._index + 1 >= len(self._cascade):
                    raise
                await broken.aclose()
                self._earlier.append(broken)
                log.warning(
                    "stream_continued_on_fallback",
                    extra={
                        "model": broken.model_used,
                        "next_model": self._cascade[self._index + 1],
                        "error_message": exc.message,
                        "chars_sent": len(partial),
                    },
                )
                try:
                    self._current = await self._open_from(self._index + 1, prefix=partial)
                except GatewayError as failed:
                    self._current = broken
                    self._earlier.pop()
                    raise StreamInterrupted(
                        f"{exc.message}; no fallback could continue it ({failed.message})",
                        extra=exc.extra,
                    ) from failed

    async def aclose(self) -> None:
        if self._current is not None:
            await self._current.aclose()
