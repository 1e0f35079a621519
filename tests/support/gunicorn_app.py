"""gunicorn entry point for integration tests: the real app from the environment + test routes."""

from __future__ import annotations

from fastapi import FastAPI

from llm_gateway.settings import load_settings
from tests.support.edge_app import edge_app


def create() -> FastAPI:
    return edge_app(load_settings())
