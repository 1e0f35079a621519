"""Semantic cache quality: hit rate on paraphrases, false-hit rate on non-paraphrases.

    .venv/bin/python -m bench.semantic_quality [--out bench/semantic_quality.json]

For every embedder the project offers that can run offline, each labelled pair in
tests/data/semantic_pairs.jsonl is embedded and its cosine similarity computed (the vectors are
unit length, so a dot product). At threshold t a pair "hits" when similarity >= t, which is the
rule the cache applies (SEMANTIC_CACHE_THRESHOLD), together with its number rule: prompts whose
numbers differ never match (cache/keys.py `prompt_numbers`), so such pairs count as misses.
Hit rate = hits among paraphrases; false-hit rate = hits among non-paraphrases (negations, other
topics), the answers a user would be served for a question they did not ask. The recommended
threshold is the lowest one whose false-hit rate is zero (every false hit is a wrong answer; a
missed paraphrase only costs one upstream call).

LiteLLMEmbedder is not evaluated: offline, the only embedding model the stack ships is a mock
whose vectors carry no meaning, so any figure would describe the mock, not the embedder.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from llm_gateway.cache.hashing import HashingEmbedder
from llm_gateway.cache.keys import prompt_numbers
from llm_gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "tests" / "data" / "semantic_pairs.jsonl"
THRESHOLDS = [round(0.50 + 0.01 * i, 2) for i in range(50)]  # 0.50 .. 0.99


def load_pairs(path: Path = PAIRS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def similarities(embedder: HashingEmbedder, pairs: list[dict[str, Any]]) -> list[float]:
    """Cosine per pair; -1 where the cache's number rule forbids the match whatever the score."""
    scores = []
    for pair in pairs:
        if prompt_numbers(pair["a"]) != prompt_numbers(pair["b"]):
            scores.append(-1.0)
            continue
        a, b = embedder.embed_sync([pair["a"], pair["b"]])
        scores.append(sum(x * y for x, y in zip(a, b, strict=True)))
    return scores


def curve(pairs: list[dict[str, Any]], scores: list[float]) -> list[dict[str, float]]:
    same = [s for s, p in zip(scores, pairs, strict=True) if p["same"]]
    different = [s for s, p in zip(scores, pairs, strict=True) if not p["same"]]
    rows = []
    for threshold in THRESHOLDS:
        rows.append(
            {
                "threshold": threshold,
                "hit_rate": sum(s >= threshold for s in same) / len(same),
                "false_hit_rate": sum(s >= threshold for s in different) / len(different),
            }
        )
    return rows


def false_hits_by_kind(
    pairs: list[dict[str, Any]], scores: list[float], threshold: float
) -> dict[str, int]:
    kinds: Counter[str] = Counter()
    for pair, score in zip(pairs, scores, strict=True):
        if not pair["same"] and score >= threshold:
            kinds[pair.get("kind", "other")] += 1
    return dict(kinds)


def evaluate() -> dict[str, Any]:
    pairs = load_pairs()
    shipped = float(Settings.model_fields["semantic_cache_threshold"].default)
    embedder = HashingEmbedder()
    scores = similarities(embedder, pairs)
    rows = curve(pairs, scores)
    safe = [row for row in rows if row["false_hit_rate"] == 0.0]
    recommended = safe[0] if safe else rows[-1]
    at_shipped = min(rows, key=lambda row: abs(row["threshold"] - shipped))
    # The least similar paraphrase still above the threshold (with a small margin): a real
    # paraphrase, not a near-copy.
    best_pair = min(
        (
            (score, pair)
            for score, pair in zip(scores, pairs, strict=True)
            if pair["same"] and score >= shipped + 0.005
        ),
        key=lambda item: item[0],
        default=None,
    )
    return {
        "pairs": len(pairs),
        "paraphrases": sum(p["same"] for p in pairs),
        "non_paraphrases": sum(not p["same"] for p in pairs),
        "kinds": dict(Counter(p.get("kind", "other") for p in pairs)),
        "shipped_threshold": shipped,
        "embedders": {
            embedder.name: {
                "curve": rows,
                "recommended": recommended,
                "at_shipped": at_shipped,
                "false_hits_at_shipped_by_kind": false_hits_by_kind(pairs, scores, shipped),
                "false_hits_at_recommended_by_kind": false_hits_by_kind(
                    pairs, scores, recommended["threshold"]
                ),
            }
        },
        "not_evaluated": {
            "litellm": "offline the stack's only embedding model is a mock returning meaningless "
            "vectors; evaluate LiteLLMEmbedder against a real embedding model"
        },
        # A paraphrase pair the hashing embedder matches at the shipped threshold: the benchmark
        # primes the cache with `a` and measures semantic hits with `b`.
        "hit_pair": None if best_pair is None else {**best_pair[1], "similarity": best_pair[0]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.semantic_quality")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "semantic_quality.json")
    args = parser.parse_args()
    result = evaluate()
    args.out.write_text(json.dumps(result, indent=2))
    for name, figures in result["embedders"].items():
        rec, shipped = figures["recommended"], figures["at_shipped"]
        print(
            f"{name}: recommended {rec['threshold']} (hit {rec['hit_rate']:.0%}, false "
            f"{rec['false_hit_rate']:.0%}); shipped {shipped['threshold']} (hit "
            f"{shipped['hit_rate']:.0%}, false {shipped['false_hit_rate']:.0%})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
