"""Server-sent events from LiteLLM: split a byte stream into events and read what they say.

Events are handed on byte-exact (data lines, separators and all), so the client sees exactly
what LiteLLM sent; parsing only *reads* them to capture the model, usage and answer text, and to
tell a healthy stream (ends with `data: [DONE]`) from a broken one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from llm_gateway.upstream.mapping import Usage, upstream_message

# An event ends at a blank line; all three line endings are legal SSE.
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")
EventKind = Literal["data", "done", "error", "other"]


class SseEventReader:
    """Pulls one complete event at a time out of a chunked byte iterator."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    async def next_event(self) -> bytes | None:
        """The next event including its terminating blank line; None at a clean end of input.

        An unterminated tail at end of input is dropped, as the SSE spec says: a cut
        connection must not pass for a complete event.
        """
        while True:
            match = _EVENT_END.search(self._buffer)
            if match is not None:
                event = bytes(self._buffer[: match.end()])
                del self._buffer[: match.end()]
                return event
            chunk = await anext(self._chunks, None)
            if chunk is None:
                self._buffer.clear()
                return None
            self._buffer += chunk

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


class MalformedEvent(ValueError):
    pass


@dataclass
class StreamTranscript:
    """What a stream said so far: for tracing and for the response's model and usage."""

    requested_model: str
    model: str | None = None
    usage: Usage | None = None
    text_parts: list[str] = field(default_factory=list)
    events: int = 0
    done: bool = False
    finish_reason: str | None = None  # the last choice's, once one said why it stopped
    error_message: str | None = None
    error_code: Any = None

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def model_used(self) -> str:
        return self.model or self.requested_model

    def feed(self, raw: bytes) -> EventKind:
        """Record one event; raises MalformedEvent when its data is neither JSON nor [DONE]."""
        data = _event_data(raw)
        if data is None:
            return "other"
        self.events += 1
        if data.strip() == b"[DONE]":
            self.done = True
            return "done"
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise MalformedEvent(f"event data is not JSON: {data[:200]!r}") from exc
        if not isinstance(chunk, dict):
            raise MalformedEvent(f"event data is not a JSON object: {data[:200]!r}")
        if "error" in chunk:
            self.error_message = upstream_message(data)
            error = chunk["error"]
            self.error_code = error.get("code") if isinstance(error, dict) else None
            return "error"
        model = chunk.get("model")
        if isinstance(model, str) and model:
            self.model = model
        usage = Usage.from_body(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str):
                self.text_parts.append(content)
            reason = choice.get("finish_reason") if isinstance(choice, dict) else None
            if isinstance(reason, str) and reason:
                self.finish_reason = reason
        return "data"


def _event_data(raw: bytes) -> bytes | None:
    """The event's data field (lines joined by newline), or None for data-less events."""
    data_lines = []
    for line in _LINE.split(raw):
        if line.startswith(b"data:"):
            value = line[5:]
            data_lines.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(data_lines) if data_lines else None
