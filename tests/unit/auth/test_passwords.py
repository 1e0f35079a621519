"""argon2id password hashes: OWASP-minimum parameters, and verification that never raises."""

from __future__ import annotations

import pytest

from llm_gateway.auth.passwords import hash_password, verify_password


def test_a_hash_is_argon2id_with_the_owasp_minimum_parameters() -> None:
    encoded = hash_password("correct horse battery staple")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_the_right_password_verifies() -> None:
    encoded = hash_password("correct horse battery staple")
    assert verify_password(encoded, "correct horse battery staple") is True


def test_two_hashes_of_one_password_differ_by_salt() -> None:
    assert hash_password("same") != hash_password("same")


@pytest.mark.parametrize(
    ("password_hash", "password"),
    [
        pytest.param(hash_password("right"), "wrong", id="wrong-password"),
        pytest.param(hash_password("right"), "Right", id="case-differs"),
        pytest.param(hash_password("right"), "", id="empty-password"),
        pytest.param("not-a-hash", "right", id="not-a-hash"),
        pytest.param("$argon2id$v=19$m=19456,t=2,p=1$truncated", "right", id="truncated-hash"),
        pytest.param("$2b$12$" + "a" * 53, "right", id="bcrypt-hash"),
        pytest.param("", "right", id="empty-hash"),
    ],
)
def test_anything_else_is_false_and_never_raises(password_hash: str, password: str) -> None:
    assert verify_password(password_hash, password) is False
