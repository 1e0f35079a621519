"""Prompt-injection heuristics: named regular expressions over normalised user text.

These are heuristics, not a classifier. They catch the common, literal attacks (instruction
overrides, role hijacks, system-prompt extraction, forged chat-role markers) cheaply and
predictably, and say which rule fired so a refused caller and an operator both know why. An
attacker who paraphrases will get past them; the model's own alignment and the upstream's
moderation remain the next lines of defence.

Only text the end user controls is scanned (the prompt and `user` messages): system prompts
are written by the calling team itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llm_gateway.errors import ConfigurationError

# Zero-width and bidi control characters are invisible to a reader and used to split keywords.
_INVISIBLE = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u202a\u202b\u202c\u202d\u202e"), None
)
_SPACES = re.compile(r"\s+")

_WINDOW = r"[^.!?\n]{0,60}?"
BUILTIN_RULES: tuple[tuple[str, str], ...] = (
    (
        "instruction_override",
        rf"\b(ignore|disregard|forget|override|bypass|skip)\b{_WINDOW}"
        rf"\b(previous|prior|preceding|above|earlier|all|any|your|the|system)\b{_WINDOW}"
        r"\b(instructions?|prompts?|rules|directions|directives|guidelines|constraints)\b",
    ),
    (
        "role_hijack",
        r"\b(you are now|from now on,? you are|act as|pretend to be|pretend you are|roleplay as)\b"
        rf"{_WINDOW}\b(dan|unfiltered|unrestricted|uncensored|jailbroken|evil|without (any )?"
        r"(rules|restrictions|limits|filters))\b"
        r"|\b(developer|god|jailbreak|dan) mode\b|\bdo anything now\b",
    ),
    (
        "system_prompt_extraction",
        r"\b(reveal|show|print|repeat|output|display|leak|dump|tell me|what (is|are|was|were))\b"
        rf"{_WINDOW}\b(your|(the|this) (hidden|secret|original|initial|real))\s+"
        r"((original|initial|hidden|secret|real|full|exact|complete) )?"
        r"(system prompt|system message|prompt|instructions|rules|guidelines)\b",
    ),
    (
        "forged_role_marker",
        r"<\|im_start\|>\s*system|<\|system\|>|\[/?inst\]|<<sys>>|"
        r"(^|\n)\s*#{0,3}\s*(system|assistant)\s*:\s*\S",
    ),
)


def normalise(text: str) -> str:
    """NFKC (folds full-width and styled letters), drop invisible characters, lower-case."""
    folded = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).casefold()
    # Keep newlines (role markers are line-anchored) but collapse runs of other whitespace.
    return "\n".join(_SPACES.sub(" ", line).strip() for line in folded.splitlines())


@dataclass(frozen=True, slots=True)
class InjectionFinding:
    rule: str
    excerpt: str


class InjectionDetector:
    def __init__(self, rules: Sequence[tuple[str, str]]) -> None:
        self._rules = [(name, re.compile(pattern)) for name, pattern in rules]

    @property
    def rule_names(self) -> list[str]:
        return [name for name, _ in self._rules]

    @classmethod
    def with_patterns_file(cls, path: Path | None) -> InjectionDetector:
        """The built-in rules plus one `custom` rule per line of `path` (skips blanks and #)."""
        rules = list(BUILTIN_RULES)
        if path is None:
            return cls(rules)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigurationError(
                [f"INJECTION_PATTERNS_FILE {path} cannot be read: {exc.strerror}"]
            ) from None
        problems = []
        for number, line in enumerate(lines, start=1):
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(f"INJECTION_PATTERNS_FILE line {number}: invalid regex: {exc}")
                continue
            rules.append((f"custom_{number}", pattern.casefold()))
        if problems:
            raise ConfigurationError(problems)
        return cls(rules)

    def scan(self, texts: Iterable[str]) -> InjectionFinding | None:
        for text in texts:
            clean = normalise(text)
            for name, pattern in self._rules:
                match = pattern.search(clean)
                if match:
                    return InjectionFinding(rule=name, excerpt=match.group(0).strip()[:80])
        return None
