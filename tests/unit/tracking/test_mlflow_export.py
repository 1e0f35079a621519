"""MlflowExporter: the wire calls a record becomes, and that every failure raises."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from mlflow.entities.span import Span
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llm_gateway.errors import DependencyUnavailable
from llm_gateway.tracking.mlflow_export import MlflowExporter, is_rejection
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

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == self.fail_path:
            return httpx.Response(self.fail_status, json={"error_code": "X", "message": "no"})
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
        if path in ("/v1/traces", "/api/3.0/mlflow/traces"):
            return httpx.Response(200, json={})
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


def test_a_batch_becomes_one_span_upload_and_one_trace_per_record(
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

    infos = [
        json.loads(r.content)["trace"]["trace_info"] for r in server.sent("/api/3.0/mlflow/traces")
    ]
    assert [i["trace_id"] for i in infos] == [ok.trace_id, failed.trace_id]
    assert [i["state"] for i in infos] == ["OK", "ERROR"]
    assert infos[0]["client_request_id"] == ok.request_id
    assert infos[0]["execution_duration"] == "0.012s"
    assert infos[0]["tags"] == infos[0]["tags"] | {
        "request_id": "req-1",
        "user": "alice",
        "model": "gpt-test",
        "cache_tier": "exact",
        "status": "ok",
        "record_id": ok.record_id,
        "mlflow.traceName": "llm.generate",
    }
    assert infos[0]["trace_metadata"]["record_id"] == ok.record_id


def test_the_same_record_always_maps_to_the_same_trace(exporter: MlflowExporter) -> None:
    record = make_record(3)
    assert record.trace_id == f"tr-{record.record_id}"


@pytest.mark.parametrize(
    "failing_path",
    [
        pytest.param("/api/2.0/mlflow/experiments/get-by-name", id="experiment-lookup"),
        pytest.param("/v1/traces", id="span-upload"),
        pytest.param("/api/3.0/mlflow/traces", id="trace-info-upload"),
    ],
)
def test_any_failed_call_raises(
    exporter: MlflowExporter, server: FakeMlflow, failing_path: str
) -> None:
    server.fail_path = failing_path
    with pytest.raises(DependencyUnavailable, match="503") as failure:
        exporter.export([make_record(1)])
    assert not is_rejection(failure.value)  # an outage: journal and retry later


@pytest.mark.parametrize(
    ("failing_path", "status", "rejected"),
    [
        pytest.param("/v1/traces", 400, True, id="span-refused"),
        pytest.param("/api/3.0/mlflow/traces", 413, True, id="trace-too-large"),
        pytest.param("/api/2.0/mlflow/experiments/get-by-name", 400, False, id="bad-experiment"),
        pytest.param("/v1/traces", 500, False, id="server-error"),
    ],
)
def test_only_a_refusal_of_the_records_themselves_counts_as_a_rejection(
    exporter: MlflowExporter, server: FakeMlflow, failing_path: str, status: int, rejected: bool
) -> None:
    server.fail_path = failing_path
    server.fail_status = status
    with pytest.raises(DependencyUnavailable) as failure:
        exporter.export([make_record(1)])
    assert is_rejection(failure.value) is rejected


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
