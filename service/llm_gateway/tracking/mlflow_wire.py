"""MLflow's wire format for a `TraceRecord`: one OTLP root span that carries the whole trace.

MLflow 3's OTLP endpoint (`POST /v1/traces`) creates the trace info itself from the root span: its
state from the span status, its token usage from `mlflow.chat.tokenUsage`, its user from `user.id`
and its tags from `mlflow.traceTag.<key>` attributes. So one request per batch is the whole upload
(no StartTraceV3 per record: that was one more round trip per trace, the cost this format avoids).

Kept apart from the HTTP client because importing mlflow costs seconds: `MlflowExporter` imports
this module on its first export, in its worker thread, so neither import time nor a worker's
startup pays for it (and a gateway without MLFLOW_TRACKING_URI never loads mlflow at all).
"""

from __future__ import annotations

from typing import Any

from mlflow.entities import SpanType
from mlflow.tracing.constant import SpanAttributeKey, TraceTagKey
from mlflow.tracing.utils.otlp import _set_otel_proto_anyvalue
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as OtlpStatus

from llm_gateway.tracking.records import TraceRecord

# The one gateway tag: the request id, the join key with the gateway's logs (search filter
# tags.request_id = '...'). The rest of a trace is searchable without a tag of its own, and each
# tag costs the server a read and a write per trace (~0.55 ms of CPU, bench/RESULTS.md): the
# status is the trace's state (trace.status), the user MLflow's user metadata (from `user.id`),
# the record id the trace id, the model and the cache tier span attributes (README, "Traces").
REQUEST_ID_TAG = "request_id"


def _span_id_for(record: TraceRecord) -> int:
    # 64 bits of the record id: deterministic, so a replay upserts the same span.
    return int(record.record_id[16:], 16) or 1


def _usage(record: TraceRecord) -> dict[str, int] | None:
    if record.prompt_tokens is None and record.completion_tokens is None:
        return None
    prompt = record.prompt_tokens or 0
    completion = record.completion_tokens or 0
    total = record.total_tokens if record.total_tokens is not None else prompt + completion
    return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": total}


def span_attributes(record: TraceRecord) -> dict[str, Any]:
    """The root span's attributes, as MLflow reads them (its trace info comes from these)."""
    attributes: dict[str, Any] = {
        SpanAttributeKey.REQUEST_ID: record.trace_id,
        SpanAttributeKey.SPAN_TYPE: SpanType.CHAT_MODEL,
        SpanAttributeKey.INPUTS: record.inputs,
        SpanAttributeKey.OUTPUTS: record.outputs,
        SpanAttributeKey.MODEL: record.model_used or record.model_requested,
        "gateway.model_requested": record.model_requested,
        "gateway.model_used": record.model_used,
        "gateway.endpoint": record.endpoint,
        "gateway.latency_ms": record.latency_ms,
        "gateway.status": record.status,
        "gateway.cache_tier": record.cache_tier,
        "gateway.stream": record.stream,
        "gateway.attempts": record.attempts,
        "gateway.cost": record.cost,
        "gateway.request_id": record.request_id,
        "gateway.user": record.user,
    }
    if (usage := _usage(record)) is not None:
        attributes[SpanAttributeKey.CHAT_USAGE] = usage
    if record.user:
        attributes["user.id"] = record.user
    if record.error is not None:
        attributes["gateway.error"] = {"type": record.error.type, "message": record.error.message}
    tags = {TraceTagKey.TRACE_NAME: f"llm.{record.endpoint}", REQUEST_ID_TAG: record.request_id}
    attributes.update({f"{SpanAttributeKey.TRACE_TAG_PREFIX}{k}": v for k, v in tags.items()})
    return attributes


def _fill_span(span: OtlpSpan, record: TraceRecord) -> None:
    """The record's root span, written straight into the request's protobuf.

    Not through MLflow's Span entity: that JSON-encodes every attribute, decodes it again to
    build the protobuf, and cost ~0.35 ms of the gateway's CPU per trace (bench/RESULTS.md).
    MLflow's own AnyValue encoder keeps the wire exactly what its entity produced (a unit test
    compares the bytes).
    """
    span.trace_id = bytes.fromhex(record.record_id)
    span.span_id = _span_id_for(record).to_bytes(8, "big")
    span.name = f"llm.{record.endpoint}"
    span.start_time_unix_nano = record.started_at_ns
    if end := max(record.ended_at_ns, record.started_at_ns):
        span.end_time_unix_nano = end
    if record.status == "error":
        span.status.code = OtlpStatus.STATUS_CODE_ERROR
        if record.error is not None:
            span.status.message = f"{record.error.type}: {record.error.message}"
    else:
        span.status.code = OtlpStatus.STATUS_CODE_OK
    for key, value in span_attributes(record).items():
        attribute = span.attributes.add()
        attribute.key = key
        _set_otel_proto_anyvalue(attribute.value, value)


def otlp_request_body(records: list[TraceRecord]) -> bytes:
    """One OTLP ExportTraceServiceRequest (protobuf) holding every record's root span."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for record in records:
        _fill_span(spans.add(), record)
    body: bytes = request.SerializeToString()
    return body


__all__ = ["otlp_request_body", "span_attributes"]
