"""The exact key changes exactly when the answer could change, and tenants never share one."""

from __future__ import annotations

from typing import Any

import pytest

from llm_gateway.cache.keys import context_fingerprint, exact_key, point_id, request_fingerprint
from llm_gateway.cache.request import CacheRequest, cache_scope

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France?"},
]


def request(**changes: Any) -> CacheRequest:
    fields: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "scope": "shared",
        "prompt_text": "What is the capital of France?",
        "params": {"temperature": 0.2, "max_tokens": 100},
    }
    fields.update(changes)
    return CacheRequest(**fields)


def test_the_key_is_independent_of_param_order_and_dict_insertion_order() -> None:
    reordered = request(
        params={"max_tokens": 100, "temperature": 0.2},
        messages=[{"content": m["content"], "role": m["role"]} for m in MESSAGES],
    )
    assert exact_key(reordered) == exact_key(request())


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"model": "gpt-4o"}, id="model"),
        pytest.param({"scope": "user:alice"}, id="scope"),
        pytest.param({"params": {"temperature": 0.3, "max_tokens": 100}}, id="temperature"),
        pytest.param({"params": {"temperature": 0.2, "max_tokens": 101}}, id="max_tokens"),
        pytest.param({"params": {"temperature": 0.2, "max_tokens": 100, "seed": 7}}, id="seed"),
        pytest.param(
            {
                "params": {
                    "temperature": 0.2,
                    "max_tokens": 100,
                    "response_format": {"type": "json"},
                }
            },
            id="response_format",
        ),
        pytest.param(
            {"params": {"temperature": 0.2, "max_tokens": 100, "tools": [{"type": "function"}]}},
            id="tools",
        ),
        pytest.param(
            {
                "messages": [
                    MESSAGES[0],
                    {"role": "user", "content": "What is the capital of France? "},
                ]
            },
            id="content-whitespace",
        ),
        pytest.param({"messages": MESSAGES[1:]}, id="system-prompt-dropped"),
        pytest.param(
            {"messages": [MESSAGES[0], {"role": "assistant", "content": MESSAGES[1]["content"]}]},
            id="role",
        ),
    ],
)
def test_anything_that_changes_the_answer_changes_the_key(change: dict[str, Any]) -> None:
    assert exact_key(request(**change)) != exact_key(request())


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"temperature": 0.2, "max_tokens": 100, "stream": True}, id="stream"),
        pytest.param({"temperature": 0.2, "max_tokens": 100, "user": "bob"}, id="user-field"),
        pytest.param({"temperature": 0.2, "max_tokens": 100, "seed": None}, id="explicit-null"),
    ],
)
def test_fields_that_do_not_change_the_answer_leave_the_key_alone(params: dict[str, Any]) -> None:
    assert exact_key(request(params=params)) == exact_key(request())


def test_a_single_stop_string_equals_the_same_stop_in_a_list() -> None:
    one = request(params={"stop": "END"})
    listed = request(params={"stop": ["END"]})
    assert exact_key(one) == exact_key(listed)


def test_the_params_fingerprint_ignores_messages_but_not_model_params_or_scope() -> None:
    other_question = request(messages=[{"role": "user", "content": "Capital of Spain?"}])
    assert request_fingerprint(other_question) == request_fingerprint(request())
    assert request_fingerprint(request(model="other")) != request_fingerprint(request())
    assert request_fingerprint(request(scope="user:bob")) != request_fingerprint(request())
    assert request_fingerprint(request(params={})) != request_fingerprint(request())


def test_the_context_fingerprint_ignores_only_the_final_user_message() -> None:
    paraphrased = request(messages=[MESSAGES[0], {"role": "user", "content": "France's capital?"}])
    assert context_fingerprint(paraphrased) == context_fingerprint(request())
    other_system = request(messages=[{"role": "system", "content": "Be verbose."}, MESSAGES[1]])
    assert context_fingerprint(other_system) != context_fingerprint(request())


def test_point_ids_are_stable_uuids_of_the_key() -> None:
    key = exact_key(request())
    assert point_id(key) == point_id(exact_key(request()))
    assert point_id(key) != point_id(exact_key(request(model="x")))
    assert len(point_id(key)) == 36


def test_user_scope_is_per_subject_and_can_never_equal_the_shared_scope() -> None:
    assert cache_scope("user", "alice") != cache_scope("user", "bob")
    assert cache_scope("user", "shared") != cache_scope("shared", "alice")
    assert cache_scope("shared", "alice") == cache_scope("shared", "bob")


def test_user_scope_refuses_an_anonymous_caller() -> None:
    with pytest.raises(ValueError, match="subject"):
        cache_scope("user", None)
