"""Trace context for every request when no span can be recorded (tracing on, no exporter).

OpenTelemetry's ASGI instrumentation collects a dozen attributes, matches the route for the span
name and starts an SDK span on every request, even when the sampler then drops it: about 15 % of
a worker's CPU per request, measured with bench/. With nowhere to send spans none of that is
seen, yet logs still want real `trace_id`/`span_id` and the upstream call still wants a
`traceparent`. So this layer only makes a span context: the caller's trace id and sampled flag
when it sent `traceparent` (its baggage too), a fresh trace id otherwise, and a fresh span id,
set as the current span for the request's task. When an exporter is configured the app uses the
full instrumentation instead (see app.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from llm_gateway.middleware.asgi import ASGIApp, Receive, Scope, Send

_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


class TraceContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        untraced_paths: Iterable[str] = (),
        id_generator: IdGenerator | None = None,
    ) -> None:
        self.app = app
        self.untraced_paths = frozenset(untraced_paths)
        self.ids = id_generator or RandomIdGenerator()
        # The header names the configured propagators read (traceparent, tracestate, baggage).
        self.fields = frozenset(name.encode() for name in propagate.get_global_textmap().fields)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.untraced_paths:
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(self._request_context(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)

    def _request_context(self, scope: Scope) -> Context:
        fields = self.fields
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", ())
            if key in fields
        }
        # Most requests carry no trace headers: skip the propagators' parsing entirely.
        parent_context = propagate.extract(carrier) if carrier else Context()
        parent = trace.get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            span_context = SpanContext(
                trace_id=parent.trace_id,
                span_id=self.ids.generate_span_id(),
                is_remote=False,
                trace_flags=parent.trace_flags,
                trace_state=parent.trace_state,
            )
        else:
            span_context = SpanContext(
                trace_id=self.ids.generate_trace_id(),
                span_id=self.ids.generate_span_id(),
                is_remote=False,
                trace_flags=_UNSAMPLED,
            )
        return trace.set_span_in_context(NonRecordingSpan(span_context), parent_context)
