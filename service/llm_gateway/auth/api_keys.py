"""Static API keys for service-to-service callers.

A key is `lgw_` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored
(`sha256:<hex>` in API_KEYS_FILE): a fast hash is right here because the key has 256 bits of
entropy, so nothing can be guessed from the hash, and verification stays in microseconds.
Lookups compare the presented key's hash with every stored hash in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from llm_gateway.auth.entries import check_entry, read_file
from llm_gateway.auth.principal import Principal, Role
from llm_gateway.errors import ConfigurationError

API_KEY_PREFIX = "lgw_"
HASH_PREFIX = "sha256:"
_HASH_SHAPE = re.compile(r"^sha256:[0-9a-f]{64}$")


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    name: str
    key_hash: str
    role: Role


class ApiKeyStore:
    def __init__(self, records: Iterable[ApiKeyRecord] = ()) -> None:
        self._records = tuple(records)

    def __len__(self) -> int:
        return len(self._records)

    @classmethod
    def from_file(cls, path: Path | None) -> ApiKeyStore:
        """The keys in API_KEYS_FILE (JSON or YAML list of {name, key_hash, role}); empty if None.

        Raises ConfigurationError with one line per malformed entry.
        """
        if path is None:
            return cls()
        source = f"API_KEYS_FILE {path}"
        entries, problems = read_file(path, "API_KEYS_FILE")
        records: list[ApiKeyRecord] = []
        seen: set[str] = set()
        for index, raw in enumerate(entries, start=1):
            entry, entry_problems = check_entry(
                raw,
                source=source,
                index=index,
                name_key="name",
                required=("name", "key_hash", "role"),
            )
            problems.extend(entry_problems)
            if entry is None:
                continue
            label = f"{source} entry {index} ({entry['name']})"
            key_hash = str(entry["key_hash"]).strip().lower()
            if not _HASH_SHAPE.match(key_hash):
                problems.append(
                    f"{label}: key_hash must be 'sha256:' + 64 hex digits "
                    "(from `llm-gateway hash-api-key`), not the key itself"
                )
                continue
            if entry["name"] in seen:
                problems.append(f"{label}: duplicate name")
                continue
            seen.add(entry["name"])
            records.append(ApiKeyRecord(entry["name"], key_hash, cast(Role, entry["role"])))
        if problems:
            raise ConfigurationError(problems)
        return cls(records)

    def lookup(self, presented_key: str) -> Principal | None:
        """The principal whose key this is, or None. Every record is compared, match or not."""
        presented = hash_api_key(presented_key).encode("ascii")
        found: ApiKeyRecord | None = None
        for record in self._records:
            if hmac.compare_digest(presented, record.key_hash.encode("ascii")):
                found = record
        if found is None:
            return None
        return Principal(subject=found.name, role=found.role, kind="api_key")
