"""MlflowExporter: the one OTLP call a batch becomes, and that every failure raises, by kind."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from mlflow.entities.span import Span
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llm_gateway.errors import DependencyUnavailable
from llm_gateway.tracking.mlflow_export import MlflowExporter, failure_kind, is_rejection
from llm_gateway.tracking.records import TraceError
from tests.unit.tracking.fakes import make_record

Handler = Callable[[httpx.Request], httpx.Response]


class FakeMlflow:
    """Just enough of the MLflow REST surface, recording what it was sent."""

    def __init__(self) -> None:
        self.experiments: dict[str, str] = {}
        self.requests: list[httpx.Request] = []
        self.fail_path: str | None = None
        self.fail_status = 503
        self.fail_body: dict[str, object] = {"error_code": "X", "message": "no"}
        # What /v1/traces answers with 200 (MLflow: an empty protobuf ExportTraceServiceResponse).
        self.export_answer = httpx.Response(
            200,
            content=ExportTraceServiceResponse().SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == self.fail_path:
            return httpx.Response(self.fail_status, json=self.fail_body)
        if path == "/api/2.0/mlflow/experiments/get-by-name":
            name = request.url.params["experiment_name"]
            if name not in self.experiments:
                return httpx.Response(404, json={"error_code": "RESOURCE_DOES_NOT_EXIST"})
            return httpx.Response(
                200, json={"experiment": {"experiment_id": self.experiments[name]}}
            )
        if path == "/api/2.0/mlflow/experiments/create":
            name = json.loads(request.content)["name"]
            self.experiments[name] = str(len(self.experiments) + 1)
            return httpx.Response(200, json={"experiment_id": self.experiments[name]})
        if path == "/v1/traces":
            return self.export_answer
        if path == "/health":
            return httpx.Response(200, text="OK")
        return httpx.Response(404)

    def sent(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


@pytest.fixture
def server() -> FakeMlflow:
    return FakeMlflow()


@pytest.fixture
def exporter(server: FakeMlflow) -> Iterator[MlflowExporter]:
    exporter = MlflowExporter(
        "http://mlflow.test:5000", "gateway-tests", transport=httpx.MockTransport(server)
    )
    yield exporter
    exporter.close()


def test_the_experiment_is_created_once_and_then_reused(
    exporter: MlflowExporter, server: FakeMlflow
) -> None:
    exporter.export([make_record(1)])
    exporter.export([make_record(2)])

    assert server.experiments == {"gateway-tests": "1"}
    assert len(server.sent("/api/2.0/mlflow/experiments/create")) == 1
    assert len(server.sent("/api/2.0/mlflow/experiments/get-by-name")) == 1


def test_a_batch_becomes_one_otlp_upload_whose_spans_carry_the_trace_tags(
    exporter: MlflowExporter, server: FakeMlflow
) -> None:
    ok = make_record(1, cache_tier="exact")
    failed = make_record(
        2, status="error", outputs=None, error=TraceError("UpstreamTimeout", "slow")
    )
    exporter.export([ok, failed])

    (upload,) = server.sent("/v1/traces")
    assert upload.headers["x-mlflow-experiment-id"] == "1"
    otlp = ExportTraceServiceRequest.FromString(upload.content)
    spans = otlp.resource_spans[0].scope_spans[0].spans
    assert [span.trace_id.hex() for span in spans] == [ok.record_id, failed.record_id]
    assert spans[0].name == "llm.generate"
    assert spans[0].start_time_unix_nano == ok.started_at_ns
    assert spans[0].end_time_unix_nano == ok.ended_at_ns
    assert spans[0].status.code == 1  # OK
    assert spans[1].status.code == 2  # ERROR
    assert "UpstreamTimeout" in spans[1].status.message
    decoded = Span.from_otel_proto(spans[0])  # as the server reads it
    assert decoded.inputs == ok.inputs
    assert decoded.outputs == "answer 1"
    assert decoded.span_type == "CHAT_MODEL"
    assert decoded.attributes["gateway.attempts"] == 1
    assert decoded.attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": 3,
        "output_tokens": 4,
        "total_tokens": 7,
    }

    # The trace info comes from the span: MLflow reads its tags and user from these attributes.
    assert decoded.attributes["mlflow.traceRequestId"] == ok.trace_id
    assert decoded.attributes["user.id"] == "alice"
    tags = {
        key.removeprefix("mlflow.traceTag."): value
        for key, value in decoded.attributes.items()
        if key.startswith("mlflow.traceTag.")
    }
    # One tag of the gateway's own: each tag costs the server a read and a write per trace.
    assert tags == {"request_id": "req-1", "mlflow.traceName": "llm.generate"}
    assert decoded.attributes["gateway.cache_tier"] == "exact"
    assert decoded.attributes["mlflow.llm.model"] == "gpt-test"
    # One request for the whole batch: no per-trace StartTraceV3 call.
    assert [r.url.path for r in server.requests if r.method == "POST"] == [
        "/api/2.0/mlflow/experiments/create",
        "/v1/traces",
    ]


def test_the_same_record_always_maps_to_the_same_trace(exporter: MlflowExporter) -> None:
    record = make_record(3)
    assert record.trace_id == f"tr-{record.record_id}"


@pytest.mark.parametrize(
    "failing_path",
    [
        pytest.param("/api/2.0/mlflow/experiments/get-by-name", id="experiment-lookup"),
        pytest.param("/v1/traces", id="span-upload"),
    ],
)
def test_any_failed_call_raises(
    exporter: MlflowExporter, server: FakeMlflow, failing_path: str
) -> None:
    server.fail_path = failing_path
    with pytest.raises(DependencyUnavailable, match="503") as failure:
        exporter.export([make_record(1)])
    assert not is_rejection(failure.value)  # an outage: journal and retry later


UNCONVERTIBLE = {"detail": "Cannot convert OpenTelemetry span to MLflow span"}
STORE_FAILED = {"detail": "Failed to log OpenTelemetry spans"}


@pytest.mark.parametrize(
    ("failing_path", "status", "body", "rejected"),
    [
        pytest.param("/v1/traces", 400, {}, True, id="span-refused"),
        pytest.param("/v1/traces", 413, {}, True, id="batch-too-large"),
        pytest.param("/v1/traces", 422, UNCONVERTIBLE, True, id="span-unconvertible"),
        # MLflow's answer when its store fails (a locked sqlite, a database outage): retry.
        pytest.param("/v1/traces", 422, STORE_FAILED, False, id="store-write-failed"),
        pytest.param("/api/2.0/mlflow/experiments/get-by-name", 400, {}, False, id="bad-exp"),
        pytest.param("/v1/traces", 500, {}, False, id="server-error"),
    ],
)
def test_only_a_refusal_of_the_records_themselves_counts_as_a_rejection(
    exporter: MlflowExporter,
    server: FakeMlflow,
    failing_path: str,
    status: int,
    body: dict[str, object],
    rejected: bool,
) -> None:
    server.fail_path = failing_path
    server.fail_status = status
    server.fail_body = body
    with pytest.raises(DependencyUnavailable) as failure:
        exporter.export([make_record(1)])
    assert is_rejection(failure.value) is rejected
    assert failure_kind(failure.value) == ("rejected" if rejected else "http_error")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(httpx.Response(200, text="<html>proxy</html>"), id="html-page"),
        pytest.param(httpx.Response(200), id="empty-no-content-type"),
        pytest.param(
            httpx.Response(
                200, content=b"\xff\xff\xff", headers={"content-type": "application/x-protobuf"}
            ),
            id="undecodable-protobuf",
        ),
        pytest.param(
            httpx.Response(
                200,
                content=ExportTraceServiceResponse(
                    partial_success={"rejected_spans": 1, "error_message": "no"}
                ).SerializeToString(),
                headers={"content-type": "application/x-protobuf"},
            ),
            id="spans-rejected-in-a-200",
        ),
    ],
)
def test_a_200_that_is_not_an_otlp_answer_fails_as_garbage(
    exporter: MlflowExporter, server: FakeMlflow, answer: httpx.Response
) -> None:
    server.export_answer = answer
    with pytest.raises(DependencyUnavailable, match="not an OTLP export response") as failure:
        exporter.export([make_record(1)])
    assert failure_kind(failure.value) == "garbage"
    assert not is_rejection(failure.value)


def test_a_server_that_does_not_answer_in_time_fails_as_a_timeout() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    exporter = MlflowExporter("http://mlflow.test:5000", "x", transport=httpx.MockTransport(hang))
    with pytest.raises(DependencyUnavailable, match="ReadTimeout") as failure:
        exporter.export([make_record(1)])
    assert failure_kind(failure.value) == "timeout"
    exporter.close()


def test_an_unreachable_server_raises_and_reports_unhealthy() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    exporter = MlflowExporter("http://mlflow.test:5000", "x", transport=httpx.MockTransport(refuse))
    with pytest.raises(DependencyUnavailable, match="ConnectError"):
        exporter.export([make_record(1)])
    assert exporter.health() is False
    exporter.close()


def test_a_healthy_server_reports_healthy(exporter: MlflowExporter) -> None:
    assert exporter.health() is True


def test_a_server_whose_api_refuses_us_is_not_healthy(
    exporter: MlflowExporter, server: FakeMlflow
) -> None:
    # MLflow answers /health to anyone but 403s API calls from a Host it does not allow.
    server.fail_path = "/api/2.0/mlflow/experiments/get-by-name"
    server.fail_status = 403
    assert exporter.health() is False


def test_an_empty_batch_makes_no_call(exporter: MlflowExporter, server: FakeMlflow) -> None:
    exporter.export([])
    assert server.requests == []


def test_an_experiment_lookup_answered_with_garbage_fails_as_garbage() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>proxy</html>")

    exporter = MlflowExporter("http://mlflow.test:5000", "x", transport=httpx.MockTransport(html))
    with pytest.raises(
        DependencyUnavailable, match=r"without experiment\.experiment_id"
    ) as failure:
        exporter.export([make_record(1)])
    assert failure_kind(failure.value) == "garbage"
    exporter.close()
