"""The authenticated caller, as every route and limit sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["user", "admin"]
PrincipalKind = Literal["user", "api_key"]
ROLES: frozenset[str] = frozenset(get_args(Role))


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role
    kind: PrincipalKind

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def limit_key(self) -> str:
        """Rate-limit identity: a service key named like a user never shares that user's bucket."""
        return f"{self.kind}:{self.subject}"
