"""Every parameter the request models forward to LiteLLM is either part of the cache key or
declared as not changing the answer (chat_request.py holds both lists, the one place to add one)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from llm_gateway.api.schemas import ChatCompletionRequest, GenerateRequest
from llm_gateway.cache.keys import exact_key
from llm_gateway.cache.request import CacheRequest
from llm_gateway.chat_request import ANSWER_CHANGING_PARAMS, NOT_ANSWER_CHANGING_PARAMS

MESSAGES = [{"role": "user", "content": "hi"}]

# Every declared field set, so a field added to a model without a place in a list fails below.
EVERY_FIELD: list[Any] = [
    pytest.param(
        GenerateRequest(
            model="m",
            prompt="hi",
            system_prompt="terse",
            temperature=0.5,
            top_p=0.5,
            max_tokens=5,
            stop="x",
            seed=1,
            response_format="json_object",
        ),
        id="generate",
    ),
    pytest.param(
        ChatCompletionRequest(
            model="m",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            temperature=0.5,
            top_p=0.5,
            n=1,
            max_tokens=5,
            max_completion_tokens=5,
            presence_penalty=0.1,
            frequency_penalty=0.1,
        ),
        id="chat.completions",
    ),
]


def key_of(params: dict[str, Any]) -> str:
    return exact_key(
        CacheRequest(model="m", messages=MESSAGES, scope="shared", prompt_text="hi", params=params)
    )


@pytest.mark.parametrize("body", EVERY_FIELD)
def test_every_forwarded_param_is_keyed_or_declared_not_answer_changing(body: BaseModel) -> None:
    assert body.model_fields_set == set(type(body).model_fields)
    forwarded = set(body.params())  # type: ignore[attr-defined]
    assert forwarded, "the model forwards sampling parameters"
    assert forwarded <= ANSWER_CHANGING_PARAMS | NOT_ANSWER_CHANGING_PARAMS


@pytest.mark.parametrize("name", sorted(ANSWER_CHANGING_PARAMS))
def test_each_answer_changing_param_changes_the_key(name: str) -> None:
    assert key_of({name: "a"}) != key_of({name: "b"}) != key_of({})


@pytest.mark.parametrize("name", sorted(NOT_ANSWER_CHANGING_PARAMS))
def test_each_declared_bookkeeping_param_leaves_the_key_alone(name: str) -> None:
    assert key_of({name: "a"}) == key_of({name: "b"}) == key_of({})


def test_the_two_lists_are_disjoint() -> None:
    assert not ANSWER_CHANGING_PARAMS & NOT_ANSWER_CHANGING_PARAMS


def test_openai_params_the_chat_model_passes_through_are_forwarded() -> None:
    body = ChatCompletionRequest.model_validate(
        {"messages": MESSAGES, "tools": [], "reasoning_effort": "low", "user": "bob"}
    )
    assert body.params() == {"tools": [], "reasoning_effort": "low", "user": "bob"}
