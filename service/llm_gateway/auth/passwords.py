"""Password hashing with argon2id.

Parameters are OWASP's minimum for argon2id (19 MiB memory, 2 passes, 1 lane): a login costs
19 MiB for a few tens of milliseconds instead of argon2-cffi's default 64 MiB, which matters when
several concurrent logins share a 512 MiB pod. Hashes made with other parameters still verify,
because argon2 hashes carry their own parameters.
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

MEMORY_COST_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1

_hasher = PasswordHasher(
    time_cost=TIME_COST,
    memory_cost=MEMORY_COST_KIB,
    parallelism=PARALLELISM,
    type=Type.ID,
)


def hash_password(password: str) -> str:
    """An encoded argon2id hash (`$argon2id$v=19$m=19456,t=2,p=1$...`) for a users file."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True only when `password` matches; False for a wrong password or a malformed hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        # VerifyMismatchError is a VerificationError; a hash of another scheme or a truncated
        # string is InvalidHashError. Neither is the caller's business beyond "no".
        return False


def looks_like_argon2_hash(value: str) -> bool:
    """A cheap shape check used when loading users, so typos fail at boot, not at login."""
    return value.startswith(("$argon2id$", "$argon2i$", "$argon2d$"))
