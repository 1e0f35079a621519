"""The one internal shape of an LLM call, whichever endpoint it came through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Endpoint = Literal["generate", "chat.completions"]

# Every parameter is passed through to LiteLLM as given. The cache keys on those that can change
# what the model answers, and only those: the rest (below) would split the cache for nothing.
ANSWER_CHANGING_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "response_format",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "reasoning_effort",
    }
)
# Forwarded, but bookkeeping about the caller or the call, not part of the question.
NOT_ANSWER_CHANGING_PARAMS = frozenset({"user", "metadata", "store", "service_tier", "timeout"})


def message_text(message: dict[str, Any]) -> str:
    """The text of an OpenAI message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    endpoint: Endpoint
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False

    def texts_by_role(self, *roles: str) -> list[str]:
        return [message_text(m) for m in self.messages if m.get("role") in roles]

    @property
    def prompt_chars(self) -> int:
        return sum(len(message_text(m)) for m in self.messages)

    def prompt_text(self) -> str:
        """What the semantic cache embeds: the last thing the user asked. The rest of the
        conversation (system prompt, earlier turns) must match exactly; the cache keys on it."""
        user = self.texts_by_role("user")
        return user[-1] if user else ""

    def upstream_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": self.messages, **self.params}
        if self.stream:
            payload["stream"] = True
            # Usage arrives in the last chunk only when asked for; traces and metrics need it.
            payload["stream_options"] = {"include_usage": True}
        return payload
