"""Request and response bodies of the LLM routes. Static ranges live here; limits that come
from settings (prompt length, max_tokens ceiling, model name pattern) are the guard's."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ResponseFormat = dict[str, Any] | Literal["text", "json_object"]


def _response_format(value: ResponseFormat | None) -> dict[str, Any] | None:
    if isinstance(value, str):
        return {"type": value}
    return value


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="A model LiteLLM serves; default DEFAULT_MODEL.")
    prompt: str = Field(min_length=1, description="What to ask.")
    system_prompt: str | None = Field(None, description="Instructions sent as the system message.")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    response_format: ResponseFormat | None = Field(
        None, description='"text", "json_object" or an OpenAI response_format object.'
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": self.prompt})
        return messages

    def params(self) -> dict[str, Any]:
        params = self.model_dump(
            exclude_none=True, exclude={"model", "prompt", "system_prompt", "response_format"}
        )
        response_format = _response_format(self.response_format)
        if response_format is not None:
            params["response_format"] = response_format
        return params


class GenerateResponse(BaseModel):
    response: str
    model: str
    model_requested: str
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cost: float | None
    cached: bool
    cache_tier: Literal["exact", "semantic"] | None
    latency_ms: float
    request_id: str | None


class ChatMessage(BaseModel):
    # Tool calls, names and multimodal parts pass through untouched.
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat.completions body. Unlisted OpenAI parameters pass through to LiteLLM."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, le=8)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)

    def params(self) -> dict[str, Any]:
        return self.model_dump(
            exclude_none=True, exclude={"model", "messages", "stream", "stream_options"}
        )

    def message_dicts(self) -> list[dict[str, Any]]:
        return [message.model_dump(exclude_none=True) for message in self.messages]
