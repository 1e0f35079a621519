"""JWT issue and verification: a valid round trip, and every way a token is refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from llm_gateway.auth.principal import Principal
from llm_gateway.auth.tokens import CLOCK_LEEWAY_SECONDS, TokenService
from llm_gateway.errors import AuthenticationFailed, ConfigurationError

# 64 bytes, so PyJWT can also sign the HS512 attack token below without a key-length warning.
SECRET = "unit-test-signing-key-" + "0123456789abcdef" * 3
ISSUER = "llm-gateway"
AUDIENCE = "llm-gateway"
NOW = 1_800_000_000.0
LIFETIME = 3600


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def service(clock: FakeClock) -> TokenService:
    return TokenService(SECRET, "HS256", ISSUER, AUDIENCE, LIFETIME, clock=clock)


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "alice",
        "role": "user",
        "iat": int(NOW),
        "nbf": int(NOW),
        "exp": int(NOW) + LIFETIME,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key)
        else:
            base[key] = value
    return base


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_token() -> str:
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."


def rs256_token() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims(), key, algorithm="RS256")


def es256_token() -> str:
    return jwt.encode(claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")


def test_an_issued_token_verifies_to_the_same_principal(service: TokenService) -> None:
    principal = Principal(subject="alice", role="admin", kind="user")
    issued = service.issue(principal)
    assert issued.expires_in == LIFETIME
    assert service.verify(issued.access_token) == principal


def test_an_issued_token_carries_every_claim_from_the_injected_clock(
    service: TokenService,
) -> None:
    issued = service.issue(Principal(subject="bob", role="user", kind="user"))
    decoded = jwt.decode(
        issued.access_token,
        SECRET,
        algorithms=["HS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert decoded == claims(sub="bob")
    assert jwt.get_unverified_header(issued.access_token)["alg"] == "HS256"


def test_a_token_stays_valid_until_its_expiry_by_the_injected_clock(
    service: TokenService, clock: FakeClock
) -> None:
    token = service.issue(Principal(subject="alice", role="user", kind="user")).access_token
    clock.now = NOW + LIFETIME - 1
    assert service.verify(token).subject == "alice"
    clock.now = NOW + LIFETIME + CLOCK_LEEWAY_SECONDS
    with pytest.raises(AuthenticationFailed, match="Token expired; log in again"):
        service.verify(token)


@pytest.mark.parametrize(
    ("token_factory", "message"),
    [
        pytest.param(unsigned_token, "algorithm is not accepted", id="alg-none"),
        pytest.param(
            lambda: jwt.encode(claims(), SECRET, algorithm="HS512"),
            "algorithm is not accepted",
            id="HS512-with-the-same-secret",
        ),
        pytest.param(rs256_token, "algorithm is not accepted", id="RS256"),
        pytest.param(es256_token, "algorithm is not accepted", id="ES256"),
        pytest.param(
            lambda: jwt.encode(claims(), "another-" + SECRET, algorithm="HS256"),
            "signature is invalid",
            id="wrong-secret",
        ),
        pytest.param(
            lambda: jwt.encode(claims(exp=int(NOW) - 60), SECRET, algorithm="HS256"),
            "Token expired; log in again",
            id="expired",
        ),
        pytest.param(
            lambda: jwt.encode(claims(nbf=int(NOW) + 600), SECRET, algorithm="HS256"),
            "not valid yet",
            id="nbf-in-the-future",
        ),
        pytest.param(
            lambda: jwt.encode(claims(iat=int(NOW) + 600), SECRET, algorithm="HS256"),
            "not valid yet",
            id="iat-in-the-future",
        ),
        *[
            pytest.param(
                lambda claim=claim: jwt.encode(claims(**{claim: None}), SECRET, algorithm="HS256"),
                f"missing the '{claim}' claim",
                id=f"missing-{claim}",
            )
            for claim in ("sub", "role", "iat", "nbf", "exp", "iss", "aud")
        ],
        pytest.param(
            lambda: jwt.encode(claims(iss="someone-else"), SECRET, algorithm="HS256"),
            "issuer is not accepted",
            id="wrong-iss",
        ),
        pytest.param(
            lambda: jwt.encode(claims(aud="another-api"), SECRET, algorithm="HS256"),
            "audience is not accepted",
            id="wrong-aud",
        ),
        pytest.param(
            lambda: jwt.encode(claims(role="root"), SECRET, algorithm="HS256"),
            "role is not recognised",
            id="unknown-role",
        ),
        pytest.param(
            lambda: jwt.encode(claims(exp="tomorrow"), SECRET, algorithm="HS256"),
            "must be a number",
            id="exp-not-a-number",
        ),
        pytest.param(lambda: "not-a-jwt", "malformed", id="garbage"),
        pytest.param(lambda: "a.b.c", "malformed", id="three-garbage-segments"),
        pytest.param(lambda: "", "malformed", id="empty"),
    ],
)
def test_a_bad_token_is_refused_with_an_actionable_message(
    service: TokenService, token_factory: Any, message: str
) -> None:
    token = token_factory()
    with pytest.raises(AuthenticationFailed, match=message) as caught:
        service.verify(token)
    assert caught.value.status_code == 401
    assert caught.value.response_headers()["WWW-Authenticate"] == "Bearer"
    if token:
        assert token not in caught.value.message


def test_a_token_verified_before_still_expires_by_the_clock(
    service: TokenService, clock: FakeClock
) -> None:
    token = service.issue(Principal(subject="alice", role="user", kind="user")).access_token
    for _ in range(3):  # repeated verification is answered from the verified-token cache
        assert service.verify(token).subject == "alice"
    clock.now = NOW + LIFETIME + CLOCK_LEEWAY_SECONDS + 1
    for _ in range(2):
        with pytest.raises(AuthenticationFailed, match="Token expired"):
            service.verify(token)


def test_a_tampered_copy_of_a_verified_token_is_still_refused(service: TokenService) -> None:
    token = service.issue(Principal(subject="alice", role="user", kind="user")).access_token
    service.verify(token)
    header, _payload, signature = token.split(".")
    forged_payload = b64(claims(role="admin"))
    with pytest.raises(AuthenticationFailed, match="signature is invalid"):
        service.verify(f"{header}.{forged_payload}.{signature}")


def test_many_tokens_keep_the_cache_bounded(clock: FakeClock) -> None:
    service = TokenService(
        SECRET, "HS256", ISSUER, AUDIENCE, LIFETIME, clock=clock, verified_cache_size=4
    )
    tokens = [
        service.issue(Principal(subject=f"u{n}", role="user", kind="user")).access_token
        for n in range(10)
    ]
    for token in tokens:
        service.verify(token)
    assert len(service._verified) == 4
    assert service.verify(tokens[0]).subject == "u0"  # evicted, verified again from scratch


def test_a_small_clock_skew_within_the_leeway_is_accepted(service: TokenService) -> None:
    skewed = claims(iat=int(NOW) + 2, nbf=int(NOW) + 2)
    assert service.verify(jwt.encode(skewed, SECRET, algorithm="HS256")).subject == "alice"


def test_an_asymmetric_algorithm_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="HMAC only"):
        TokenService(SECRET, "RS256", ISSUER, AUDIENCE, LIFETIME)


@pytest.mark.parametrize(
    ("algorithm", "length", "accepted"),
    [
        pytest.param("HS256", 32, True, id="HS256-32-bytes"),
        pytest.param("HS256", 31, False, id="HS256-31-bytes"),
        pytest.param("HS384", 47, False, id="HS384-47-bytes"),
        pytest.param("HS512", 63, False, id="HS512-63-bytes"),
        pytest.param("HS512", 64, True, id="HS512-64-bytes"),
    ],
)
def test_the_secret_must_be_as_long_as_the_hash(
    algorithm: str, length: int, accepted: bool
) -> None:
    def build() -> TokenService:
        return TokenService("k" * length, algorithm, ISSUER, AUDIENCE, LIFETIME)

    if accepted:
        build().issue(Principal(subject="a", role="user", kind="user"))
    else:
        with pytest.raises(ConfigurationError, match=f"JWT_ALGORITHM={algorithm}"):
            build()
