"""The shipped labelled pairs (tests/data/semantic_pairs.jsonl) through the whole ResponseCache
on its embedded store, not through the embedder alone: store `a`, look up `b`, count hits.

    .venv/bin/python -m bench.semantic_through_cache                  # this tree
    PYTHONPATH=/tmp/base/service .venv/bin/python -m bench.semantic_through_cache   # another

Run on two trees, it shows whether a change of store changed what the semantic tier serves:
each pair gets its own tenant scope (no pair can match another's answer), at the shipped
threshold, with the hashing embedder. Prints hits on paraphrases and false hits on the rest.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from llm_gateway.cache.embedders import HashingEmbedder
from llm_gateway.cache.request import CacheRequest
from llm_gateway.cache.response_cache import ResponseCache

PAIRS = Path(__file__).resolve().parents[1] / "tests" / "data" / "semantic_pairs.jsonl"
SHIPPED_THRESHOLD = 0.90


def request(prompt: str, scope: str) -> CacheRequest:
    return CacheRequest(
        model="m",
        messages=[{"role": "user", "content": prompt}],
        scope=scope,
        prompt_text=prompt,
        params={"temperature": 0.0},
    )


async def evaluate() -> dict[str, Any]:
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    cache = ResponseCache(
        embedder=HashingEmbedder(),
        metrics=None,
        ttl_seconds=3600,
        timeout=5.0,
        semantic_enabled=True,
        semantic_threshold=SHIPPED_THRESHOLD,
        collection="quality",
        data_dir=Path(tempfile.mkdtemp(prefix="semantic-through-cache-")),
        max_entries=len(pairs) + 1,
    )
    await cache.open()
    hits = {"paraphrase": 0, "false": 0}
    try:
        for n, pair in enumerate(pairs):
            scope = f"pair-{n}"
            await cache.store(request(pair["a"], scope), {"answer": n})
            hit = await cache.lookup(request(pair["b"], scope))
            if hit is not None and hit.tier == "semantic":
                hits["paraphrase" if pair["same"] else "false"] += 1
    finally:
        await cache.close()
    same = sum(1 for p in pairs if p["same"])
    return {"pairs": len(pairs), "paraphrases": same, "negatives": len(pairs) - same, **hits}


def main() -> int:
    result = asyncio.run(evaluate())
    sys.stdout.write(
        f"threshold {SHIPPED_THRESHOLD}: semantic hits on {result['paraphrase']}/"
        f"{result['paraphrases']} paraphrases, false hits on {result['false']}/"
        f"{result['negatives']} non-paraphrases\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
