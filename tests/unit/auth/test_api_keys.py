"""Service API keys: generation, hashing, the keys file, and lookups."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from llm_gateway.auth.api_keys import ApiKeyStore, generate_api_key, hash_api_key
from llm_gateway.auth.principal import Principal
from llm_gateway.errors import ConfigurationError


def test_a_generated_key_has_the_prefix_and_256_bits() -> None:
    key = generate_api_key()
    assert key.startswith("lgw_")
    assert len(key) == len("lgw_") + 43  # 32 bytes of url-safe base64 without padding
    assert generate_api_key() != key


def test_the_hash_is_sha256_hex_with_its_scheme() -> None:
    assert hash_api_key("lgw_abc") == "sha256:" + hashlib.sha256(b"lgw_abc").hexdigest()


@pytest.fixture
def keys() -> dict[str, str]:
    return {"batch-jobs": generate_api_key(), "ops-console": generate_api_key()}


def write_keys(path: Path, keys: dict[str, str], *, yaml: bool = False) -> Path:
    entries = [
        {"name": "batch-jobs", "key_hash": hash_api_key(keys["batch-jobs"]), "role": "user"},
        {"name": "ops-console", "key_hash": hash_api_key(keys["ops-console"]), "role": "admin"},
    ]
    if yaml:
        lines = []
        for entry in entries:
            lines.append(f"- name: {entry['name']}")
            lines.append(f"  key_hash: {entry['key_hash']}")
            lines.append(f"  role: {entry['role']}")
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text(json.dumps(entries))
    return path


@pytest.mark.parametrize(
    ("filename", "yaml"),
    [pytest.param("keys.json", False, id="json"), pytest.param("keys.yaml", True, id="yaml")],
)
def test_a_presented_key_finds_its_principal(
    tmp_path: Path, keys: dict[str, str], filename: str, yaml: bool
) -> None:
    store = ApiKeyStore.from_file(write_keys(tmp_path / filename, keys, yaml=yaml))
    assert len(store) == 2
    assert store.lookup(keys["batch-jobs"]) == Principal("batch-jobs", "user", "api_key")
    assert store.lookup(keys["ops-console"]) == Principal("ops-console", "admin", "api_key")


@pytest.mark.parametrize(
    "presented",
    [
        pytest.param("lgw_" + "x" * 43, id="unknown-key"),
        pytest.param("", id="empty"),
        pytest.param("sha256:" + "0" * 64, id="a-hash-is-not-a-key"),
    ],
)
def test_a_wrong_key_finds_nobody(tmp_path: Path, keys: dict[str, str], presented: str) -> None:
    store = ApiKeyStore.from_file(write_keys(tmp_path / "keys.json", keys))
    assert store.lookup(presented) is None


def test_no_file_means_no_keys() -> None:
    store = ApiKeyStore.from_file(None)
    assert len(store) == 0
    assert store.lookup(generate_api_key()) is None


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param('{"name": "x"}', "must be a list", id="not-a-list"),
        pytest.param("[1]", "entry 1 must be a mapping", id="entry-not-mapping"),
        pytest.param(
            '[{"name": "a", "key_hash": "lgw_plaintext", "role": "user"}]',
            "entry 1 (a): key_hash must be 'sha256:'",
            id="plain-key-instead-of-hash",
        ),
        pytest.param(
            '[{"name": "a", "key_hash": "sha256:' + "0" * 64 + '", "role": "root"}]',
            "entry 1 (a): role must be one of",
            id="unknown-role",
        ),
        pytest.param('[{"name": "a", "role": "user"}]', "'key_hash' must be", id="missing-hash"),
        pytest.param("[{", "is not valid JSON", id="broken-json"),
    ],
)
def test_a_malformed_keys_file_is_a_configuration_error(
    tmp_path: Path, document: str, problem: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(document)
    with pytest.raises(ConfigurationError) as caught:
        ApiKeyStore.from_file(path)
    assert any(problem in line for line in caught.value.problems), caught.value.problems
    assert all(line.startswith(f"API_KEYS_FILE {path}") for line in caught.value.problems)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    entry = {"name": "a", "key_hash": hash_api_key(generate_api_key()), "role": "user"}
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([entry, entry]))
    with pytest.raises(ConfigurationError, match="entry 2 \\(a\\): duplicate name"):
        ApiKeyStore.from_file(path)
