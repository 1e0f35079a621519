"""How LiteLLM's answers and transport failures become the gateway's exception classes.

LiteLLM speaks OpenAI's error shape (`{"error": {"message", "type", "code"}}`), sometimes with
FastAPI's `{"detail": ...}` or a bare string around it; `upstream_message` digs the human
message out of any of them so the caller sees the upstream's own words. No message built here
ever contains request headers, so the API key cannot leak through an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from llm_gateway.errors import (
    GatewayError,
    ModelNotFound,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_gateway.upstream.port import ConnectFailed, TransportTimeout, UpstreamResponse

_UNKNOWN_MODEL = re.compile(
    r"invalid model name passed in model|model[_ ]not[_ ]found|"
    r"model .{0,200}? (does not exist|not found)",
    re.IGNORECASE,
)
_MESSAGE_LIMIT = 1000
# LiteLLM without a database answers a key that is not the master key with 400 no_db_connection:
# still the gateway's key being refused, not the caller's fault.
_KEY_REFUSED_TYPES = frozenset({"auth_error", "no_db_connection"})


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def from_body(cls, usage: Any) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        prompt = _as_int(usage.get("prompt_tokens"))
        completion = _as_int(usage.get("completion_tokens"))
        total = _as_int(usage.get("total_tokens"))
        if total == 0 and (prompt or completion):
            total = prompt + completion
        return cls(prompt, completion, total)


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def upstream_message(content: bytes) -> str:
    """The upstream's own error message, whatever envelope it came in."""
    try:
        body: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        text = content.decode("utf-8", "replace").strip()
        return text[:_MESSAGE_LIMIT] or "(empty body)"
    for _ in range(4):  # {"detail": {"error": {"message": ...}}} and similar nestings
        if isinstance(body, dict):
            inner = body.get("error", body.get("detail", body.get("message")))
            if inner is None:
                break
            body = inner
        else:
            break
    return str(body)[:_MESSAGE_LIMIT]


def upstream_error_type(content: bytes) -> str | None:
    """OpenAI-style `error.type` (e.g. `auth_error`), when the body has one."""
    try:
        body: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


# LiteLLM names the exception class in its message ("litellm.ContextWindowExceededError: ...")
# and often sends the HTTP status as `error.code`: the class is how the provider's code survives.
_PROVIDER_CODES = (
    ("ContextWindowExceededError", "context_length_exceeded"),
    ("ContentPolicyViolationError", "content_policy_violation"),
)


def provider_code(content: bytes, message: str) -> str | None:
    """The provider's own error code (`error.code` when it is a word), else one LiteLLM's
    exception class names; None when neither says more than the status."""
    try:
        body: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, str) and code and not code.isdigit():
        return code
    for marker, known in _PROVIDER_CODES:
        if marker in message:
            return known
    return None


def parse_retry_after(value: str | None, now: Callable[[], float]) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def attempted_fallbacks(headers: Mapping[str, str]) -> int:
    value = headers.get("x-litellm-attempted-fallbacks", "0")
    return int(value) if value.isdigit() else 0


def parse_cost(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # LiteLLM writes "None" when it could not price the call


def error_for_response(
    response: UpstreamResponse, model: str, now: Callable[[], float]
) -> GatewayError:
    """The exception for an upstream answer with status >= 400 (its body already read)."""
    status = response.status
    message = upstream_message(response.content)
    if status == 404 or (status in (400, 422) and _UNKNOWN_MODEL.search(message)):
        return ModelNotFound(
            f"Model '{model}' not found; GET /v1/models lists the models this gateway serves",
            extra={"model": model},
        )
    if status in (401, 403) or upstream_error_type(response.content) in _KEY_REFUSED_TYPES:
        return UpstreamAuthError(upstream_status=status)
    if status == 408:
        # LiteLLM answers 408 when ITS timeout for the provider expired: an upstream timeout.
        return UpstreamTimeout(
            f"The provider behind model '{model}' timed out at the LiteLLM proxy: {message}",
            upstream_status=status,
        )
    # LiteLLM 1.106 forwards a provider's Retry-After only as `llm_provider-retry-after`.
    retry_after = parse_retry_after(
        response.headers.get("retry-after") or response.headers.get("llm_provider-retry-after"),
        now,
    )
    if status == 429:
        return UpstreamRateLimited(
            f"The upstream for model '{model}' is rate limiting: {message}",
            retry_after=retry_after,
        )
    if 400 <= status < 500:  # 400, 422 and the rest: the request itself was refused
        return UpstreamBadRequest(
            message, upstream_status=status, code=provider_code(response.content, message)
        )
    if status == 503:
        # "Not now": the caller gets 503 + Retry-After, not a 502, once retries are spent.
        return UpstreamUnavailable(
            f"The upstream for model '{model}' is unavailable (HTTP 503): {message}",
            retry_after=retry_after,
            upstream_status=status,
        )
    return UpstreamError(
        f"The upstream for model '{model}' failed with HTTP {status}: {message}",
        upstream_status=status,
    )


def error_for_transport(exc: BaseException, model: str, timeout: float) -> GatewayError:
    """The exception for an attempt that got no (whole) HTTP answer.

    `exc` is the port's `TransportError` (whichever library saw the failure) or the attempt's
    own `TimeoutError`. Unavailable is retried; so is a timeout, within the deadline.
    """
    if isinstance(exc, ConnectFailed):
        return UpstreamUnavailable(
            f"Could not reach the upstream for model '{model}' ({exc}); "
            "check that the LiteLLM proxy is running and LITELLM_BASE_URL is right"
        )
    if isinstance(exc, TimeoutError | TransportTimeout):
        return UpstreamTimeout(
            f"The upstream for model '{model}' did not answer within {timeout:.3g} s"
        )
    return UpstreamUnavailable(
        f"The connection to the upstream for model '{model}' failed ({exc or 'no detail'})"
    )
