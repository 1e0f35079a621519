"""Embedders: unit vectors; rewordings close, meaning flips far; LiteLLM's answers checked."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from llm_gateway.cache.embedders import HashingEmbedder, LiteLLMEmbedder
from llm_gateway.errors import UpstreamError


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def hashing() -> HashingEmbedder:
    return HashingEmbedder()


async def test_hashing_vectors_are_unit_length_and_deterministic(hashing: HashingEmbedder) -> None:
    texts = ["How do I reset my password?", "", "!!!", "x" * 5000]
    first = await hashing.embed(texts)
    second = await HashingEmbedder().embed(texts)
    assert first == second
    for vector in first:
        assert len(vector) == hashing.dimensions
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("How do I reset my password?", "how can I reset my password", id="reword"),
        pytest.param(
            "Turn on 2FA for my account",
            "Enable two-factor authentication for my account",
            id="phrasal",
        ),
        pytest.param("Why doesn't my build work?", "Why does my build not work?", id="contraction"),
    ],
)
async def test_rewordings_that_share_vocabulary_score_high(
    hashing: HashingEmbedder, a: str, b: str
) -> None:
    va, vb = await hashing.embed([a, b])
    assert cosine(va, vb) >= 0.92


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("How do I enable 2FA?", "How do I disable 2FA?", id="enable-disable"),
        pytest.param("Pancakes with eggs", "Pancakes without eggs", id="with-without"),
        pytest.param("Is the API rate limited?", "Is the API not rate limited?", id="is-not"),
        pytest.param("Add a user to the group", "Remove a user from the group", id="add-remove"),
        pytest.param("Take it before meals", "Take it after meals", id="before-after"),
        pytest.param("Sum of 3 and 5", "Sum of 3 and 6", id="number"),
        pytest.param("Give me five ideas", "Give me ten ideas", id="number-word"),
    ],
)
async def test_meaning_flips_score_low(hashing: HashingEmbedder, a: str, b: str) -> None:
    va, vb = await hashing.embed([a, b])
    assert cosine(va, vb) < 0.8


def test_hashing_refuses_too_few_dimensions() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        HashingEmbedder(dimensions=8)


class FakeEmbeddings:
    """Stands in for LiteLLMClient.embeddings: answers `vectors` in reverse index order."""

    def __init__(self, vectors: list[list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[tuple[str, list[str]]] = []

    async def embeddings(self, model: str, inputs: list[str]) -> dict[str, Any]:
        self.calls.append((model, inputs))
        data = [{"index": i, "embedding": v} for i, v in reversed(list(enumerate(self.vectors)))]
        return {"data": data, "model": model}


async def test_litellm_embedder_asks_for_the_texts_and_returns_ordered_unit_vectors() -> None:
    source = FakeEmbeddings([[3.0, 4.0], [0.0, 2.0]])
    embedder = LiteLLMEmbedder(source, "text-embedding-3-small")
    vectors = await embedder.embed(["first", "second"])
    assert vectors == [[0.6, 0.8], [0.0, 1.0]]
    assert embedder.dimensions == 2
    assert embedder.name == "litellm-text-embedding-3-small"
    assert source.calls == [("text-embedding-3-small", ["first", "second"])]


@pytest.mark.parametrize(
    ("vectors", "dimensions", "message"),
    [
        pytest.param([], None, "asked for 1", id="no-vectors"),
        pytest.param([[0.0, 0.0]], None, "zero", id="zero-vector"),
        pytest.param([[1.0, 0.0, 0.0]], 2, "expected 2", id="dimension-changed"),
    ],
)
async def test_litellm_embedder_raises_on_bad_answers(
    vectors: list[list[float]], dimensions: int | None, message: str
) -> None:
    embedder = LiteLLMEmbedder(FakeEmbeddings(vectors), "m", dimensions=dimensions)
    with pytest.raises(UpstreamError, match=message):
        await embedder.embed(["text"])


async def test_litellm_embedder_asks_nothing_for_no_texts() -> None:
    source = FakeEmbeddings([[1.0]])
    assert await LiteLLMEmbedder(source, "m").embed([]) == []
    assert source.calls == []


def test_prompts_that_differ_only_in_a_number_do_not_match_among_thousands() -> None:
    # One hash bucket per number made ~97 % of such prompts match some other cached number once
    # 4000 were cached (bucket collisions); numbers now spread over several buckets.
    embedder = HashingEmbedder()
    template = "What is {} times 7?"
    stored = np.array([embedder.embed_one(template.format(n)) for n in range(2000)])
    queries = np.array([embedder.embed_one(template.format(n)) for n in range(5000, 5200)])
    best = np.einsum("qd,sd->qs", queries, stored).max(axis=1)
    assert float(best.max()) < 0.90
