"""The lifespan's wiring: one frozen Services, and each part's health check registered once."""

from __future__ import annotations

import dataclasses
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from llm_gateway.settings import READINESS_CHECK_NAMES
from llm_gateway.wiring import AppOverrides, build_edge, open_services
from tests.support.settings import make_settings


async def test_every_enabled_part_registers_its_check(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        CACHE_ENABLED="true",
        TRACKING_ENABLED="true",
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_STORAGE_URI="memory://",
        METRICS_ENABLED="false",
    )
    overrides = AppOverrides()
    async with AsyncExitStack() as stack:
        services = await open_services(settings, build_edge(settings, overrides), overrides, stack)
        names = services.health.names
    assert names == ["litellm", "circuit_breaker", "rate_limit_storage", "qdrant", "mlflow"]
    # Every name READINESS_CHECKS accepts is a check some part registers.
    assert set(READINESS_CHECK_NAMES) <= set(names)


async def test_a_disabled_part_registers_nothing_and_the_container_is_frozen(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)  # cache, tracking and rate limits off
    overrides = AppOverrides()
    async with AsyncExitStack() as stack:
        services = await open_services(settings, build_edge(settings, overrides), overrides, stack)
    assert services.health.names == ["litellm", "circuit_breaker"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        services.llm = services.llm  # type: ignore[misc]
