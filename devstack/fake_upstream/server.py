"""The fake upstream's HTTP surface (aiohttp.web): OpenAI-compatible routes plus its controls.

Built for speed as well as control, because the benchmark uses it as the mock: no access log,
orjson bodies, nothing per request beyond a counter and one dictionary lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

import orjson
from aiohttp import web

from devstack.fake_upstream import payloads
from devstack.fake_upstream.controls import (
    REQUEST_FAULTS,
    Behaviour,
    ControlError,
    Controls,
    Fault,
)

CONTROLS_KEY = web.AppKey("controls", Controls)
OPTIONS_KEY = web.AppKey("options", dict)
JSON = "application/json"
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def _bad_request(message: str) -> web.Response:
    return _json(payloads.error_body(400, message), status=400)


async def _read_json(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(
            body=payloads.error_body(400, "request body is not valid JSON"), content_type=JSON
        ) from None


def _reset_connection(request: web.Request) -> None:
    """Close the socket with an RST and no response bytes (linger 0, then abort)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _hang(request: web.Request) -> None:
    # The app runs with handler_cancellation, so a client that gives up cancels this sleep.
    await asyncio.sleep(request.app[OPTIONS_KEY]["stall_seconds"])


async def _request_fault(request: web.Request, fault: Fault) -> web.StreamResponse:
    if fault.kind == "reset":
        _reset_connection(request)
        await _hang(request)
        raise web.HTTPServiceUnavailable  # only reached when the socket outlived the abort
    if fault.kind == "stall":
        if fault.phase == "headers":
            response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
            await response.prepare(request)
        await _hang(request)
        raise web.HTTPGatewayTimeout  # stall_seconds elapsed without the client giving up
    if fault.kind == "refuse_prefix":
        message = fault.message or "This model does not support assistant message prefill"
        return _json(payloads.error_body(400, message, fault.code), 400)
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
    return _json(
        payloads.error_body(fault.status, fault.message, fault.code), fault.status, headers
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await _read_json(request)
    if not isinstance(body, dict):
        return _bad_request("request body must be a JSON object")
    model = str(body.get("model", "unknown"))
    stream = bool(body.get("stream"))
    controls = request.app[CONTROLS_KEY]
    controls.count(model, "chat")
    prefix = payloads.assistant_prefix(body.get("messages"))
    plan = controls.resolve(model, stream, prefixed=prefix is not None)
    if plan.latency_ms:
        await asyncio.sleep(plan.latency_ms / 1000)
    if plan.fault is not None and plan.fault.kind in REQUEST_FAULTS:
        return await _request_fault(request, plan.fault)
    text = payloads.sized_text(model, plan.response_text, plan.response_bytes)
    if prefix and text.startswith(prefix) and len(text) > len(prefix):
        text = text[len(prefix) :]  # continue the partial answer, as a prefill does
    prompt = payloads.prompt_tokens(body.get("messages"))
    if not stream:
        return _json(payloads.completion_body(model, text, prompt_tokens=prompt))
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return await _stream(request, model, text, prompt, plan, include_usage)


async def _stream(
    request: web.Request,
    model: str,
    text: str,
    prompt: int,
    plan: Behaviour,
    include_usage: bool,
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await response.prepare(request)
    fault = plan.fault
    stream_id = payloads.new_stream_id()
    delay = plan.chunk_delay_ms / 1000
    for index, piece in enumerate(payloads.split_pieces(text, plan.stream_chunks)):
        if fault is not None and index == fault.after:
            if fault.kind == "stream_stall":
                await _hang(request)
            elif fault.kind == "stream_cut":
                _reset_connection(request)
                await _hang(request)
            elif fault.kind == "stream_malformed":
                await response.write(payloads.MALFORMED_EVENT)
        delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
        await response.write(payloads.chunk_event(stream_id, model, delta))
        if delay:
            await asyncio.sleep(delay)
    await response.write(payloads.chunk_event(stream_id, model, {}, finish_reason="stop"))
    if include_usage:
        await response.write(payloads.usage_event(stream_id, model, prompt, payloads.words(text)))
    if fault is None or fault.kind != "stream_no_done":
        await response.write(payloads.DONE_EVENT)
    await response.write_eof()
    return response


async def embeddings(request: web.Request) -> web.StreamResponse:
    body = await _read_json(request)
    if not isinstance(body, dict) or "input" not in body:
        return _bad_request("embeddings need an `input`")
    model = str(body.get("model", "unknown"))
    raw = body["input"]
    inputs = [raw] if isinstance(raw, str) else [str(item) for item in raw]
    controls = request.app[CONTROLS_KEY]
    controls.count(model, "embeddings")
    plan = controls.resolve(model, stream=False)
    if plan.latency_ms:
        await asyncio.sleep(plan.latency_ms / 1000)
    if plan.fault is not None:
        return await _request_fault(request, plan.fault)
    dims = body.get("dimensions") or request.app[OPTIONS_KEY]["embedding_dims"]
    encoding = str(body.get("encoding_format") or "float")
    return _json(payloads.embeddings_body(model, inputs, int(dims), encoding))


async def list_models(request: web.Request) -> web.Response:
    request.app[CONTROLS_KEY].endpoints["models"] += 1
    return _json(payloads.models_body(request.app[CONTROLS_KEY].known_models()))


async def get_control(request: web.Request) -> web.Response:
    return _json(orjson.dumps(request.app[CONTROLS_KEY].snapshot()))


async def post_control(request: web.Request) -> web.Response:
    controls = request.app[CONTROLS_KEY]
    try:
        controls.apply(await _read_json(request))
    except ControlError as exc:
        return _bad_request(str(exc))
    return _json(orjson.dumps(controls.snapshot()))


async def get_stats(request: web.Request) -> web.Response:
    return _json(orjson.dumps(request.app[CONTROLS_KEY].stats()))


async def health(request: web.Request) -> web.Response:
    return _json(b'{"status":"ok"}')


def create_app(
    controls: Controls | None = None,
    *,
    embedding_dims: int = payloads.DEFAULT_EMBEDDING_DIMS,
    stall_seconds: float = 3600.0,
) -> web.Application:
    app = web.Application()
    app[CONTROLS_KEY] = controls or Controls()
    app[OPTIONS_KEY] = {"embedding_dims": embedding_dims, "stall_seconds": stall_seconds}
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/_control", get_control)
    app.router.add_post("/_control", post_control)
    app.router.add_get("/_stats", get_stats)
    app.router.add_get("/_health", health)
    return app


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port in the running loop; the caller awaits `runner.cleanup()`."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
