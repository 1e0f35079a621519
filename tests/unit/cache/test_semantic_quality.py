"""How well the offline HashingEmbedder separates paraphrases from hard negatives.

tests/data/semantic_pairs.jsonl holds hand-labelled prompt pairs: paraphrases (should hit) and
hard negatives (negations, swapped entities and numbers, same topic with another ask, other
topics) that must not. At the shipped SEMANTIC_CACHE_THRESHOLD a wrong answer served from the
cache is the failure that matters, so false hits are held to <= 2%; the paraphrase hit rate is
whatever a lexical method manages, asserted against the floor measured when it was tuned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from llm_gateway.cache.hashing import HashingEmbedder
from llm_gateway.settings import Settings

PAIRS_FILE = Path(__file__).parents[2] / "data" / "semantic_pairs.jsonl"
KINDS = {"paraphrase", "negation", "different_topic", "entity_swap", "near_miss"}
MAX_FALSE_HIT_RATE = 0.02
# Measured at 0.92 when the embedder was tuned: 29/65 paraphrases (44.6%).
PARAPHRASE_HIT_FLOOR = 0.40


@dataclass(frozen=True)
class ScoredPair:
    a: str
    b: str
    same: bool
    kind: str
    similarity: float


def shipped_threshold() -> float:
    default = Settings.model_fields["semantic_cache_threshold"].default
    assert isinstance(default, float)
    return default


@pytest.fixture(scope="module")
def scored() -> list[ScoredPair]:
    embedder = HashingEmbedder()
    pairs = [json.loads(line) for line in PAIRS_FILE.read_text().splitlines() if line.strip()]
    vectors_a = np.array(embedder.embed_sync([p["a"] for p in pairs]))
    vectors_b = np.array(embedder.embed_sync([p["b"] for p in pairs]))
    similarities = (vectors_a * vectors_b).sum(axis=1)
    return [
        ScoredPair(p["a"], p["b"], p["same"], p["kind"], float(s))
        for p, s in zip(pairs, similarities, strict=True)
    ]


def rates(pairs: list[ScoredPair], threshold: float) -> tuple[float, float]:
    """(paraphrase hit rate, false hit rate on hard negatives) at a threshold."""
    positives = [p for p in pairs if p.same]
    negatives = [p for p in pairs if not p.same]
    hit = sum(p.similarity >= threshold for p in positives) / len(positives)
    false_hit = sum(p.similarity >= threshold for p in negatives) / len(negatives)
    return hit, false_hit


def test_the_labelled_set_is_large_and_well_formed(scored: list[ScoredPair]) -> None:
    assert len(scored) >= 150
    assert {p.kind for p in scored} == KINDS
    assert all(p.same == (p.kind == "paraphrase") for p in scored)
    assert len({(p.a, p.b) for p in scored}) == len(scored)
    negatives = [p for p in scored if not p.same]
    assert sum(p.kind == "negation" for p in negatives) >= 25


def test_the_shipped_threshold_rarely_serves_a_wrong_answer(scored: list[ScoredPair]) -> None:
    threshold = shipped_threshold()
    hit, false_hit = rates(scored, threshold)
    curve = ", ".join(
        "t={:.2f}: hit {:.1%} false {:.1%}".format(t, *rates(scored, t))
        for t in (0.80, 0.85, 0.88, 0.90, 0.92, 0.95)
    )
    print(f"\nHashingEmbedder at {threshold}: paraphrase hit {hit:.1%}, false hit {false_hit:.1%}")
    print(f"curve: {curve}")
    assert false_hit <= MAX_FALSE_HIT_RATE
    assert hit >= PARAPHRASE_HIT_FLOOR


@pytest.mark.parametrize("kind", ["negation", "entity_swap", "near_miss", "different_topic"])
def test_every_kind_of_hard_negative_stays_below_the_threshold(
    scored: list[ScoredPair], kind: str
) -> None:
    above = [p for p in scored if p.kind == kind and p.similarity >= shipped_threshold()]
    assert above == []


def test_meaning_flips_lose_most_of_their_similarity(scored: list[ScoredPair]) -> None:
    negations = [p.similarity for p in scored if p.kind == "negation"]
    paraphrases = [p.similarity for p in scored if p.kind == "paraphrase"]
    assert max(negations) < 0.8
    assert float(np.median(negations)) < float(np.median(paraphrases)) - 0.3
