"""Moving-window rate limits per caller, per client address and on login.

Where the windows are counted is RATE_LIMIT_STORAGE_URI (see stores.py): by default one SQLite
file shared by every gunicorn worker of the pod, so a client meets exactly the configured limit
whatever WEB_CONCURRENCY is; `redis://...` shares the counts across pods too; `memory://` counts
per worker process (the effective limit is then workers x pods x the limit).

Login attempts are limited twice: per client address and per username. Both must pass, so a
password-guessing run against one account from many addresses is stopped by the per-username
limit, and one address spraying many accounts by the per-address one. They use the same store,
so they are shared the same way.

A store outside the process (the shared file, Redis) can fail or be slow: every check on it is
bounded by RATE_LIMIT_STORAGE_TIMEOUT, and a failure is met as RATE_LIMIT_STORAGE_FAILURE says
(storage_health.py): served unlimited (`open`) or refused with 503 (`closed`), never a 500 and
never a request held past the timeout.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.errors import StorageError

from llm_gateway.errors import RateLimited, RateLimitUnavailable
from llm_gateway.health import CheckFailed
from llm_gateway.observability.metrics import Metrics
from llm_gateway.ratelimit.local_windows import LocalWindows, WindowHit
from llm_gateway.ratelimit.storage_health import FailureMode, StorageHealth
from llm_gateway.ratelimit.stores import (
    LimitsStore,
    LocalStore,
    Window,
    WindowStore,
    async_storage_uri,
    build_store,
    local_hits,
)
from llm_gateway.urls import redact_url

if TYPE_CHECKING:
    from llm_gateway.settings import Settings

log = logging.getLogger(__name__)

# What a failing store raises: limits wraps its clients' errors in StorageError; SQLite and the
# file system raise their own; the bound on one check raises TimeoutError.
STORE_ERRORS = (StorageError, sqlite3.Error, OSError, TimeoutError)

__all__ = ["LimitStatus", "RateLimiter", "async_storage_uri"]


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """Where a caller stands after a successful check, for X-RateLimit-* on successes."""

    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the oldest counted hit leaves the window

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }


class _StoreSkipped(Exception):
    """The store is marked down and its next probe is not due: not asked at all."""


class RateLimiter:
    def __init__(
        self,
        storage_uri: str,
        user_limit: str,
        ip_limit: str,
        login_limit: str,
        metrics: Metrics | None,
        *,
        enabled: bool = True,
        failure_mode: FailureMode = "open",
        storage_timeout: float = 0.25,
        storage_retry_seconds: float = 1.0,
        storage_password: str | None = None,
        storage: Storage | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`storage` replaces the one built from `storage_uri` (tests inject one)."""
        self._storage_uri = storage_uri
        self._user = parse_many(user_limit)
        self._ip = parse_many(ip_limit)
        self._login = parse_many(login_limit)
        self._metrics = metrics
        self._clock = clock
        self._timeout = storage_timeout
        self.enabled = enabled
        self._store: WindowStore | None = None
        if storage is not None:
            self._store = LimitsStore(storage)
        elif enabled:
            # Building a store does no I/O (clients connect on first use), so a bad URI fails
            # here, in create_app, as a one-line configuration error.
            self._store = build_store(
                storage_uri, timeout=storage_timeout, password=storage_password, clock=clock
            )
        self._health = StorageHealth(
            redact_url(storage_uri), failure_mode, metrics, retry_seconds=storage_retry_seconds
        )
        self._opened = False

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None) -> RateLimiter:
        password = settings.rate_limit_storage_password
        return cls(
            settings.rate_limit_storage_uri,
            settings.rate_limit_user,
            settings.rate_limit_ip,
            settings.rate_limit_login,
            metrics,
            enabled=settings.rate_limit_enabled,
            failure_mode=settings.rate_limit_storage_failure,
            storage_timeout=settings.rate_limit_storage_timeout,
            storage_retry_seconds=settings.rate_limit_storage_retry_seconds,
            storage_password=password.get_secret_value() if password is not None else None,
        )

    @property
    def local_windows(self) -> LocalWindows | None:
        store = self._store
        return store.windows if isinstance(store, LocalStore) else None

    async def open(self) -> None:
        if not self.enabled or self._store is None:
            return
        store = self._store
        await store.open()
        self._opened = True
        if store.external:
            try:
                async with asyncio.timeout(self._timeout):
                    healthy = await store.check()
            except STORE_ERRORS:
                healthy = False
            if not healthy:
                self._health.failed(ConnectionError("no answer when the limiter opened"))
        log.info(
            "rate_limiter_opened",
            extra={
                "storage": redact_url(self._storage_uri),
                "per_process": not store.external,
                "failure_mode": self._health.mode,
            },
        )

    async def close(self) -> None:
        store, self._opened = self._store, False
        if store is not None:
            await store.close()

    async def health(self) -> dict[str, Any]:
        """For /health/detailed: where this worker last found the store."""
        details = {
            "storage": self._health.storage,
            "shared": bool(self._store is not None and self._store.external),
            "failure_mode": self._health.mode,
        }
        if not self._health.up:
            raise CheckFailed("rate-limit store failing", details)
        return details

    async def check_request(self, address: str, subject: str) -> LimitStatus | None:
        """Both limits of an API request (per client address, then per caller) in one store call."""
        return await self._check(
            (("ip", self._ip, ("ip", address)), ("user", self._user, ("user", subject)))
        )

    async def check_user(self, subject: str) -> LimitStatus | None:
        return await self._check((("user", self._user, ("user", subject)),))

    async def check_ip(self, address: str) -> LimitStatus | None:
        return await self._check((("ip", self._ip, ("ip", address)),))

    async def check_login(self, address: str, username: str) -> LimitStatus | None:
        # casefold: "Admin" and "admin" are one target for a guesser whatever the store thinks.
        return await self._check(
            (
                ("login", self._login, ("login_ip", address)),
                ("login", self._login, ("login_user", username.casefold())),
            )
        )

    async def _check(
        self, checks: tuple[tuple[str, list[RateLimitItem], tuple[str, str]], ...]
    ) -> LimitStatus | None:
        """Count a hit in every window of `checks` (scope, limits, identity), in order: the
        tightest status, or RateLimited at the first full window (later ones are not counted)."""
        if not self.enabled:
            return None
        store = self._store
        if store is None or not self._opened:
            raise RuntimeError("RateLimiter.open() was not awaited before use")
        scopes = [scope for scope, items, _ in checks for _item in items]
        windows = [(item, identity) for _, items, identity in checks for item in items]
        if isinstance(store, LocalStore):
            # The per-process store answers synchronously: no await on the hot path.
            hits = local_hits(store.windows, windows)
        else:
            external_hits = await self._external_hits(store, windows)
            if external_hits is None:
                return None
            hits = external_hits
        tightest: LimitStatus | None = None
        for scope, (item, _), hit in zip(scopes, windows, hits, strict=False):
            if not hit.allowed:
                self._refuse(scope, item, hit.reset_at)
            if tightest is None or hit.remaining < tightest.remaining:
                tightest = LimitStatus(item.amount, hit.remaining, hit.reset_at)
        return tightest

    async def _external_hits(
        self, store: WindowStore, windows: list[Window]
    ) -> list[WindowHit] | None:
        """The store's answer; on failure None (fail open) or RateLimitUnavailable (closed)."""
        health = self._health
        try:
            if not health.should_try():
                raise _StoreSkipped
            async with asyncio.timeout(self._timeout):
                hits = await store.hit_all(windows)
        except (StorageError, sqlite3.Error, OSError, TimeoutError, _StoreSkipped) as exc:
            health.failed(exc)
            if health.mode == "closed":
                raise RateLimitUnavailable(retry_after=1.0) from None
            return None
        health.succeeded()
        return hits

    def _refuse(self, scope: str, item: RateLimitItem, reset_at: float) -> None:
        if self._metrics is not None:
            self._metrics.rate_limited.labels(scope).inc()
        retry_after = max(1.0, reset_at - self._clock())
        raise RateLimited(
            f"Rate limit exceeded: {item.amount} per {_window(item)} per {_scope_name(scope)}; "
            f"retry in {math.ceil(retry_after)} s",
            retry_after=retry_after,
            headers={
                "X-RateLimit-Limit": str(item.amount),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(math.ceil(reset_at)),
            },
        )


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


def _scope_name(scope: str) -> str:
    return {"user": "caller", "ip": "client address", "login": "address and username"}[scope]
