"""An MLflow stand-in that accepts every trace upload at once and stores nothing.

    .venv/bin/python -m bench.otlp_sink --port 5099

For bench.trace_overhead only: with the gateway exporting here, its export work (batching,
encoding, the upload's HTTP in a worker thread) is all that differs from tracking off, because
no tracking server competes for the machine's two cores. It answers what the gateway's
`MlflowExporter` checks: /health, the experiment lookup, and `POST /v1/traces` with an empty
OTLP ExportTraceServiceResponse (zero bytes is that message with nothing rejected).
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from llm_gateway.tracking.mlflow_export import EXPERIMENT_BY_NAME_PATH, OTLP_CONTENT_TYPE

EXPERIMENT = json.dumps({"experiment": {"experiment_id": "1", "name": "sink"}}).encode()


class SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as MLflow's server does

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith(EXPERIMENT_BY_NAME_PATH):
            self._answer(EXPERIMENT, "application/json")
        else:
            self._answer(b"OK", "text/plain")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer(b"", OTLP_CONTENT_TYPE)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per upload would be the sink's main cost


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.otlp_sink")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), SinkHandler).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
