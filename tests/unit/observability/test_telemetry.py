from __future__ import annotations

from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from llm_gateway.observability.telemetry import build_telemetry
from tests.support.settings import make_settings


def test_without_an_exporter_spans_are_not_recorded_but_have_real_ids(tmp_path: Path) -> None:
    telemetry = build_telemetry(make_settings(tmp_path, OTEL_EXPORTER="none"))
    with telemetry.tracer.start_as_current_span("request") as span:
        assert not span.is_recording()
        context = span.get_span_context()
        assert context.is_valid
        assert context.trace_id != 0


def test_a_callers_sampled_trace_is_still_recorded(tmp_path: Path) -> None:
    telemetry = build_telemetry(make_settings(tmp_path, OTEL_EXPORTER="none"))
    parent = SpanContext(
        trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    with telemetry.tracer.start_as_current_span(
        "request", context=trace.set_span_in_context(NonRecordingSpan(parent))
    ) as span:
        assert span.is_recording()
        assert span.get_span_context().trace_id == 0x1234


def test_with_a_processor_every_span_is_recorded(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    telemetry = build_telemetry(
        make_settings(tmp_path, OTEL_EXPORTER="none"), (SimpleSpanProcessor(exporter),)
    )
    with telemetry.tracer.start_as_current_span("request"):
        pass
    assert [span.name for span in exporter.get_finished_spans()] == ["request"]


def test_the_sample_ratio_drops_new_traces_but_follows_a_sampled_caller(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    telemetry = build_telemetry(
        make_settings(tmp_path, OTEL_EXPORTER="none", TRACING_SAMPLE_RATIO="0"),
        (SimpleSpanProcessor(exporter),),
    )
    with telemetry.tracer.start_as_current_span("new") as span:
        assert not span.is_recording()
        assert span.get_span_context().is_valid
    parent = SpanContext(
        trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    with telemetry.tracer.start_as_current_span(
        "continued", context=trace.set_span_in_context(NonRecordingSpan(parent))
    ):
        pass
    assert [span.name for span in exporter.get_finished_spans()] == ["continued"]


def test_a_half_ratio_records_about_half_of_the_new_traces(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    telemetry = build_telemetry(
        make_settings(tmp_path, OTEL_EXPORTER="none", TRACING_SAMPLE_RATIO="0.5"),
        (SimpleSpanProcessor(exporter),),
    )
    for _ in range(2000):
        with telemetry.tracer.start_as_current_span("request"):
            pass
    assert 800 < len(exporter.get_finished_spans()) < 1200
