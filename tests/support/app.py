"""Run an app in-process for a test: lifespan on, httpx client over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from llm_gateway.api.deps import started_services
from llm_gateway.services import Services


@asynccontextmanager
async def app_client(
    app: FastAPI, client_ip: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(client_ip, 54321))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def running_services(app: object) -> Services:
    """The parts of an app whose lifespan is running (app_client), to steer or read them."""
    services = started_services(app)
    assert services is not None, "the app's lifespan has not started"
    return services
