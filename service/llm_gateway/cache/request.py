"""What the LLM service hands the cache (`CacheRequest`) and what it gets back (`CacheHit`).

The scope is the tenant boundary of the cache: under `CACHE_SCOPE=user` it is derived from the
caller's subject, so one caller can never be answered with another caller's stored response.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

CacheTier = Literal["exact", "semantic"]
ScopeMode = Literal["shared", "user"]

SHARED_SCOPE = "shared"


def cache_scope(mode: ScopeMode, subject: str | None) -> str:
    """The scope string for a caller under the configured CACHE_SCOPE.

    User scopes carry a `user:` prefix so that a user literally named "shared" cannot reach the
    shared scope. An anonymous caller under `user` mode has no tenant to isolate, so it is refused
    rather than silently pooled with everyone else.
    """
    if mode == "shared":
        return SHARED_SCOPE
    if not subject:
        raise ValueError("CACHE_SCOPE=user needs the caller's subject")
    return f"user:{subject}"


@dataclass(frozen=True)
class CacheRequest:
    """One cacheable chat request.

    `messages` are the chat messages exactly as sent upstream; `params` are the request's sampling
    parameters (anything that does not change the answer is ignored by the key); `prompt_text` is
    the text the semantic tier embeds, normally the system prompt plus the last user message.
    """

    model: str
    messages: Sequence[Mapping[str, Any]]
    scope: str
    prompt_text: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CacheHit:
    """A stored response served from the cache; `payload` is returned exactly as stored."""

    tier: CacheTier
    payload: dict[str, Any]
    similarity: float
    age_seconds: float
