"""Run an app in-process for a test: lifespan on, httpx client over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI


@asynccontextmanager
async def app_client(
    app: FastAPI, client_ip: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(client_ip, 54321))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client
