"""Reading the small credential lists (users, API keys) from JSON or YAML, with boot-time errors.

Both lists are `[{...}, ...]` documents. Every problem is collected as one line naming the
source and the entry, so an operator fixes them all in one pass; values are never echoed, since
a misplaced secret could be among them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from llm_gateway.auth.principal import ROLES


def parse_document(text: str, source: str, *, yaml_allowed: bool) -> tuple[list[Any], list[str]]:
    """The list in `text` (JSON, or YAML when allowed), or the problems that prevent reading it."""
    try:
        document: Any = yaml.safe_load(text) if yaml_allowed else json.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        near = f" near line {mark.line + 1}" if mark is not None else ""
        return [], [f"{source} is not valid YAML{near}"]
    except json.JSONDecodeError as exc:
        return [], [f"{source} is not valid JSON near line {exc.lineno}"]
    if document is None:
        return [], []
    if not isinstance(document, list):
        return [], [f"{source} must be a list of entries, got {type(document).__name__}"]
    return document, []


def read_file(path: Path, setting: str) -> tuple[list[Any], list[str]]:
    source = f"{setting} {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [], [f"{source} cannot be read: {exc.strerror or exc}"]
    yaml_allowed = path.suffix.lower() != ".json"
    return parse_document(text, source, yaml_allowed=yaml_allowed)


def check_entry(
    entry: Any,
    *,
    source: str,
    index: int,
    name_key: str,
    required: Iterable[str],
) -> tuple[Mapping[str, Any] | None, list[str]]:
    """The entry when its shape is right (required string fields, known keys, a valid role)."""
    label = f"{source} entry {index}"
    if not isinstance(entry, Mapping):
        return None, [f"{label} must be a mapping, got {type(entry).__name__}"]
    name = entry.get(name_key)
    if isinstance(name, str) and name:
        label = f"{label} ({name})"
    required = tuple(required)
    problems: list[str] = []
    for key in required:
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{label}: '{key}' must be a non-empty string")
    unknown = sorted(str(key) for key in entry if key not in required)
    if unknown:
        problems.append(f"{label}: unknown keys {unknown}; allowed: {list(required)}")
    role = entry.get("role")
    if isinstance(role, str) and role not in ROLES:
        problems.append(f"{label}: role must be one of {sorted(ROLES)}, got {role!r}")
    return (None if problems else entry), problems
