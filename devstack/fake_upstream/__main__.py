"""`python -m devstack.fake_upstream --port N [--latency-ms 20] [--response-bytes 1024]`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from devstack.fake_upstream.controls import Controls
from devstack.fake_upstream.payloads import DEFAULT_EMBEDDING_DIMS
from devstack.fake_upstream.server import create_app, start


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.fake_upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument(
        "--response-bytes", type=int, default=None, help="pad non-streamed bodies to ~N bytes"
    )
    parser.add_argument("--embedding-dims", type=int, default=DEFAULT_EMBEDDING_DIMS)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    controls = Controls(latency_ms=args.latency_ms, response_bytes=args.response_bytes)
    app = create_app(controls, embedding_dims=args.embedding_dims)
    runner = await start(app, args.host, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(f"fake upstream listening on http://{args.host}:{args.port}\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        # Bounded: stalled handlers are cancelled rather than waited for.
        await runner.shutdown()
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop  # uvicorn[standard] brings it: noticeably faster for the benchmark
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
