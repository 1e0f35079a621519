"""MLflow's wire format for a `TraceRecord`: the OTLP span and the StartTraceV3 trace info.

Kept apart from the HTTP client because importing mlflow costs seconds: `MlflowExporter` imports
this module on its first export, in its worker thread, so neither import time nor a worker's
startup pays for it (and a gateway without MLFLOW_TRACKING_URI never loads mlflow at all).
"""

from __future__ import annotations

import json
from typing import Any

from mlflow.entities import SpanType, Trace, TraceData, TraceInfo, TraceLocation, TraceState
from mlflow.entities.span import Span
from mlflow.entities.span_status import SpanStatus, SpanStatusCode
from mlflow.protos.service_pb2 import StartTraceV3
from mlflow.tracing.constant import (
    TRACE_SCHEMA_VERSION,
    TRACE_SCHEMA_VERSION_KEY,
    SpanAttributeKey,
    SpansLocation,
    TraceMetadataKey,
    TraceTagKey,
)
from mlflow.tracing.utils import build_otel_context, dump_span_attribute_value
from mlflow.utils.proto_json_utils import message_to_json
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan

from llm_gateway.tracking.records import TraceRecord

PREVIEW_CHARS = 1000
# Tags (searchable, e.g. `tags.request_id = '...'`) and metadata carry the same keys.
GATEWAY_KEYS = ("request_id", "user", "model", "cache_tier", "status", "record_id")


def _span_id_for(record: TraceRecord) -> int:
    # 64 bits of the record id: deterministic, so a replay upserts the same span.
    return int(record.record_id[16:], 16) or 1


def _preview(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:PREVIEW_CHARS]


def _gateway_fields(record: TraceRecord) -> dict[str, str]:
    values = {
        "request_id": record.request_id,
        "user": record.user or "",
        "model": record.model_used or record.model_requested,
        "cache_tier": record.cache_tier or "none",
        "status": record.status,
        "record_id": record.record_id,
    }
    return {key: values[key] for key in GATEWAY_KEYS}


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
    if record.error is not None:
        attributes["gateway.error"] = {"type": record.error.type, "message": record.error.message}
    status = (
        SpanStatus(SpanStatusCode.ERROR, f"{record.error.type}: {record.error.message}")
        if record.status == "error" and record.error is not None
        else SpanStatus(SpanStatusCode.ERROR if record.status == "error" else SpanStatusCode.OK)
    )
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


def build_trace_info(record: TraceRecord, experiment_id: str) -> TraceInfo:
    fields = _gateway_fields(record)
    metadata = {TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION), **fields}
    if record.user:
        metadata[TraceMetadataKey.TRACE_USER] = record.user
    if (usage := _usage(record)) is not None:
        metadata[TraceMetadataKey.TOKEN_USAGE] = json.dumps(usage)
    tags = {
        TraceTagKey.TRACE_NAME: f"llm.{record.endpoint}",
        TraceTagKey.SPANS_LOCATION: SpansLocation.TRACKING_STORE.value,
        **fields,
    }
    return TraceInfo(
        trace_id=record.trace_id,
        trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=record.started_at_ns // 1_000_000,
        execution_duration=record.duration_ns // 1_000_000,
        state=TraceState.ERROR if record.status == "error" else TraceState.OK,
        request_preview=_preview(record.inputs),
        response_preview=_preview(record.outputs),
        client_request_id=record.request_id,
        trace_metadata=metadata,
        tags=tags,
    )


def otlp_request_body(records: list[TraceRecord]) -> bytes:
    """One OTLP ExportTraceServiceRequest (protobuf) holding every record's root span."""
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    scope_spans.spans.extend(build_span(record).to_otel_proto() for record in records)
    body: bytes = request.SerializeToString()
    return body


def start_trace_body(record: TraceRecord, experiment_id: str) -> bytes:
    """The StartTraceV3 JSON body: trace info, tags and metadata (spans went by OTLP)."""
    trace = Trace(info=build_trace_info(record, experiment_id), data=TraceData(spans=[]))
    proto = trace.to_proto()  # type: ignore[no-untyped-call]
    body: str = message_to_json(StartTraceV3(trace=proto))
    return body.encode()


__all__ = ["build_span", "build_trace_info", "otlp_request_body", "start_trace_body"]
