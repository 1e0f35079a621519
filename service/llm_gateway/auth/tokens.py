"""Access tokens: HS-signed JWTs with sub, role, iat, nbf, exp, iss and aud.

Verification pins the one configured algorithm (so `alg: none`, another HMAC size and any
RS/ES token are refused before the signature is looked at), requires every claim, and checks
issuer and audience. Time claims are checked against the injected clock rather than PyJWT's
own `now`, so tests move time instead of sleeping. Every refusal is `AuthenticationFailed` with a
message a person can act on; the token itself is never echoed or logged.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import jwt

from llm_gateway.auth.principal import ROLES, Principal, Role
from llm_gateway.errors import AuthenticationFailed, ConfigurationError

REQUIRED_CLAIMS = ("sub", "role", "iat", "nbf", "exp", "iss", "aud")
# Clocks of separate pods drift a little; a token minted a second "in the future" is fine.
CLOCK_LEEWAY_SECONDS = 5.0
VERIFIED_CACHE_SIZE = 4096
MIN_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


class TokenService:
    def __init__(
        self,
        secret: str,
        algorithm: str,
        issuer: str,
        audience: str,
        expires_seconds: int,
        clock: Callable[[], float] = time.time,
        verified_cache_size: int = VERIFIED_CACHE_SIZE,
    ) -> None:
        if algorithm not in MIN_KEY_BYTES:
            # The secret is a shared HMAC key; an asymmetric algorithm here would be a misconfig.
            raise ValueError(f"TokenService signs with HMAC only, not {algorithm}")
        if len(secret.encode("utf-8")) < MIN_KEY_BYTES[algorithm]:
            # RFC 7518 3.2: the key must be at least as long as the hash output.
            raise ConfigurationError(
                [
                    f"JWT_SECRET_KEY must be at least {MIN_KEY_BYTES[algorithm]} bytes for "
                    f"JWT_ALGORITHM={algorithm}; generate one with: "
                    f"openssl rand -hex {MIN_KEY_BYTES[algorithm]}"
                ]
            )
        self._secret = secret
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience
        self._expires_seconds = expires_seconds
        self._clock = clock
        # Callers resend the same token on every request; PyJWT's decode costs ~100 us of
        # parsing per call. A token whose exact bytes already verified only needs its expiry
        # re-checked. Bounded LRU; per worker.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._verified_cache_size = verified_cache_size

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def issue(self, principal: Principal) -> IssuedToken:
        now = math.floor(self._clock())
        claims = {
            "sub": principal.subject,
            "role": principal.role,
            "iat": now,
            "nbf": now,
            "exp": now + self._expires_seconds,
            "iss": self._issuer,
            "aud": self._audience,
        }
        token = jwt.encode(claims, self._secret, algorithm=self._algorithm)
        return IssuedToken(access_token=token, expires_in=self._expires_seconds)

    def verify(self, token: str) -> Principal:
        """The principal the token names, or AuthenticationFailed saying what is wrong with it."""
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires_at = cached
            if expires_at <= self._clock() - CLOCK_LEEWAY_SECONDS:
                del self._verified[token]
                raise AuthenticationFailed("Token expired; log in again")
            self._verified.move_to_end(token)
            return principal
        claims = self._decode(token)
        self._check_times(claims)
        subject = claims["sub"]
        role = claims["role"]
        if not isinstance(subject, str) or not subject:
            raise AuthenticationFailed("Token subject is invalid; log in again")
        if role not in ROLES:
            raise AuthenticationFailed("Token role is not recognised; log in again")
        principal = Principal(subject=subject, role=cast(Role, role), kind="user")
        self._verified[token] = (principal, float(claims["exp"]))
        if len(self._verified) > self._verified_cache_size:
            self._verified.popitem(last=False)
        return principal

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_signature": True,
                    "verify_aud": True,
                    "verify_iss": True,
                    # Checked in _check_times against the injected clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAlgorithmError:
            raise AuthenticationFailed(
                f"Token algorithm is not accepted; tokens must be signed with {self._algorithm}"
            ) from None
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed("Token signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationFailed(
                f"Token is missing the '{exc.claim}' claim; log in again"
            ) from None
        except jwt.InvalidIssuerError:
            raise AuthenticationFailed("Token issuer is not accepted by this gateway") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationFailed("Token audience is not accepted by this gateway") from None
        except jwt.InvalidTokenError:
            # DecodeError and the rest: not a JWT at all, bad base64, bad JSON, wrong types.
            raise AuthenticationFailed(
                "Token is malformed; send the access_token from POST /auth/login"
            ) from None

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        times: dict[str, float] = {}
        for name in ("iat", "nbf", "exp"):
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AuthenticationFailed(f"Token claim '{name}' must be a number; log in again")
            times[name] = float(value)
        if times["exp"] <= now - CLOCK_LEEWAY_SECONDS:
            raise AuthenticationFailed("Token expired; log in again")
        if times["nbf"] > now + CLOCK_LEEWAY_SECONDS or times["iat"] > now + CLOCK_LEEWAY_SECONDS:
            raise AuthenticationFailed(
                "Token is not valid yet; check the clock of whoever issued it"
            )
