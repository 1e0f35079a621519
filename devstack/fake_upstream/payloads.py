"""OpenAI-shaped bodies the fake upstream sends: completions, stream chunks, embeddings, errors."""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import struct
import time
from functools import lru_cache
from typing import Any

import orjson

DEFAULT_EMBEDDING_DIMS = 64
_ids = itertools.count(1)

ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def default_text(model: str) -> str:
    # Naming the model lets a test tell which upstream deployment answered.
    return f"Hello from fake upstream model {model}."


@lru_cache(maxsize=256)
def sized_text(model: str, text: str | None, response_bytes: int | None) -> str:
    """The answer text, padded so the non-streamed body is about `response_bytes` long."""
    base = text if text is not None else default_text(model)
    if response_bytes is None:
        return base
    overhead = len(completion_body(model, base, prompt_tokens=0))
    missing = response_bytes - overhead
    if missing <= 0:
        return base
    filler = (" lorem" * (missing // 6 + 1))[:missing]
    return base + filler


def words(text: str) -> int:
    return max(1, len(text.split()))


def prompt_tokens(messages: object) -> int:
    if not isinstance(messages, list):
        return 1
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        total += words(content) if isinstance(content, str) else 1
    return total


def completion_body(model: str, text: str, *, prompt_tokens: int) -> bytes:
    completion_tokens = words(text)
    return orjson.dumps(
        {
            "id": f"chatcmpl-fake-{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def split_pieces(text: str, count: int) -> list[str]:
    """Exactly `count` non-empty pieces, in order (the text is padded when shorter than `count`)."""
    if len(text) < count:
        text = text + "." * (count - len(text))
    size, longer = divmod(len(text), count)
    pieces: list[str] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < longer else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def chunk_event(
    stream_id: str, model: str, delta: dict[str, Any], finish_reason: str | None = None
) -> bytes:
    return sse(
        {
            "id": stream_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
    )


def usage_event(stream_id: str, model: str, prompt: int, completion: int) -> bytes:
    return sse(
        {
            "id": stream_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    )


def new_stream_id() -> str:
    return f"chatcmpl-fake-{next(_ids)}"


DONE_EVENT = b"data: [DONE]\n\n"
MALFORMED_EVENT = b'data: {"id": "broken", "choices": [\n\n'


def embedding_vector(text: str, dims: int) -> list[float]:
    """A unit vector drawn from sha256 of the text: same text, same vector, any process."""
    values: list[float] = []
    for block in itertools.count():
        digest = hashlib.sha256(f"{block}\x00{text}".encode()).digest()
        for (word,) in struct.iter_unpack(">I", digest):
            values.append(word / 0xFFFFFFFF * 2.0 - 1.0)
        if len(values) >= dims:
            break
    values = values[:dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embeddings_body(model: str, inputs: list[str], dims: int, encoding_format: str) -> bytes:
    data: list[dict[str, Any]] = []
    for index, text in enumerate(inputs):
        vector = embedding_vector(text, dims)
        encoded: object = vector
        if encoding_format == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(words(text) for text in inputs)
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def assistant_prefix(messages: object) -> str | None:
    """The content of a trailing assistant message (a partial answer to continue), if any."""
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") == "assistant":
        content = last.get("content")
        return content if isinstance(content, str) else ""
    return None


def error_body(status: int, message: str | None, code: str | None = None) -> bytes:
    error_type, default_code = ERROR_TYPES.get(status, ("server_error", None))
    code = code or default_code
    text = message or f"fake upstream injected status {status}"
    return orjson.dumps(
        {"error": {"message": text, "type": error_type, "param": None, "code": code}}
    )


def models_body(models: list[str]) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "fake-upstream"}
                for name in models
            ],
        }
    )
