"""Capture the JSON lines the service writes, as parsed objects."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llm_gateway.observability.logging import JsonFormatter


class CapturedLogs:
    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def raw_lines(self) -> list[str]:
        return [line for line in self._stream.getvalue().splitlines() if line]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.raw_lines]

    def events(self, message: str) -> list[dict[str, Any]]:
        return [record for record in self.records if record["message"] == message]


@contextmanager
def capture_json_logs(level: int = logging.INFO) -> Iterator[CapturedLogs]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="llm-gateway"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield CapturedLogs(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


def parse_json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line must be a JSON object; raises with the offending line otherwise."""
    parsed = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from exc
        if not isinstance(value, dict):
            raise AssertionError(f"line {number} is not a JSON object: {line!r}")
        parsed.append(value)
    return parsed
