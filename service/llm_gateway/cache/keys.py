"""Canonical cache keys.

The exact key is a sha256 over canonical JSON (orjson, sorted keys) of the model, the messages
(content exactly as sent), the sampling parameters that change the answer, and the scope. Two
requests get the same key only if an upstream model would be asked the very same thing by the
same tenant. The params fingerprint is the same hash without the messages: the semantic tier only
matches points that share it, so a paraphrase never crosses models, temperatures or tenants. The
context fingerprint adds what else must be equal for a semantic match: the earlier turns and the
numbers in the prompt.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from llm_gateway.cache.hashing import NUMBER_WORDS, normalize_text
from llm_gateway.cache.request import CacheRequest
from llm_gateway.chat_request import ANSWER_CHANGING_PARAMS

# Message fields that are part of the conversation the model sees, besides role and content.
_MESSAGE_FIELDS = ("role", "content", "name", "tool_calls", "tool_call_id")
_NUMBER_OR_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
# The embedder's spelled-out numbers (zero to twenty), and a few round ones it leaves as words.
_NUMBER_WORDS = NUMBER_WORDS | {
    "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000"
}  # fmt: skip
# Fixed namespace so point ids are stable across processes and releases.
_POINT_NAMESPACE = uuid.UUID("6f1c1d1e-2a7b-5c39-9d43-8e0b7a4c2f10")


def _canonical_params(params: Mapping[str, Any]) -> dict[str, Any]:
    canonical: dict[str, Any] = {}
    for name, value in params.items():
        # An explicit null means "provider default", the same as leaving the field out.
        if name not in ANSWER_CHANGING_PARAMS or value is None:
            continue
        if name == "stop" and isinstance(value, str):
            value = [value]  # "x" and ["x"] are the same stop sequence
        canonical[name] = value
    return canonical


def _canonical_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {name: message[name] for name in _MESSAGE_FIELDS if message.get(name) is not None}
        for message in messages
    ]


def _digest(document: Mapping[str, Any]) -> str:
    encoded = orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(encoded).hexdigest()


def params_fingerprint(model: str, params: Mapping[str, Any], scope: str) -> str:
    """Hash of everything in the exact key except the messages."""
    return _digest({"model": model, "params": _canonical_params(params), "scope": scope})


def exact_key(req: CacheRequest) -> str:
    return _digest(
        {
            "model": req.model,
            "messages": _canonical_messages(req.messages),
            "params": _canonical_params(req.params),
            "scope": req.scope,
        }
    )


def request_fingerprint(req: CacheRequest) -> str:
    return params_fingerprint(req.model, req.params, req.scope)


def context_fingerprint(req: CacheRequest) -> str:
    """Hash of the conversation around the prompt (every message but the final user message) and
    of the numbers in the prompt.

    The semantic tier requires it to be equal, so a paraphrased question only matches an answer
    given under the same system prompt and the same earlier turns ("and in Java?" asked after a
    Python question must not reuse the answer from another conversation), about the same numbers.
    """
    messages = _canonical_messages(req.messages)
    if messages and messages[-1].get("role") == "user":
        messages = messages[:-1]
    return _digest({"context": messages, "numbers": prompt_numbers(req.prompt_text)})


def prompt_numbers(text: str) -> list[str]:
    """The numbers in a prompt, in order. A semantic match requires the very same ones.

    An embedding scores "Explain item 17" and "Explain item 18" as near-identical (one token of
    many differs, for a lexical embedder and for most learned ones alike), yet the answers
    differ. Numbers are read after the embedder's normalisation ("2FA" and "two-factor" compare
    equal) and common number words count as their digits ("ten" is "10").
    """
    numbers = []
    for token in _NUMBER_OR_WORD.findall(normalize_text(text)):
        if token[0].isdigit():
            numbers.append(token)
        elif token in _NUMBER_WORDS:
            numbers.append(_NUMBER_WORDS[token])
    return numbers


def point_id(key: str) -> str:
    """Qdrant point id for an exact key: re-storing the same request overwrites its point."""
    return str(uuid.uuid5(_POINT_NAMESPACE, key))
