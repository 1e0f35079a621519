"""An open upstream SSE stream, handed to the API layer after its first event arrived.

By the time a caller holds an `UpstreamStream`, the breaker, the retries and the first-token
deadline are behind it: the upstream answered 200 and sent a first data event. From here on a
failure can no longer become an HTTP status (the client has the headers), so every problem is
raised as `StreamInterrupted` saying what happened, and the API layer turns it into an in-band
SSE error event. `aclose()` (called by `LiteLLMClient.stream_chat` on every exit path) releases
the upstream connection, so a client that disconnects never leaks one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from llm_gateway.errors import StreamInterrupted, UpstreamError
from llm_gateway.upstream.mapping import Usage, attempted_fallbacks
from llm_gateway.upstream.port import TransportError, UpstreamStreamResponse
from llm_gateway.upstream.sse import MalformedEvent, SseEventReader, StreamTranscript

DONE_EVENT = b"data: [DONE]\n\n"


class UpstreamStream:
    def __init__(
        self,
        response: UpstreamStreamResponse,
        reader: SseEventReader,
        transcript: StreamTranscript,
        pending: list[bytes],
        *,
        idle_timeout: float,
        attempts: int,
        first_event_ms: float,
        clock: Callable[[], float],
    ) -> None:
        self._response = response
        self._reader = reader
        self._pending = pending
        self._idle_timeout = idle_timeout
        self._clock = clock
        self._closed = False
        self.transcript = transcript
        self.attempts = attempts
        self.first_event_ms = first_event_ms
        self.model_id = response.headers.get("x-litellm-model-id")
        self.model_group = response.headers.get("x-litellm-model-group")
        self.fallbacks = attempted_fallbacks(response.headers)

    @property
    def model_used(self) -> str:
        """The model group that answered (after fallbacks), else the chunks' `model`."""
        return self.model_group or self.transcript.model_used

    @property
    def provider_model(self) -> str | None:
        return self.transcript.model

    @property
    def usage(self) -> Usage | None:
        return self.transcript.usage

    @property
    def text(self) -> str:
        return self.transcript.text

    @property
    def completed(self) -> bool:
        """True once `data: [DONE]` arrived, or the stream ended cleanly after a chunk said why
        it stopped (`finish_reason`): only then is the answer whole."""
        return self.transcript.done

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._events()

    async def _events(self) -> AsyncIterator[bytes]:
        while self._pending:
            yield self._pending.pop(0)
        while not self.transcript.done:
            raw = await self._next_event()
            if raw is None:
                # A clean end after `finish_reason` is a whole answer without its [DONE] (some
                # providers omit it); the caller gets one, so its client sees the end too.
                self.transcript.done = True
                yield DONE_EVENT
                return
            try:
                kind = self.transcript.feed(raw)
            except MalformedEvent as exc:
                raise self._interrupted(f"the upstream sent a malformed event ({exc})") from exc
            if kind == "error":
                raise self._interrupted(
                    f"the upstream reported an error mid-stream: {self.transcript.error_message}"
                )
            yield raw

    async def _next_event(self) -> bytes | None:
        try:
            async with asyncio.timeout(self._idle_timeout):
                raw = await self._reader.next_event()
        except TimeoutError as exc:
            if self.transcript.finish_reason is not None:
                return None  # the answer was whole; only its usage chunk is missing
            raise self._interrupted(
                f"the upstream sent nothing for {self._idle_timeout:g} s (stream idle timeout)"
            ) from exc
        except TransportError as exc:
            if self.transcript.finish_reason is not None:
                return None
            raise self._interrupted(f"the upstream connection broke ({exc})") from exc
        if raw is None:
            if self.transcript.finish_reason is not None:
                return None
            raise self._interrupted("the upstream ended the stream without data: [DONE]")
        return raw

    def _interrupted(self, what: str) -> StreamInterrupted:
        return StreamInterrupted(
            f"The answer from model '{self.model_used}' is incomplete: {what}, after "
            f"{self.transcript.events} event(s)",
            extra={"model": self.model_used, "events": self.transcript.events},
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._reader.aclose()
        finally:
            await self._response.aclose()


async def read_first_event(
    reader: SseEventReader, transcript: StreamTranscript, model: str
) -> list[bytes]:
    """Events up to and including the first data event (comments before it are kept)."""
    pending: list[bytes] = []
    while True:
        raw = await reader.next_event()
        if raw is None:
            raise UpstreamError(
                f"The upstream for model '{model}' ended the stream before its first event",
                upstream_status=502,
            )
        try:
            kind = transcript.feed(raw)
        except MalformedEvent as exc:
            raise StreamInterrupted(
                f"The upstream for model '{model}' sent a malformed first event ({exc})"
            ) from exc
        if kind == "error":
            status = transcript.error_code
            raise UpstreamError(
                f"The upstream for model '{model}' failed: {transcript.error_message}",
                upstream_status=int(status) if str(status).isdigit() else 502,
            )
        pending.append(raw)
        if kind in ("data", "done"):
            return pending
