"""A small HTTP proxy in front of a real MLflow server that fails on command.

Modes: `pass` (forward every request unchanged), `500` (answer HTTP 500 to everything), `hang`
(hold every request for `hang_seconds`, longer than the client's timeout, then drop it) and
`garbage` (answer 200 with an HTML page: what a misrouted ingress or captive proxy returns). The
tests switch modes between phases and check that the gateway loses nothing and logs one line per
change of state.
"""

from __future__ import annotations

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

MODES = ("pass", "500", "hang", "garbage")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FaultyFront:
    def __init__(self, target: str, hang_seconds: float = 5.0) -> None:
        self.target = target.rstrip("/")
        self.hang_seconds = hang_seconds
        self.mode = "pass"
        self.requests_by_mode: dict[str, int] = dict.fromkeys(MODES, 0)
        self._client = httpx.Client(base_url=self.target, timeout=60)
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test reads the gateway's logs, not the proxy's

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                mode = front.mode
                front.requests_by_mode[mode] += 1
                if mode == "hang":
                    time.sleep(front.hang_seconds)
                    self.close_connection = True
                    return
                if mode == "500":
                    self._answer(500, b'{"error_code": "INTERNAL_ERROR"}', "application/json")
                    return
                if mode == "garbage":
                    self._answer(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = front._client.request(
                    self.command, self.path, content=body, headers=headers
                )
                self._answer(
                    upstream.status_code,
                    upstream.content,
                    upstream.headers.get("content-type", "application/octet-stream"),
                )

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                # The client may have given up (its timeout) before we answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
