"""Moving-window rate limits per caller, per client address and on login.

Storage consequence, stated plainly: with the default `memory://` storage every gunicorn worker
process counts on its own, so the effective limit a client meets is up to
N workers x M pods x the configured limit (2 workers x 3 pods x 60/minute = 360/minute), and a
restart forgets all counts. Set RATE_LIMIT_STORAGE_URI to a shared store (e.g. `redis://...`,
with the matching `limits` extra installed) to enforce the limit across workers and pods.

Login attempts are limited twice: per client address and per username. Both must pass, so a
password-guessing run against one account from many addresses is stopped by the per-username
limit, and one address spraying many accounts by the per-address one.

A failing shared store fails open (the request is served and `rate_limit_storage_failed` is
logged): a limiter outage must not become a gateway outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.errors import StorageError
from limits.storage import storage_from_string

from llm_gateway.errors import RateLimited
from llm_gateway.observability.metrics import Metrics
from llm_gateway.ratelimit.local_windows import LocalWindows
from llm_gateway.settings import ConfigurationError, redact_url

log = logging.getLogger(__name__)


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


def async_storage_uri(uri: str) -> str:
    """`memory://` -> `async+memory://`: settings use the plain scheme, limits.aio the async one."""
    return uri if uri.startswith("async+") else f"async+{uri}"


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
        storage: Storage | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`storage` replaces the one built from `storage_uri` (tests inject one)."""
        self._storage_uri = storage_uri
        # memory:// is counted in-process by LocalWindows (see there why not limits' storage);
        # a shared store, or an injected one, goes through limits.
        self._counts_locally = storage is None and _is_memory(storage_uri)
        if storage is None and enabled and not self._counts_locally:
            # Building a storage object does no I/O (clients connect on first use), so a bad
            # URI fails here, in create_app, as a one-line configuration error.
            storage = _build_storage(storage_uri)
        self._user = parse_many(user_limit)
        self._ip = parse_many(ip_limit)
        self._login = parse_many(login_limit)
        self._metrics = metrics
        self._clock = clock
        self.enabled = enabled
        self._storage = storage
        self._strategy: MovingWindowRateLimiter | None = None
        self._local: LocalWindows | None = None

    async def open(self) -> None:
        if not self.enabled:
            return
        if self._counts_locally:
            self._local = LocalWindows(clock=self._clock)
            log.info(
                "rate_limiter_opened",
                extra={"storage": redact_url(self._storage_uri), "per_process": True},
            )
            return
        if self._storage is None:
            self._storage = _build_storage(self._storage_uri)
        try:
            healthy = await self._storage.check()
        except StorageError:
            healthy = False
        if not healthy:
            log.warning("rate_limit_storage_unreachable", extra={"detail": "limits fail open"})
        self._strategy = MovingWindowRateLimiter(self._storage)
        log.info(
            "rate_limiter_opened",
            extra={
                "storage": redact_url(self._storage_uri),
                "per_process": self._storage_uri.startswith(("memory://", "async+memory://")),
            },
        )

    async def close(self) -> None:
        # No reset(): on a shared store that would wipe every pod's counts. Memory counts die
        # with the process anyway; what remains is the memory storage's expiry sweep task.
        storage, self._storage, self._strategy, self._local = self._storage, None, None, None
        timer = getattr(storage, "timer", None)
        if isinstance(timer, asyncio.Task) and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def check_user(self, subject: str) -> LimitStatus | None:
        return await self._check("user", self._user, ("user", subject))

    async def check_ip(self, address: str) -> LimitStatus | None:
        return await self._check("ip", self._ip, ("ip", address))

    async def check_login(self, address: str, username: str) -> LimitStatus | None:
        by_address = await self._check("login", self._login, ("login_ip", address))
        # casefold: "Admin" and "admin" are one target for a guesser whatever the store thinks.
        by_user = await self._check("login", self._login, ("login_user", username.casefold()))
        if by_address is None or by_user is None:
            return by_address or by_user
        return min(by_address, by_user, key=lambda status: status.remaining)

    async def _check(
        self, scope: str, items: list[RateLimitItem], identity: tuple[str, str]
    ) -> LimitStatus | None:
        """Count a hit against every item: the tightest status, or RateLimited at the first full."""
        strategy = self._strategy
        if not self.enabled:
            return None
        if self._local is not None:
            return self._check_locally(self._local, scope, items, identity)
        if strategy is None:
            raise RuntimeError("RateLimiter.open() was not awaited before use")
        tightest: LimitStatus | None = None
        try:
            for item in items:
                allowed = await strategy.hit(item, *identity)
                reset_at, remaining = await strategy.get_window_stats(item, *identity)
                if not allowed:
                    self._refuse(scope, item, reset_at)
                status = LimitStatus(item.amount, remaining, reset_at)
                if tightest is None or status.remaining < tightest.remaining:
                    tightest = status
        except StorageError as exc:
            log.warning(
                "rate_limit_storage_failed",
                extra={"scope": scope, "error_class": type(exc.storage_error).__name__},
            )
            return None
        return tightest

    def _check_locally(
        self,
        windows: LocalWindows,
        scope: str,
        items: list[RateLimitItem],
        identity: tuple[str, str],
    ) -> LimitStatus:
        tightest: LimitStatus | None = None
        for item in items:
            hit = windows.hit(item.key_for(*identity), item.amount, item.get_expiry())
            if not hit.allowed:
                self._refuse(scope, item, hit.reset_at)
            if tightest is None or hit.remaining < tightest.remaining:
                tightest = LimitStatus(item.amount, hit.remaining, hit.reset_at)
        assert tightest is not None  # parse_many never returns an empty list
        return tightest

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


def _is_memory(storage_uri: str) -> bool:
    return storage_uri.startswith(("memory://", "async+memory://"))


def _storage_problem(storage_uri: str) -> ConfigurationError:
    scheme = storage_uri.partition("://")[0]
    return ConfigurationError(
        [
            f"RATE_LIMIT_STORAGE_URI {redact_url(storage_uri)}: storage '{scheme}' is unknown "
            "or its client library is not installed (memory:// is built in)"
        ]
    )


def _build_storage(storage_uri: str) -> Storage:
    try:
        built = storage_from_string(async_storage_uri(storage_uri), wrap_exceptions=True)
    except LimitsConfigurationError:
        # limits' own message repeats the URI, password included: never pass it on.
        raise _storage_problem(storage_uri) from None
    if not isinstance(built, Storage):  # pragma: no cover - async+ schemes are async storages
        raise _storage_problem(storage_uri)
    return built


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


def _scope_name(scope: str) -> str:
    return {"user": "caller", "ip": "client address", "login": "address and username"}[scope]
