"""The users store: configured sources, boot-time errors, development accounts, and login checks."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from llm_gateway.auth.passwords import hash_password, verify_password
from llm_gateway.auth.principal import Principal
from llm_gateway.auth.users import UserRecord, UserStore
from llm_gateway.errors import ConfigurationError
from tests.support.logs import capture_json_logs
from tests.support.settings import make_settings

ALICE_HASH = hash_password("alice-password")
ROOT_HASH = hash_password("root-password")
USERS = [
    {"username": "alice", "password_hash": ALICE_HASH, "role": "user"},
    {"username": "root", "password_hash": ROOT_HASH, "role": "admin"},
]


def yaml_users() -> str:
    return "".join(
        f"- username: {u['username']}\n  password_hash: '{u['password_hash']}'\n"
        f"  role: {u['role']}\n"
        for u in USERS
    )


class RecordingVerifier:
    """Real argon2 verification that also records what it was asked and on which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, password_hash: str, password: str) -> bool:
        self.calls.append((password_hash, threading.get_ident()))
        return verify_password(password_hash, password)


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        pytest.param("users.json", json.dumps(USERS), id="json-file"),
        pytest.param("users.yaml", yaml_users(), id="yaml-file"),
        pytest.param("users.yml", json.dumps(USERS), id="json-inside-yaml-file"),
    ],
)
async def test_users_load_from_a_file(tmp_path: Path, filename: str, content: str) -> None:
    path = tmp_path / filename
    path.write_text(content)
    store = UserStore.from_settings(make_settings(tmp_path, USERS_FILE=path))
    assert len(store) == 2
    assert await store.authenticate("root", "root-password") == Principal("root", "admin", "user")


async def test_users_load_inline_and_merge_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text(json.dumps(USERS[:1]))
    store = UserStore.from_settings(
        make_settings(tmp_path, USERS_FILE=path, USERS_JSON=json.dumps(USERS[1:]))
    )
    assert "alice" in store and "root" in store
    assert await store.authenticate("alice", "alice-password") == Principal("alice", "user", "user")


@pytest.mark.parametrize(
    ("users_json", "expected_lines"),
    [
        pytest.param('{"username": "a"}', ["USERS_JSON must be a list"], id="not-a-list"),
        pytest.param("[oops", ["USERS_JSON is not valid JSON near line 1"], id="broken-json"),
        pytest.param(
            json.dumps(
                [
                    {"username": "a", "password_hash": "plain-text", "role": "user"},
                    {"username": "b", "password_hash": ALICE_HASH, "role": "superuser"},
                    {"username": "c", "password": "x", "role": "user"},
                    "d",
                ]
            ),
            [
                "USERS_JSON entry 1 (a): password_hash must be an argon2 hash",
                "USERS_JSON entry 2 (b): role must be one of ['admin', 'user'], got 'superuser'",
                "USERS_JSON entry 3 (c): 'password_hash' must be a non-empty string",
                "USERS_JSON entry 3 (c): unknown keys ['password']",
                "USERS_JSON entry 4 must be a mapping, got str",
            ],
            id="every-bad-entry-reported-at-once",
        ),
        pytest.param(
            json.dumps([USERS[0], USERS[0]]),
            ["USERS_JSON entry 2 (alice): duplicate username"],
            id="duplicate-username",
        ),
    ],
)
def test_malformed_users_are_configuration_errors(
    tmp_path: Path, users_json: str, expected_lines: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        UserStore.from_settings(make_settings(tmp_path, USERS_JSON=users_json))
    problems = caught.value.problems
    assert len(problems) == len(expected_lines), problems
    for expected, line in zip(expected_lines, problems, strict=True):
        assert line.startswith(expected), (expected, line)
    assert all("\n" not in line for line in problems)
    assert not any("plain-text" in line or ALICE_HASH in line for line in problems)


def test_a_broken_yaml_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text("- username: a\n  role: [user\n")
    with pytest.raises(ConfigurationError) as caught:
        UserStore.from_settings(make_settings(tmp_path, USERS_FILE=path))
    assert caught.value.problems[0].startswith(f"USERS_FILE {path} is not valid YAML near line")


async def test_development_adds_admin_and_user_with_the_dev_password(tmp_path: Path) -> None:
    with capture_json_logs() as logs:
        store = UserStore.from_settings(
            make_settings(tmp_path, ENVIRONMENT="development", DEV_PASSWORD="local-only-pw")
        )
    assert await store.authenticate("admin", "local-only-pw") == Principal("admin", "admin", "user")
    assert await store.authenticate("user", "local-only-pw") == Principal("user", "user", "user")
    assert await store.authenticate("admin", "dev-password") is None
    (warning,) = logs.events("development_users_enabled")
    assert warning["level"] == "WARNING"
    assert warning["usernames"] == ["admin", "user"]
    assert "local-only-pw" not in "\n".join(logs.raw_lines)


async def test_a_configured_admin_wins_over_the_development_one(tmp_path: Path) -> None:
    users = json.dumps([{"username": "admin", "password_hash": ROOT_HASH, "role": "admin"}])
    store = UserStore.from_settings(
        make_settings(tmp_path, ENVIRONMENT="development", USERS_JSON=users)
    )
    assert await store.authenticate("admin", "root-password") is not None
    assert await store.authenticate("admin", "dev-password") is None
    assert await store.authenticate("user", "dev-password") is not None


async def test_production_has_no_built_in_users_and_says_so(tmp_path: Path) -> None:
    with capture_json_logs() as logs:
        store = UserStore.from_settings(make_settings(tmp_path, ENVIRONMENT="production"))
    assert len(store) == 0
    assert await store.authenticate("admin", "dev-password") is None
    (warning,) = logs.events("no_users_configured")
    assert warning["level"] == "WARNING"
    assert not logs.events("development_users_enabled")


@pytest.mark.parametrize(
    ("username", "password", "known"),
    [
        pytest.param("alice", "wrong", True, id="wrong-password"),
        pytest.param("mallory", "alice-password", False, id="unknown-user"),
        pytest.param("Alice", "alice-password", False, id="username-is-case-sensitive"),
    ],
)
async def test_a_failed_login_costs_one_argon2_check_off_the_event_loop(
    username: str, password: str, known: bool
) -> None:
    verifier = RecordingVerifier()
    store = UserStore([UserRecord("alice", ALICE_HASH, "user")], verifier=verifier)
    assert await store.authenticate(username, password) is None
    ((checked_hash, thread),) = verifier.calls
    # Unknown users are checked against a dummy argon2id hash: the same work, the same time.
    assert checked_hash.startswith("$argon2id$")
    assert (checked_hash == ALICE_HASH) is known
    assert thread != threading.get_ident()


async def test_a_successful_login_is_verified_in_a_worker_thread() -> None:
    verifier = RecordingVerifier()
    store = UserStore([UserRecord("alice", ALICE_HASH, "user")], verifier=verifier)
    assert await store.authenticate("alice", "alice-password") is not None
    assert verifier.calls == [(ALICE_HASH, verifier.calls[0][1])]
    assert verifier.calls[0][1] != threading.get_ident()
