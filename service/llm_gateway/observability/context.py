"""Per-request values every log line and span of that request carries.

Context variables, not globals: each request's task sees its own values, and pure ASGI
middleware (unlike BaseHTTPMiddleware) keeps them visible to the route and back.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_var: ContextVar[str | None] = ContextVar("user", default=None)

# Bounded length and a charset that cannot break a log line, a header or a JSON document.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_request_id() -> str:
    return f"req_{secrets.token_hex(8)}"


def accept_request_id(candidate: bytes | str | None) -> str:
    """The caller's request id if it is safe to echo and log, otherwise a fresh one."""
    if candidate:
        text = candidate.decode("latin-1") if isinstance(candidate, bytes) else candidate
        if _VALID_REQUEST_ID.fullmatch(text):
            return text
    return new_request_id()


def current_request_id() -> str | None:
    return request_id_var.get()
