"""Every line is one JSON object with the documented fields, whatever the values contain."""

from __future__ import annotations

import json
import logging
import re
import time

from opentelemetry.sdk.trace import TracerProvider

from llm_gateway.observability.context import request_id_var
from llm_gateway.observability.logging import _utc_timestamp
from tests.support.logs import capture_json_logs

REQUIRED_FIELDS = {
    "timestamp",
    "level",
    "logger",
    "message",
    "request_id",
    "trace_id",
    "span_id",
    "service",
    "pid",
}


def test_a_line_has_every_documented_field_and_the_event_fields() -> None:
    with capture_json_logs() as logs:
        logging.getLogger("llm_gateway.test").info("llm_request_started", extra={"model": "m1"})
    (record,) = logs.records
    assert record.keys() >= REQUIRED_FIELDS
    assert record["message"] == "llm_request_started"
    assert record["model"] == "m1"
    assert record["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["timestamp"])


def test_request_id_and_trace_ids_come_from_the_current_context() -> None:
    tracer = TracerProvider().get_tracer("test")
    token = request_id_var.set("req_0123456789abcdef")
    try:
        with capture_json_logs() as logs, tracer.start_as_current_span("work") as span:
            logging.getLogger("t").info("inside")
    finally:
        request_id_var.reset(token)
    (record,) = logs.records
    context = span.get_span_context()
    assert record["request_id"] == "req_0123456789abcdef"
    assert record["trace_id"] == format(context.trace_id, "032x")
    assert record["span_id"] == format(context.span_id, "016x")


def test_exceptions_become_a_traceback_field_not_extra_lines() -> None:
    with capture_json_logs() as logs:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("t").exception("failed")
    assert len(logs.raw_lines) == 1
    (record,) = logs.records
    assert record["error_type"] == "ValueError"
    assert "Traceback (most recent call last)" in record["exception"]
    assert "boom" in record["exception"]


def test_hostile_values_cannot_break_the_line() -> None:
    hostile = 'x\n{"level": "CRITICAL", "forged": true}\r\n\u2028' + "A" * 10_000
    with capture_json_logs() as logs:
        logging.getLogger("t").warning("odd_input", extra={"value": hostile})
    assert len(logs.raw_lines) == 1
    record = json.loads(logs.raw_lines[0])
    assert record["value"] == hostile
    assert record["level"] == "WARNING"
    assert "forged" not in record


def test_unserialisable_extras_are_stringified() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque-thing"

    with capture_json_logs() as logs:
        logging.getLogger("t").info("odd", extra={"thing": Opaque(), "ids": {1}})
    (record,) = logs.records
    assert record["thing"] == "opaque-thing"
    assert record["ids"] == [1]


def test_timestamps_stay_exact_across_second_and_day_boundaries() -> None:
    # Same second twice (the cached prefix), then the next second, then the next day.
    for created in (1_700_000_399.001, 1_700_000_399.999, 1_700_000_400.0, 1_700_006_400.5):
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(created)))
        millis = int((created - int(created)) * 1000)
        assert _utc_timestamp(created) == f"{expected}.{millis:03d}Z"
