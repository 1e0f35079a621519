"""Where rate-limit windows are counted, chosen by RATE_LIMIT_STORAGE_URI.

    memory://            LocalWindows in this process: each worker counts on its own
    sqlite://            SharedWindows in a file every worker of the pod opens (the default;
                         gunicorn_conf turns the bare URI into the file the master made)
    sqlite:///path/file  the same in a file you name
    redis://...          limits' async Redis storage (redis-py): every pod shares the counts

Each store counts the hits of one request's windows (all its limits: per address and per caller,
or per address and per username on login) in order, in one transaction where the store has
them, and stops at the first refusal; the limiter decides what a refusal or a failing store
means for the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from limits import RateLimitItem
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.storage import storage_from_string

from llm_gateway.errors import ConfigurationError
from llm_gateway.ratelimit.local_windows import LocalWindows, WindowHit
from llm_gateway.ratelimit.shared_windows import SharedWindows
from llm_gateway.urls import redact_url

SHARED_FILE_NAME = "windows.sqlite3"
# One window to count a hit in: a parsed limit and whose it is, e.g. (60/minute, ("ip", addr)).
Window = tuple[RateLimitItem, tuple[str, str]]
_QUICK_RETRIES = 3
_LOCK_BACKOFF_SECONDS = 0.0005
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix")


class WindowStore(Protocol):
    # True when the count lives outside this process and so can fail or be slow.
    external: bool

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def hit_all(self, windows: Sequence[Window]) -> list[WindowHit]: ...

    async def check(self) -> bool: ...


def is_memory(uri: str) -> bool:
    return uri.startswith(("memory://", "async+memory://"))


def is_shared_file(uri: str) -> bool:
    return uri.startswith("sqlite://")


def shared_file_path(uri: str) -> Path | None:
    """`sqlite:///var/x.db` -> /var/x.db; bare `sqlite://` -> None (a private file)."""
    path = uri.removeprefix("sqlite://")
    return Path(path) if path else None


def async_storage_uri(uri: str) -> str:
    """`memory://` -> `async+memory://`: settings use the plain scheme, limits.aio the async one."""
    return uri if uri.startswith("async+") else f"async+{uri}"


class LocalStore:
    """Counts in this process (see LocalWindows for why not limits' memory storage)."""

    external = False

    def __init__(self, windows: LocalWindows) -> None:
        self.windows = windows

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        self.windows.clear()

    async def hit_all(self, windows: Sequence[Window]) -> list[WindowHit]:
        return local_hits(self.windows, windows)

    async def check(self) -> bool:
        return True


def local_hits(local: LocalWindows, windows: Sequence[Window]) -> list[WindowHit]:
    hits: list[WindowHit] = []
    for item, identity in windows:
        hit = local.hit(item.key_for(*identity), item.amount, item.get_expiry())
        hits.append(hit)
        if not hit.allowed:
            break
    return hits


class SharedFileStore:
    """SharedWindows; with no path, a private file in a directory removed at close."""

    external = True

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._private_dir: Path | None = None
        self._windows: SharedWindows | None = None

    async def open(self) -> None:
        path = self._path
        if path is None:
            # One process outside gunicorn (tests, `uvicorn` by hand): exact for that process.
            self._private_dir = Path(tempfile.mkdtemp(prefix="llm-gateway-ratelimit-"))
            path = self._private_dir / SHARED_FILE_NAME
        self._windows = SharedWindows(path, clock=self._clock)
        self._windows.open()

    async def close(self) -> None:
        windows, self._windows = self._windows, None
        if windows is not None:
            windows.close()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

    async def hit_all(self, windows: Sequence[Window]) -> list[WindowHit]:
        shared = self._windows
        if shared is None:
            raise RuntimeError("SharedFileStore.open() was not awaited before use")
        specs = [
            (item.key_for(*identity), item.amount, float(item.get_expiry()))
            for item, identity in windows
        ]
        # A sibling worker holds the file for tens of microseconds: yield to the loop meanwhile
        # (the limiter's timeout bounds the wait should the sibling be stopped). After a few
        # quick retries, sleep a little: on a busy node the holder may have been preempted,
        # and spinning would take the very CPU it needs to finish.
        attempts = 0
        while True:
            hits = shared.try_hit_all(specs)
            if hits is not None:
                return hits
            attempts += 1
            await asyncio.sleep(0 if attempts <= _QUICK_RETRIES else _LOCK_BACKOFF_SECONDS)

    async def check(self) -> bool:
        return self._windows is not None


class LimitsStore:
    """A `limits` async storage (Redis in production) under its moving-window strategy."""

    external = True

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._strategy = MovingWindowRateLimiter(storage)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        # No reset(): on a shared store that would wipe every pod's counts.
        storage = self.storage
        timer = getattr(storage, "timer", None)  # limits' memory storage's sweep task
        if isinstance(timer, asyncio.Task) and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        bridge = getattr(storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        aclose = getattr(client, "aclose", None)
        if aclose is not None:
            await aclose()

    async def hit_all(self, windows: Sequence[Window]) -> list[WindowHit]:
        hits: list[WindowHit] = []
        for item, identity in windows:
            allowed = await self._strategy.hit(item, *identity)
            reset_at, remaining = await self._strategy.get_window_stats(item, *identity)
            hits.append(WindowHit(allowed, remaining, reset_at))
            if not allowed:
                break
        return hits

    async def check(self) -> bool:
        return bool(await self.storage.check())


def build_store(
    uri: str,
    *,
    timeout: float,
    password: str | None = None,
    clock: Callable[[], float] = time.time,
) -> WindowStore:
    """The store for `uri`; no I/O (clients connect on first use), so a bad URI fails here."""
    if is_memory(uri):
        return LocalStore(LocalWindows(clock=clock))
    if is_shared_file(uri):
        path = shared_file_path(uri)
        if path is not None and not path.is_absolute():
            raise ConfigurationError(
                [f"RATE_LIMIT_STORAGE_URI {uri}: a sqlite path must be absolute (sqlite:///...)"]
            )
        return SharedFileStore(path, clock)
    return LimitsStore(build_limits_storage(uri, timeout=timeout, password=password))


def build_limits_storage(uri: str, *, timeout: float, password: str | None = None) -> Storage:
    options: dict[str, float | str | bool] = {}
    if uri.removeprefix("async+").startswith(tuple(f"{s}://" for s in _REDIS_SCHEMES)):
        # redis-py, with every socket operation bounded: a slow Redis fails the check in time
        # (the limiter bounds the whole check too). A password in the URL wins over this one.
        options = {
            "implementation": "redispy",
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        if password:
            options["password"] = password
    try:
        built = storage_from_string(async_storage_uri(uri), wrap_exceptions=True, **options)
    except LimitsConfigurationError:
        # limits' own message repeats the URI, password included: never pass it on.
        raise _storage_problem(uri) from None
    if not isinstance(built, Storage):  # pragma: no cover - async+ schemes are async storages
        raise _storage_problem(uri)
    return built


def _storage_problem(uri: str) -> ConfigurationError:
    scheme = uri.partition("://")[0]
    return ConfigurationError(
        [
            f"RATE_LIMIT_STORAGE_URI {redact_url(uri)}: storage '{scheme}' is unknown "
            "or its client library is not installed "
            "(memory://, sqlite:// and redis:// are built in)"
        ]
    )
