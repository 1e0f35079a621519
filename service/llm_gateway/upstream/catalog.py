"""What LiteLLM serves, and each model's cascade, as LiteLLM itself reports them.

`GET /v1/models?include_metadata=true` lists every model group with `metadata.fallbacks`: the
groups LiteLLM's router falls back to, in order. A model's cascade is the model, then its
fallbacks, then theirs (LiteLLM follows nested fallbacks), without repeats. There is no second,
hand-kept list: change the LiteLLM config and the gateway follows within `ttl` seconds.

The list is fetched once per `ttl`, one fetch at a time. A failed refresh keeps the last known
list (a cascade read a minute ago beats none); with no list at all, a model's cascade is the
model alone, which makes the time budget give it the whole per-model timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from llm_gateway.errors import GatewayError, UpstreamError

log = logging.getLogger(__name__)

MODELS_PATH = "/v1/models?include_metadata=true"
# After a failed refresh, how long the last known list (or none) is used before trying again.
RETRY_AFTER_FAILURE_SECONDS = 5.0


def cascades(models: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Each model id's cascade: itself, then its fallbacks, transitively, without repeats."""
    direct: dict[str, list[str]] = {}
    for entry in models:
        model_id = entry.get("id")
        metadata = entry.get("metadata")
        fallbacks = metadata.get("fallbacks") if isinstance(metadata, dict) else None
        if isinstance(model_id, str):
            direct[model_id] = [f for f in fallbacks or () if isinstance(f, str)]
    result: dict[str, tuple[str, ...]] = {}
    for model_id in direct:
        chain = [model_id]
        index = 0
        while index < len(chain):
            for target in direct.get(chain[index], ()):
                if target not in chain:
                    chain.append(target)
            index += 1
        result[model_id] = tuple(chain)
    return result


class ModelCatalog:
    def __init__(
        self,
        fetch: Callable[[str], Awaitable[dict[str, Any]]],
        *,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._models: list[dict[str, Any]] | None = None
        self._cascades: dict[str, tuple[str, ...]] = {}
        self._expire_at = 0.0
        self._quiet_until = 0.0  # no cascade refresh before this, after a failed one
        self._lock = asyncio.Lock()

    async def models(self) -> list[dict[str, Any]]:
        """The model list as OpenAI's API shows it (LiteLLM's metadata left out); raises when
        LiteLLM cannot be asked."""
        if self._models is None or self._clock() >= self._expire_at:
            await self._refresh()
        assert self._models is not None
        return [{k: v for k, v in entry.items() if k != "metadata"} for entry in self._models]

    async def cascade(self, model: str) -> tuple[str, ...]:
        """`model` and the models LiteLLM falls back to after it, in order; never raises."""
        now = self._clock()
        if now >= self._expire_at and now >= self._quiet_until:
            try:
                await self._refresh()
            except GatewayError as exc:
                self._quiet_until = self._clock() + RETRY_AFTER_FAILURE_SECONDS
                log.warning("model_catalog_refresh_failed", extra={"error_message": str(exc)})
        return self._cascades.get(model, (model,))

    async def _refresh(self) -> None:
        expire_at = self._expire_at
        async with self._lock:
            if self._expire_at != expire_at and self._clock() < self._expire_at:
                return  # another caller refreshed while this one waited
            body = await self._fetch(MODELS_PATH)
            data = body.get("data")
            if not isinstance(data, list):
                raise UpstreamError("The upstream's model list has no `data` array")
            self._models = [item for item in data if isinstance(item, dict)]
            self._cascades = cascades(self._models)
            self._expire_at = self._clock() + self._ttl
