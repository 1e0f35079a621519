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
from mlflow.entities.span import Span
from mlflow.entities.span_status import SpanStatus, SpanStatusCode
from mlflow.tracing.constant import SpanAttributeKey, TraceTagKey
from mlflow.tracing.utils import build_otel_context, dump_span_attribute_value
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan

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


def build_span(record: TraceRecord) -> Span:
    """The one root span of the record's trace, as MLflow's immutable Span entity."""
    trace_id = record.trace_id
    attributes: dict[str, Any] = {
        SpanAttributeKey.REQUEST_ID: trace_id,
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
    status = (
        SpanStatus(SpanStatusCode.ERROR, f"{record.error.type}: {record.error.message}")
        if record.status == "error" and record.error is not None
        else SpanStatus(SpanStatusCode.ERROR if record.status == "error" else SpanStatusCode.OK)
    )
    tags = {TraceTagKey.TRACE_NAME: f"llm.{record.endpoint}", REQUEST_ID_TAG: record.request_id}
    attributes.update({f"{SpanAttributeKey.TRACE_TAG_PREFIX}{k}": v for k, v in tags.items()})
    otel_trace_id = int(record.record_id, 16)
    readable = ReadableSpan(
        name=f"llm.{record.endpoint}",
        context=build_otel_context(otel_trace_id, _span_id_for(record)),
        parent=None,
        start_time=record.started_at_ns,
        end_time=max(record.ended_at_ns, record.started_at_ns),
        # MLflow stores every attribute JSON-encoded and decodes on read.
        attributes={key: dump_span_attribute_value(value) for key, value in attributes.items()},
        status=status.to_otel_status(),
        resource=Resource.get_empty(),
    )
    return Span(readable)


def otlp_request_body(records: list[TraceRecord]) -> bytes:
    """One OTLP ExportTraceServiceRequest (protobuf) holding every record's root span."""
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    scope_spans.spans.extend(build_span(record).to_otel_proto() for record in records)
    body: bytes = request.SerializeToString()
    return body


__all__ = ["build_span", "otlp_request_body"]
