"""The one exception tree, and its one mapping to HTTP.

Domain code raises these deep; `error_response` (used by the app's exception handlers and by the
middleware that answer early) turns them into the one error body shape::

    {"error": "<Class>", "message": "...", "incident_id": "inc_<12 hex>",
     "timestamp": "<ISO-8601 UTC>", "request_id": "..."}

    GatewayError                          500
    ├── ClientError                       400  the caller can fix it
    │   ├── InvalidRequest                400  field-level problems (`fields`), malformed JSON
    │   ├── ModelNotFound                 400
    │   ├── PromptRejected                400  injection heuristics
    │   ├── UpstreamBadRequest            400  LiteLLM refused the request itself
    │   ├── AuthenticationFailed          401  + WWW-Authenticate: Bearer
    │   ├── PermissionDenied              403
    │   ├── NotFound                      404
    │   ├── PayloadTooLarge               413
    │   └── RateLimited                   429  + Retry-After, X-RateLimit-*
    ├── UpstreamError                     502  the gateway or its upstream is at fault
    │   ├── UpstreamAuthError             502  the gateway's LiteLLM key is wrong
    │   ├── UpstreamRateLimited           429  + Retry-After
    │   ├── UpstreamTimeout               504
    │   ├── UpstreamUnavailable           503  + Retry-After: unreachable, or 503, after retries
    │   ├── CircuitOpen                   503  + Retry-After
    │   └── StreamInterrupted             (in-band SSE error; headers already sent)
    ├── DependencyUnavailable             503  a required local dependency is down
    │   └── RateLimitUnavailable          503  + Retry-After: limit store down, failing closed
    └── ServiceDraining                   503  + Retry-After, Connection: close (drain over)

    ConfigurationError                    (boot) the environment is refused; never an HTTP answer

Each class also names its OpenAI `error.type` and `error.code` (`openai_type`, `openai_code`):
error_shapes.py answers in OpenAI's shape on /v1/*. An instance's `code` carries the provider's
own code through (context_length_exceeded, content_policy_violation...).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson


def new_incident_id() -> str:
    return f"inc_{secrets.token_hex(6)}"


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ConfigurationError(Exception):
    """The environment describes a configuration the service refuses to run with."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))

    def lines(self) -> list[str]:
        return [f"configuration error: {problem}" for problem in self.problems]


class GatewayError(Exception):
    status_code: ClassVar[int] = 500
    default_message: ClassVar[str] = "The gateway failed to handle the request"
    # How OpenAI's API would name this failure on /v1/* (`error.type` and `error.code`; see
    # error_shapes.py). An instance's `code` (the provider's own, e.g. context_length_exceeded)
    # wins over the class's.
    openai_type: ClassVar[str] = "server_error"
    openai_code: ClassVar[str | None] = "internal_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        incident_id: str | None = None,
        code: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.headers = dict(headers or {})
        self.retry_after = retry_after
        # The HTTP status the upstream answered with, when it answered; the retry policy and the
        # breaker judge the failure by it.
        self.upstream_status = upstream_status
        # Set where the failure is logged, so the body names the same incident as the log line.
        self.incident_id = incident_id
        self.code = code or self.openai_code
        # Further fields of the error body (for example `fields` of an InvalidRequest).
        self.extra = dict(extra or {})
        super().__init__(self.message)

    def body_fields(self) -> dict[str, Any]:
        """The fields the error body carries beyond the common shape."""
        fields = dict(self.extra)
        if self.upstream_status is not None:
            fields["upstream_status"] = self.upstream_status
        return fields

    @property
    def error_name(self) -> str:
        return type(self).__name__

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class ClientError(GatewayError):
    status_code = 400
    default_message = "The request cannot be served as sent"
    openai_type = "invalid_request_error"
    openai_code: ClassVar[str | None] = None


class InvalidRequest(ClientError):
    # 400, as OpenAI's API and the seeds' contract answer an invalid parameter (not FastAPI's 422).
    status_code = 400
    default_message = "The request body failed validation"


class ModelNotFound(ClientError):
    status_code = 400
    openai_code = "model_not_found"


class PromptRejected(ClientError):
    status_code = 400
    default_message = "The prompt was rejected by the gateway's prompt guard"
    openai_code = "prompt_rejected"


class UpstreamBadRequest(ClientError):
    status_code = 400


class AuthenticationFailed(ClientError):
    status_code = 401
    default_message = "Missing or invalid credentials"
    openai_type = "authentication_error"
    openai_code = "invalid_api_key"

    def response_headers(self) -> dict[str, str]:
        headers = super().response_headers()
        headers.setdefault("WWW-Authenticate", "Bearer")
        return headers


class PermissionDenied(ClientError):
    status_code = 403
    default_message = "Your role does not allow this"
    openai_type = "permission_error"
    openai_code = "permission_denied"


class NotFound(ClientError):
    status_code = 404
    default_message = "No such resource"
    openai_type = "not_found_error"
    openai_code = "not_found"


class PayloadTooLarge(ClientError):
    status_code = 413
    openai_code = "payload_too_large"


class RateLimited(ClientError):
    status_code = 429
    default_message = "Rate limit exceeded"
    openai_type = "rate_limit_error"
    openai_code = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    status_code = 502
    default_message = "The upstream model service failed"
    openai_code = "upstream_error"


class UpstreamAuthError(UpstreamError):
    status_code = 502
    default_message = (
        "The gateway's credentials for the upstream were refused; an operator must fix "
        "LITELLM_API_KEY (this is not your request's fault)"
    )
    openai_code = "upstream_auth_error"


class UpstreamRateLimited(UpstreamError):
    status_code = 429
    default_message = "The upstream provider is rate limiting; retry after the indicated delay"
    openai_type = "rate_limit_error"
    openai_code = "rate_limit_exceeded"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    default_message = "The upstream model did not answer within the deadline"
    openai_code = "timeout"


class UpstreamUnavailable(UpstreamError):
    status_code = 503
    default_message = "The upstream model service is unreachable; retry later"
    openai_code = "service_unavailable"


class CircuitOpen(UpstreamError):
    status_code = 503
    default_message = "Circuit breaker is open"
    openai_code = "circuit_open"


class StreamInterrupted(UpstreamError):
    status_code = 502
    default_message = "The upstream stream ended before completing"
    openai_code = "stream_interrupted"


class DependencyUnavailable(GatewayError):
    status_code = 503
    default_message = "A dependency the gateway needs is unavailable"
    openai_code = "dependency_unavailable"


class RateLimitUnavailable(DependencyUnavailable):
    default_message = (
        "The rate-limit store is unavailable and the gateway is configured to refuse requests "
        "it cannot count (RATE_LIMIT_STORAGE_FAILURE=closed)"
    )


class ServiceDraining(GatewayError):
    status_code = 503
    default_message = "This instance is shutting down; retry and another will answer"
    openai_code = "service_draining"

    def response_headers(self) -> dict[str, str]:
        headers = super().response_headers()
        headers["Connection"] = "close"
        return headers


def error_body(
    error: str,
    message: str,
    *,
    request_id: str | None,
    incident_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "error": error,
        "message": message,
        "incident_id": incident_id or new_incident_id(),
        "timestamp": utc_now_iso(),
        "request_id": request_id,
    }
    if extra:
        body.update(extra)
    return body


def error_bytes(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(body)
