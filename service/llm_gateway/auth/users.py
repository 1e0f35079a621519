"""People who log in with a password: loaded from settings once, verified off the event loop.

Sources, merged: USERS_FILE (JSON or YAML list of {username, password_hash, role}) and
USERS_JSON (the same list inline). In ENVIRONMENT=development only, built-in `admin` and `user`
accounts with DEV_PASSWORD are added (configured users of those names win). Production never
invents an account: with none configured the store is empty and API keys are the only way in.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from llm_gateway.auth.entries import check_entry, parse_document, read_file
from llm_gateway.auth.passwords import hash_password, looks_like_argon2_hash, verify_password
from llm_gateway.auth.principal import Principal, Role
from llm_gateway.errors import ConfigurationError
from llm_gateway.settings import Settings

log = logging.getLogger(__name__)

DEVELOPMENT_USERS: tuple[tuple[str, Role], ...] = (("admin", "admin"), ("user", "user"))


@dataclass(frozen=True, slots=True)
class UserRecord:
    username: str
    password_hash: str
    role: Role


class UserStore:
    def __init__(
        self,
        users: Iterable[UserRecord] = (),
        *,
        verifier: Callable[[str, str], bool] = verify_password,
    ) -> None:
        """`verifier(password_hash, password)` is argon2 verification; tests may inject a spy."""
        self._users = {user.username: user for user in users}
        self._verify = verifier
        # Unknown usernames are verified against this hash, so a failed login costs the same
        # argon2 work whether or not the account exists: timing does not list the usernames.
        self._dummy_hash = hash_password(secrets.token_urlsafe(16))

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, username: object) -> bool:
        return username in self._users

    @classmethod
    def from_settings(
        cls, settings: Settings, *, verifier: Callable[[str, str], bool] = verify_password
    ) -> UserStore:
        """Build the store, or raise ConfigurationError with one line per problem."""
        records = load_user_records(settings)
        if settings.is_development:
            password = settings.dev_password.get_secret_value()
            added = []
            for username, role in DEVELOPMENT_USERS:
                if username not in records:
                    records[username] = UserRecord(username, hash_password(password), role)
                    added.append(username)
            log.warning(
                "development_users_enabled",
                extra={
                    "usernames": added,
                    "detail": "ENVIRONMENT=development: built-in accounts use DEV_PASSWORD; "
                    "never run this mode where others can reach it",
                },
            )
        elif not records:
            log.warning(
                "no_users_configured",
                extra={
                    "detail": "no USERS_FILE or USERS_JSON: password login refuses everyone; "
                    "API keys still work"
                },
            )
        return cls(records.values(), verifier=verifier)

    async def authenticate(self, username: str, password: str) -> Principal | None:
        """The user's principal when the password matches, otherwise None (unknown or wrong)."""
        record = self._users.get(username)
        password_hash = record.password_hash if record is not None else self._dummy_hash
        # argon2 takes tens of milliseconds of CPU: in a worker thread the event loop keeps
        # serving other requests meanwhile (argon2-cffi releases the GIL while hashing).
        matches = await asyncio.to_thread(self._verify, password_hash, password)
        if record is None or not matches:
            return None
        return Principal(subject=record.username, role=record.role, kind="user")


def load_user_records(settings: Settings) -> dict[str, UserRecord]:
    """The configured users (no development accounts), or ConfigurationError listing problems.

    Pure parsing with no side effects, so `check-config` can validate users before serving.
    """
    problems: list[str] = []
    entries: list[tuple[str, int, Any]] = []
    if settings.users_file is not None:
        document, found = read_file(settings.users_file, "USERS_FILE")
        problems.extend(found)
        source = f"USERS_FILE {settings.users_file}"
        entries.extend((source, n, item) for n, item in enumerate(document, start=1))
    if settings.users_json:
        document, found = parse_document(settings.users_json, "USERS_JSON", yaml_allowed=False)
        problems.extend(found)
        entries.extend(("USERS_JSON", n, item) for n, item in enumerate(document, start=1))

    records: dict[str, UserRecord] = {}
    for source, index, raw in entries:
        record, found = _record(raw, source, index)
        problems.extend(found)
        if record is None:
            continue
        if record.username in records:
            problems.append(f"{source} entry {index} ({record.username}): duplicate username")
            continue
        records[record.username] = record
    if problems:
        raise ConfigurationError(problems)
    return records


def _record(raw: Any, source: str, index: int) -> tuple[UserRecord | None, list[str]]:
    entry, problems = check_entry(
        raw,
        source=source,
        index=index,
        name_key="username",
        required=("username", "password_hash", "role"),
    )
    if entry is None:
        return None, problems
    if not looks_like_argon2_hash(entry["password_hash"]):
        return None, [
            f"{source} entry {index} ({entry['username']}): password_hash must be an argon2 "
            "hash from `llm-gateway hash-password`, not a plain password"
        ]
    return UserRecord(entry["username"], entry["password_hash"], cast(Role, entry["role"])), []
