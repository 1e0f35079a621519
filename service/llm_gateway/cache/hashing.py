"""HashingEmbedder: the offline default embedder of the semantic cache.

What it is: lexical feature hashing. A prompt is normalised (Unicode NFKC, lower case, contractions
expanded, a few phrasal verbs folded: "turn off" -> disable), split into words, lightly stemmed,
and turned into features: word unigrams, word bigrams, character n-grams of each word (so
"summarize"/"summary"/"summarise" overlap), and numbers as heavy features of their own. Each
feature is hashed to one of `dimensions` buckets with a hash-derived sign (the signed hashing
trick), and the vector is L2-normalised, so cosine similarity is a dot product.

Meaning-flipping words get a separate, heavy block of features: negations (not, no, never,
without, ...) together with the word they govern, and polarity verbs and adverbs (enable/disable,
allow/deny, add/remove, increase/decrease, before/after, ...). Two prompts that differ only in
such a word therefore lose a large share of their similarity instead of a few percent.

What it is not: a language model. It needs no download and costs microseconds, and it matches
rewordings that share vocabulary ("How do I reset my password?" / "how can I reset my
password"). It misses synonyms and paraphrases that share no words ("car" / "automobile"), and it
cannot tell that two texts with the same words in another order mean different things. Use
EMBEDDER=litellm with a real embedding model when paraphrase recall matters.

Its weights were tuned on tests/data/semantic_pairs.jsonl, which was written by the same hand, so
the rates measured there (tests/unit/cache/test_semantic_quality.py) flatter it for real traffic.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import re
import unicodedata
from functools import lru_cache

DEFAULT_DIMENSIONS = 512
# Prompts longer than this are embedded in a worker thread so the event loop keeps serving.
_INLINE_CHARS = 2000


def _word_list(words: str) -> list[str]:
    return words.split()


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Each rewrite carries the literals one of which any match must contain: a prompt without them
# skips the regex (most prompts hold none of these), with the same result.
_CONTRACTIONS = (
    (re.compile(r"\bcan't\b|\bcannot\b"), "can not", ("can't", "cannot")),
    (re.compile(r"\bwon't\b"), "will not", ("won't",)),
    (re.compile(r"\bshan't\b"), "shall not", ("shan't",)),
    (re.compile(r"n't\b"), " not", ("n't",)),
    (re.compile(r"'(?:s|re|ve|ll|d|m)\b"), "", ("'",)),
)
# Phrases folded into one canonical word so common rewordings share a feature.
_PHRASES = (
    (re.compile(r"\b(?:turn|switch|toggle)(?:ing|ed|s)? on\b"), "enable", (" on",)),
    (re.compile(r"\b(?:turn|switch|toggle)(?:ing|ed|s)? off\b"), "disable", (" off",)),
    (re.compile(r"\b(?:log|sign)(?:ging|ged|s)? ?in(?:to)?\b"), "login", ("log", "sign")),
    (re.compile(r"\b(?:log|sign)(?:ging|ged|s)? ?out\b"), "logout", ("log", "sign")),
    (re.compile(r"\bset(?:ting|s)? up\b"), "setup", ("set",)),
    (re.compile(r"\bget rid of\b"), "remove", ("get rid of",)),
    (
        re.compile(r"\btwo[- ]factor(?: authentication)?\b|\b2fa\b|\bmfa\b"),
        "2fa",
        ("factor", "2fa", "mfa"),
    ),
)
_REWRITES = (*_CONTRACTIONS, *_PHRASES)
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:[+#]+)?")

NEGATORS = frozenset(
    {"not", "no", "never", "without", "none", "nobody", "nothing", "neither", "nor", "nowhere"}
)
# Words whose opposite is a different request. Each stands for itself in the polarity block,
# so "enable" and "disable" land on different heavy features.
POLARITY_WORDS = frozenset(
    {
        "enable", "disable", "allow", "deny", "block", "unblock", "permit", "forbid",
        "add", "remove", "delete", "insert", "increase", "decrease", "reduce", "raise",
        "lower", "before", "after", "start", "stop", "open", "close", "include", "exclude",
        "encrypt", "decrypt", "encode", "decode", "upload", "download", "import", "export",
        "install", "uninstall", "lock", "unlock", "show", "hide", "max", "min", "maximum",
        "minimum", "more", "less", "higher", "faster", "slower", "buy", "sell", "accept",
        "reject", "ascending", "descending", "true", "false", "first", "last", "push",
        "pull", "compress", "decompress", "subscribe", "unsubscribe", "connect",
        "disconnect", "login", "logout", "serialize", "deserialize", "grant", "revoke",
        "upgrade", "downgrade", "expand", "collapse", "above", "below", "over", "under",
        "always", "only", "pros", "cons", "advantages", "disadvantages", "benefits", "risks",
        "best", "worst", "cheapest", "oldest", "newest", "largest", "smallest", "positive",
        "negative", "formal", "informal", "shorter", "longer", "simpler",
    }
)  # fmt: skip
STOPWORDS = _word_set(
    """a an the and or but if then so of to in on at by for from with as into onto about is are
    was were be been being am do does did doing have has had having i me my mine we us our you
    your yours he she it its they them their this that these those there here what which who whom
    whose can could would should will shall may might must please kindly hi hello hey thanks
    thank just also really very some any all each every own same other such than too quite
    tell give let get got make way how im ive id like need want one"""
)
# Request boilerplate that says little about what is asked; it weighs less than content words.
GENERIC_WORDS = _word_set(
    """write explain describe tell show list generate create compose provide help know question
    answer example simple simply term word words short brief following text use using work
    possible mean meaning best good"""
)
_GENERIC_WEIGHT = 0.4
# Spelled-out numbers become digits so "ten" and "10" match and "five" vs "ten" weighs heavily.
NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        _word_list(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
        )
    )
}
_SUFFIXES = ("ations", "ation", "ising", "izing", "ings", "ing", "ised", "ized", "ises", "izes",
             "ise", "ize", "ies", "ied", "ly", "ed", "s", "y")  # fmt: skip

# Block weights (tuned on tests/data/semantic_pairs.jsonl; see tests/unit/cache).
_BIGRAM_WEIGHT = 0.8
_CHAR_BLOCK_WEIGHT = 0.55
_NUMBER_WEIGHT = 2.5
_NUMBER_HASHES = 3
_NEGATION_WEIGHT = 1.0
_NEGATION_REACH = 2  # content words on each side a negator governs
_POLARITY_SHARE = 0.6  # squared share of the vector's mass the polarity block may hold


@lru_cache(maxsize=8192)
def _stem(word: str) -> str:
    if word in POLARITY_WORDS or len(word) <= 4:
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)]
            break
    # A final "e" is dropped so reverse / reverses / reversed / reversing share one stem.
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


@lru_cache(maxsize=8192)  # bounded: every unique prompt adds features
def _bucket(feature: str, dimensions: int) -> tuple[int, float]:
    digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
    return digest % dimensions, (1.0 if digest >> 63 else -1.0)


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    for pattern, replacement, literals in _REWRITES:
        for literal in literals:
            if literal in text:
                text = pattern.sub(replacement, text)
                break
    return text


def _features(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """(lexical features, polarity features), each as feature -> weight."""
    tokens = _TOKEN.findall(normalize_text(text))
    lexical: dict[str, float] = {}
    polarity: dict[str, float] = {}
    content: list[str] = []
    negations: list[int] = []  # positions in `content` where a negator stood
    for token in tokens:
        if token in NEGATORS:
            polarity["neg"] = _NEGATION_WEIGHT
            negations.append(len(content))
            continue
        token = NUMBER_WORDS.get(token, token)
        if token in STOPWORDS:
            continue
        is_number = token[0].isdigit()
        word = token if is_number else _stem(token)
        content.append(word)
        if is_number:
            # Spread over a few buckets with the same total weight: with one bucket, among
            # thousands of cached prompts that differ only in a number, some other number shares
            # it and its answer is served (a false hit for ~97 % of such prompts once 4000 were
            # cached); a full collision over three buckets is a few in a million.
            for copy in range(_NUMBER_HASHES):
                lexical[f"n:{word}#{copy}"] = _NUMBER_WEIGHT * _NUMBER_HASHES**-0.5
        else:
            weight = _GENERIC_WEIGHT if token in GENERIC_WORDS or word in GENERIC_WORDS else 1.0
            lexical[f"w:{word}"] = weight
            grams = _word_grams(word)
            share = weight * _CHAR_BLOCK_WEIGHT / max(1, len(grams)) ** 0.5
            for gram in grams:
                lexical[gram] = lexical.get(gram, 0.0) + share
        if word in POLARITY_WORDS:
            polarity[f"p:{word}"] = 1.0
    # A negator governs the content words around it: "doesn't my build work" and "does my build
    # not work" place it differently but negate the same words.
    for position in negations:
        for word in content[max(0, position - _NEGATION_REACH) : position + _NEGATION_REACH]:
            polarity[f"neg>{word}"] = _NEGATION_WEIGHT
    for left, right in itertools.pairwise(content):
        lexical[f"b:{left}_{right}"] = _BIGRAM_WEIGHT
    return lexical, polarity


def _char_grams(word: str) -> list[str]:
    return [word[i : i + n] for n in (3, 4) for i in range(len(word) - n + 1)]


@lru_cache(maxsize=8192)
def _word_grams(word: str) -> tuple[str, ...]:
    return tuple(f"c:{gram}" for gram in _char_grams(f"<{word}>"))


def _hashed(features: dict[str, float], dimensions: int) -> dict[int, float]:
    """The signed-hashing vector of `features` as {bucket: value}, L2-normalised.

    Sparse plain floats, not numpy: a prompt fills a few dozen of the buckets, and importing
    numpy would cost every worker ~24 MB of RSS for this alone.
    """
    vector: dict[int, float] = {}
    for feature, weight in features.items():
        index, sign = _bucket(feature, dimensions)
        vector[index] = vector.get(index, 0.0) + sign * weight
    return _normalised(vector)


def _normalised(vector: dict[int, float]) -> dict[int, float]:
    norm = math.sqrt(math.fsum(value * value for value in vector.values()))
    return {index: value / norm for index, value in vector.items()} if norm > 0 else vector


class HashingEmbedder:
    """Offline lexical embedder (see the module docstring for what it can and cannot match)."""

    def __init__(self, dimensions: int = DEFAULT_DIMENSIONS) -> None:
        if dimensions < 64:
            raise ValueError("HashingEmbedder needs at least 64 dimensions")
        self.dimensions = dimensions
        self.name = f"hashing-v1-{dimensions}"

    def embed_one(self, text: str) -> list[float]:
        lexical, polarity = _features(text)
        sparse = _hashed(lexical, self.dimensions)
        if polarity:
            # The polarity block is normalised on its own and mixed in at a fixed share, so a
            # lone "not" weighs as much in a long prompt as in a short one.
            keep, mix = math.sqrt(1 - _POLARITY_SHARE), math.sqrt(_POLARITY_SHARE)
            mixed = {index: keep * value for index, value in sparse.items()}
            for index, value in _hashed(polarity, self.dimensions).items():
                mixed[index] = mixed.get(index, 0.0) + mix * value
            sparse = _normalised(mixed)
        vector = [0.0] * self.dimensions
        for index, value in sparse.items():
            vector[index] = value
        if not any(vector):
            # Text with no usable features (empty, punctuation): a fixed, valid unit vector.
            vector[0] = 1.0
        return vector

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if sum(len(text) for text in texts) <= _INLINE_CHARS:
            return self.embed_sync(texts)
        return await asyncio.to_thread(self.embed_sync, texts)
