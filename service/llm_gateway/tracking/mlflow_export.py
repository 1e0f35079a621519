"""Synchronous, raising upload of `TraceRecord`s to an MLflow tracking server.

Why not `mlflow.start_span` / the fluent API: it exports in a background queue and turns every
upload failure into a logged warning, so an MLflow outage would silently lose traces. Instead each
record is built into MLflow's own entities (`Span`, `TraceInfo`) and sent with the same two wire
calls the mlflow-tracing client makes (OTLP `POST /v1/traces` for the span, then `StartTraceV3`
for the trace info, tags and metadata), but over our own `httpx.Client`: one bounded timeout, no
hidden retry loop (mlflow's REST helper retries for minutes), and any failure raises, so the
tracker can journal the batch.

Idempotency: the MLflow trace id is `tr-<record_id>` and the span id is derived from the record id
too. The server upserts spans by (trace, span) id and merges a second `StartTraceV3` for a known
trace id, so replaying a record that did reach the server does not create a duplicate trace.

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
START_TRACE_PATH = "/api/3.0/mlflow/traces"
EXPERIMENT_BY_NAME_PATH = "/api/2.0/mlflow/experiments/get-by-name"
EXPERIMENT_CREATE_PATH = "/api/2.0/mlflow/experiments/create"
EXPERIMENT_ID_HEADER = "x-mlflow-experiment-id"
# Answers that reject the records themselves (malformed, too large), not the server's state.
REJECTED_STATUSES = frozenset({400, 413, 422})


def is_rejection(exc: BaseException) -> bool:
    """True when an export failed because the server refused these records for good."""
    return isinstance(exc, DependencyUnavailable) and bool(exc.extra.get("rejected"))


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
            raise DependencyUnavailable(
                f"{method} {redact_url(self.tracking_uri)}{path} failed: {type(exc).__name__}"
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
        if response.status_code != 200:
            raise DependencyUnavailable(
                f"{what}: HTTP {response.status_code} {response.text[:300]!r}",
                # The server answered and refused the data itself: resending will not help.
                extra={"rejected": payload and response.status_code in REJECTED_STATUSES},
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
                self._experiment_id = str(created.json()["experiment_id"])
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
        self._experiment_id = str(found.json()["experiment"]["experiment_id"])
        return self._experiment_id

    def export(self, records: list[TraceRecord]) -> None:
        """Upload every record as one trace; raises DependencyUnavailable at the first failure.

        `is_rejection(exc)` tells a refusal of the records (HTTP 400/413/422) from an outage.

        All spans go in one OTLP request; the trace infos follow one by one (MLflow has no batch
        call for them). A failure part-way leaves some traces uploaded: replaying them is
        harmless because the ids are deterministic.
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
            headers={
                "Content-Type": "application/x-protobuf",
                EXPERIMENT_ID_HEADER: experiment_id,
            },
        )
        self._raise_for(response, "span upload", payload=True)
        for record in records:
            response = self._call(
                "POST",
                START_TRACE_PATH,
                content=mlflow_wire.start_trace_body(record, experiment_id),
                headers={"Content-Type": "application/json"},
            )
            self._raise_for(response, f"trace {record.trace_id} upload", payload=True)

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


__all__ = ["MlflowExporter", "is_rejection"]
