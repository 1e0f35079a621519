"""`Services`: every part the routes use, in one typed, frozen container.

The app's lifespan builds it once (wiring.open_services) and closes what it opened on the way
out; `api/deps.py` is its only reader, so a route names what it uses by type, never by string.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_gateway.auth.authenticator import Authenticator
from llm_gateway.auth.tokens import TokenService
from llm_gateway.auth.users import UserStore
from llm_gateway.client_address import ClientAddressResolver
from llm_gateway.drain_state import DrainController
from llm_gateway.guard.security import SecurityMonitor
from llm_gateway.health import HealthChecker
from llm_gateway.llm.service import LLMService
from llm_gateway.observability.metrics import Metrics
from llm_gateway.ratelimit.limiter import RateLimiter
from llm_gateway.resilience.breaker import CircuitBreakerRegistry
from llm_gateway.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    drain: DrainController
    metrics: Metrics | None  # None when METRICS_ENABLED is false (and /metrics is not routed)
    client_address: ClientAddressResolver
    tokens: TokenService
    users: UserStore
    authenticator: Authenticator
    rate_limiter: RateLimiter
    security_monitor: SecurityMonitor
    breakers: CircuitBreakerRegistry
    llm: LLMService
    health: HealthChecker
