"""Questions and paraphrases of them that the hashing embedder matches at the shipped threshold
(tests/unit/cache/test_bound.py checks that they do), for tests that need a sure semantic hit."""

from __future__ import annotations

QUESTIONS = [
    "How do I reset my password?",
    "How do I rotate my API key?",
    "What is the capital of Peru?",
    "Explain the CAP theorem in simple terms.",
]
PARAPHRASES = [
    "how can I reset my password",
    "how can I rotate my API key",
    "what's the capital of Peru",
    "explain the CAP theorem in simple terms please",
]
