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
    │   ├── UpstreamUnavailable           503  unreachable after retries
    │   ├── CircuitOpen                   503  + Retry-After
    │   └── StreamInterrupted             (in-band SSE error; headers already sent)
    ├── DependencyUnavailable             503  a required local dependency is down
    │   └── RateLimitUnavailable          503  + Retry-After: limit store down, failing closed
    └── ServiceDraining                   503  + Retry-After, Connection: close (drain over)

    ConfigurationError                    (boot) the environment is refused; never an HTTP answer
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

    def __init__(
        self,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        incident_id: str | None = None,
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


class InvalidRequest(ClientError):
    # 400, as OpenAI's API and the seeds' contract answer an invalid parameter (not FastAPI's 422).
    status_code = 400
    default_message = "The request body failed validation"


class ModelNotFound(ClientError):
    status_code = 400


class PromptRejected(ClientError):
    status_code = 400
    default_message = "The prompt was rejected by the gateway's prompt guard"


class UpstreamBadRequest(ClientError):
    status_code = 400


class AuthenticationFailed(ClientError):
    status_code = 401
    default_message = "Missing or invalid credentials"

    def response_headers(self) -> dict[str, str]:
        headers = super().response_headers()
        headers.setdefault("WWW-Authenticate", "Bearer")
        return headers


class PermissionDenied(ClientError):
    status_code = 403
    default_message = "Your role does not allow this"


class NotFound(ClientError):
    status_code = 404
    default_message = "No such resource"


class PayloadTooLarge(ClientError):
    status_code = 413


class RateLimited(ClientError):
    status_code = 429
    default_message = "Rate limit exceeded"


class UpstreamError(GatewayError):
    status_code = 502
    default_message = "The upstream model service failed"


class UpstreamAuthError(UpstreamError):
    status_code = 502
    default_message = (
        "The gateway's credentials for the upstream were refused; an operator must fix "
        "LITELLM_API_KEY (this is not your request's fault)"
    )


class UpstreamRateLimited(UpstreamError):
    status_code = 429
    default_message = "The upstream provider is rate limiting; retry after the indicated delay"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    default_message = "The upstream model did not answer within the deadline"


class UpstreamUnavailable(UpstreamError):
    status_code = 503
    default_message = "The upstream model service is unreachable; retry later"


class CircuitOpen(UpstreamError):
    status_code = 503
    default_message = "Circuit breaker is open"


class StreamInterrupted(UpstreamError):
    status_code = 502
    default_message = "The upstream stream ended before completing"


class DependencyUnavailable(GatewayError):
    status_code = 503
    default_message = "A dependency the gateway needs is unavailable"


class RateLimitUnavailable(DependencyUnavailable):
    default_message = (
        "The rate-limit store is unavailable and the gateway is configured to refuse requests "
        "it cannot count (RATE_LIMIT_STORAGE_FAILURE=closed)"
    )


class ServiceDraining(GatewayError):
    status_code = 503
    default_message = "This instance is shutting down; retry and another will answer"

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
