"""Synchronous, raising upload of `TraceRecord`s to an MLflow tracking server.

Why not `mlflow.start_span` / the fluent API: it exports in a background queue and turns every
upload failure into a logged warning, so an MLflow outage would silently lose traces. Instead each
batch of records becomes one OTLP `POST /v1/traces` (protobuf, one root span per record; MLflow 3
creates the trace infos and tags from the spans, see mlflow_wire) over our own `httpx.Client`: one
bounded timeout, no hidden retry loop (mlflow's REST helper retries for minutes), and any failure
raises, so the tracker can journal the batch. The client is thread-safe: the tracker runs several
uploads at once (TRACE_EXPORT_CONCURRENCY), each in its own worker thread.

Idempotency: the MLflow trace id is `tr-<record_id>` and the span id is derived from the record id
too. The server upserts spans by (trace, span) id and finds the trace info by its id, so replaying
a record that did reach the server does not create a second trace.

Requires an MLflow server >= 3.4 with a SQL backend store (spans live in the tracking store).
Every method blocks: the tracker calls them through `asyncio.to_thread`.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from llm_gateway.errors import DependencyUnavailable
from llm_gateway.tracking.records import TraceRecord
from llm_gateway.urls import redact_url

log = logging.getLogger(__name__)

OTLP_TRACES_PATH = "/v1/traces"
EXPERIMENT_BY_NAME_PATH = "/api/2.0/mlflow/experiments/get-by-name"
EXPERIMENT_CREATE_PATH = "/api/2.0/mlflow/experiments/create"
EXPERIMENT_ID_HEADER = "x-mlflow-experiment-id"
OTLP_CONTENT_TYPE = "application/x-protobuf"
# Answers that reject the records themselves (malformed, too large), not the server's state.
REJECTED_STATUSES = frozenset({400, 413})
# MLflow answers 422 both for a span it cannot convert (the record's fault: a rejection) and for a
# store that failed to write the batch ("Failed to log OpenTelemetry spans": a sqlite lock under
# concurrent uploads, a database outage). Only the first is final; the second must be retried, or
# a busy store would turn into dropped traces.
UNCONVERTIBLE_SPAN_DETAIL = "Cannot convert OpenTelemetry span"

# What went wrong with an upload, for the failure metric and the state-change log line.
FAILURE_HTTP_ERROR = "http_error"  # the server answered an error status
FAILURE_TIMEOUT = "timeout"  # no answer within the timeout (a hang)
FAILURE_UNREACHABLE = "unreachable"  # connection refused, reset, DNS
FAILURE_GARBAGE = "garbage"  # 200, but not an OTLP export response
FAILURE_REJECTED = "rejected"  # the server refused these records for good


def is_rejection(exc: BaseException) -> bool:
    """True when an export failed because the server refused these records for good."""
    return failure_kind(exc) == FAILURE_REJECTED


def failure_kind(exc: BaseException | None) -> str:
    """The FAILURE_* kind of an exporter exception (`unreachable` for anything unexpected)."""
    if isinstance(exc, DependencyUnavailable):
        return str(exc.extra.get("failure", FAILURE_UNREACHABLE))
    return FAILURE_UNREACHABLE


class MlflowExporter:
    """Uploads records to one experiment of one MLflow server; every failure raises."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        *,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        self.experiment_name = experiment_name
        # No I/O here: httpx connects on the first request.
        self._client = httpx.Client(
            base_url=self.tracking_uri, timeout=timeout, transport=transport
        )
        self._experiment_id: str | None = None

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            kind = (
                FAILURE_TIMEOUT if isinstance(exc, httpx.TimeoutException) else FAILURE_UNREACHABLE
            )
            raise DependencyUnavailable(
                f"{method} {redact_url(self.tracking_uri)}{path} failed: {type(exc).__name__}",
                extra={"failure": kind},
            ) from exc
        return response

    @staticmethod
    def _error_code(response: httpx.Response) -> str | None:
        try:
            body = response.json()
        except ValueError:
            return None
        return body.get("error_code") if isinstance(body, dict) else None

    def _raise_for(self, response: httpx.Response, what: str, *, payload: bool = False) -> None:
        if response.status_code == 200:
            return
        text = response.text[:300]
        # The server answered and refused the data itself: resending will not help.
        rejected = payload and (
            response.status_code in REJECTED_STATUSES
            or (response.status_code == 422 and UNCONVERTIBLE_SPAN_DETAIL in text)
        )
        raise DependencyUnavailable(
            f"{what}: HTTP {response.status_code} {text!r}",
            extra={"failure": FAILURE_REJECTED if rejected else FAILURE_HTTP_ERROR},
        )

    @staticmethod
    def _check_export_response(response: httpx.Response) -> None:
        """A 200 must be an OTLP ExportTraceServiceResponse accepting every span.

        A proxy or a half-broken server can answer 200 with an HTML page or nothing at all; such
        an answer does not prove the spans were stored, so it fails like an outage.
        """
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        problem = None
        if content_type != OTLP_CONTENT_TYPE:
            problem = f"content-type {content_type or 'missing'!r}"
        else:
            try:
                answer = ExportTraceServiceResponse.FromString(response.content)
            except Exception as exc:  # protobuf raises DecodeError or RuntimeWarning subclasses
                problem = f"undecodable body ({type(exc).__name__})"
            else:
                if answer.partial_success.rejected_spans:
                    problem = f"{answer.partial_success.rejected_spans} spans rejected"
        if problem is not None:
            raise DependencyUnavailable(
                f"span upload: HTTP 200 but not an OTLP export response: {problem}",
                extra={"failure": FAILURE_GARBAGE},
            )

    def experiment_id(self) -> str:
        """Look the experiment up once (creating it if needed) and remember its id."""
        if self._experiment_id is not None:
            return self._experiment_id
        found = self._call(
            "GET", EXPERIMENT_BY_NAME_PATH, params={"experiment_name": self.experiment_name}
        )
        if found.status_code != 200 and self._error_code(found) == "RESOURCE_DOES_NOT_EXIST":
            created = self._call(
                "POST", EXPERIMENT_CREATE_PATH, json={"name": self.experiment_name}
            )
            if created.status_code == 200:
                self._experiment_id = self._experiment_id_in(created, "experiment_id")
                log.info(
                    "mlflow_experiment_created",
                    extra={
                        "experiment": self.experiment_name,
                        "experiment_id": self._experiment_id,
                    },
                )
                return self._experiment_id
            # Another worker created it between our two calls: read it again.
            found = self._call(
                "GET", EXPERIMENT_BY_NAME_PATH, params={"experiment_name": self.experiment_name}
            )
        self._raise_for(found, f"experiment {self.experiment_name!r} lookup")
        self._experiment_id = self._experiment_id_in(found, "experiment", "experiment_id")
        return self._experiment_id

    @staticmethod
    def _experiment_id_in(response: httpx.Response, *keys: str) -> str:
        """The id at `keys` in a 200's JSON body; a body without it is garbage, not a crash."""
        try:
            value: Any = response.json()
            for key in keys:
                value = value[key]
        except (ValueError, KeyError, TypeError) as exc:
            raise DependencyUnavailable(
                f"experiment lookup: HTTP 200 without {'.'.join(keys)}: {response.text[:100]!r}",
                extra={"failure": FAILURE_GARBAGE},
            ) from exc
        return str(value)

    def export(self, records: list[TraceRecord]) -> None:
        """Upload every record as one trace, in one OTLP request; raises DependencyUnavailable.

        `failure_kind(exc)` says what went wrong; `is_rejection(exc)` tells a refusal of the
        records themselves from an outage. MLflow stores a batch all-or-nothing, and a resend
        after a lost acknowledgement is harmless because the ids are deterministic.
        """
        if not records:
            return
        # Deferred import: mlflow takes seconds to load; this runs in the export thread.
        from llm_gateway.tracking import mlflow_wire

        experiment_id = self.experiment_id()
        response = self._call(
            "POST",
            OTLP_TRACES_PATH,
            content=mlflow_wire.otlp_request_body(records),
            headers={"Content-Type": OTLP_CONTENT_TYPE, EXPERIMENT_ID_HEADER: experiment_id},
        )
        self._raise_for(response, "span upload", payload=True)
        self._check_export_response(response)

    def health(self) -> bool:
        """True when MLflow answers GET /health and its API accepts us; never raises.

        MLflow exempts /health from its Host-header and auth checks, so a server that would
        refuse every export (403) still looks healthy there: the API probe catches that.
        """
        try:
            if self._client.get("/health").status_code != 200:
                return False
            probe = self._client.get(
                EXPERIMENT_BY_NAME_PATH, params={"experiment_name": self.experiment_name}
            )
        except httpx.HTTPError:
            return False
        return probe.status_code in (200, 404)  # 404: the experiment is created on first export

    def close(self) -> None:
        self._client.close()


__all__ = ["MlflowExporter", "failure_kind", "is_rejection"]
