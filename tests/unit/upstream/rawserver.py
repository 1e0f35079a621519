"""A loopback HTTP/1.1 server written on raw asyncio streams, to misbehave on purpose.

aiohttp.web and uvicorn answer properly; this one can cut a body short, hang up without an
answer, close a kept-alive connection under the client, or stall. Each connection runs
`behaviour(request_number_on_this_connection)` to pick what to do with each request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Literal

Behaviour = Literal["answer", "cut_body", "cut_stream", "hang_up", "stall"]
BODY = b'{"model": "m-1", "choices": []}'
EVENT = b'data: {"model": "m-1", "choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n'


async def _read_request(reader: asyncio.StreamReader) -> bool:
    """Read one request (head and Content-Length body); False at end of connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return True


def _head(length: int, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(length).encode() + b"\r\n\r\n"
    )


class RawServer:
    def __init__(self, behaviour: Callable[[int], Behaviour]) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.requests = 0
        self.url = ""
        self.handlers: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        served = 0
        try:
            while await _read_request(reader):
                served += 1
                self.requests += 1
                action = self.behaviour(served)
                if action == "answer":
                    writer.write(_head(len(BODY)) + BODY)
                    await writer.drain()
                    continue
                if action == "cut_body":  # promise 1000 bytes, send 10, reset
                    writer.write(_head(1000) + BODY[:10])
                    await writer.drain()
                    writer.transport.abort()
                elif action == "cut_stream":  # one whole SSE event, then a reset
                    writer.write(_head(100_000, b"text/event-stream") + EVENT)
                    await writer.drain()
                    await asyncio.sleep(0.05)  # let the client read the event first
                    writer.transport.abort()
                elif action == "stall":
                    await asyncio.sleep(3600)
                return  # hang_up: close without a byte of answer
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()


@asynccontextmanager
async def raw_server(behaviour: Callable[[int], Behaviour]) -> AsyncIterator[RawServer]:
    server = RawServer(behaviour)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        listener.close()
        for task in server.handlers:  # a stalled handler ends here, closing its connection
            task.cancel()
        await asyncio.gather(*server.handlers, return_exceptions=True)
        await listener.wait_closed()
