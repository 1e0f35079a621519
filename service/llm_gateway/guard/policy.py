"""The prompt guard: limits from settings, then the injection heuristics."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from llm_gateway.chat_request import ChatRequest
from llm_gateway.errors import InvalidRequest, PromptRejected
from llm_gateway.guard.injection import InjectionDetector
from llm_gateway.guard.security import SecurityMonitor
from llm_gateway.observability.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GuardLimits:
    prompt_max_chars: int
    max_tokens_limit: int
    model_name_pattern: str


class PromptGuard:
    def __init__(
        self,
        limits: GuardLimits,
        *,
        detector: InjectionDetector | None,
        monitor: SecurityMonitor,
        metrics: Metrics | None = None,
    ) -> None:
        self._limits = limits
        self._model_pattern = re.compile(limits.model_name_pattern)
        self._detector = detector
        self.monitor = monitor
        self._metrics = metrics

    def validate(self, request: ChatRequest) -> None:
        """Limits that depend on settings (static ranges live in the request schemas)."""
        problems: list[dict[str, str]] = []
        if not self._model_pattern.fullmatch(request.model):
            problems.append(
                {
                    "field": "model",
                    "message": f"must match MODEL_NAME_PATTERN {self._limits.model_name_pattern}",
                }
            )
        if request.prompt_chars > self._limits.prompt_max_chars:
            problems.append(
                {
                    "field": "messages" if request.endpoint == "chat.completions" else "prompt",
                    "message": f"the prompt has {request.prompt_chars} characters; "
                    f"the limit is {self._limits.prompt_max_chars}",
                }
            )
        for name in ("max_tokens", "max_completion_tokens"):
            value = request.params.get(name)
            if isinstance(value, int) and value > self._limits.max_tokens_limit:
                problems.append(
                    {
                        "field": name,
                        "message": f"must be at most {self._limits.max_tokens_limit}",
                    }
                )
        if problems:
            summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
            raise InvalidRequest(
                f"The request body failed validation: {summary}", extra={"fields": problems}
            )

    def screen(self, request: ChatRequest, *, user: str | None, request_id: str | None) -> None:
        if self._detector is None:
            return
        finding = self._detector.scan(request.texts_by_role("user"))
        if finding is None:
            return
        if self._metrics is not None:
            self._metrics.prompt_rejections.labels(finding.rule).inc()
        self.monitor.record(
            kind="prompt_rejected",
            rule=finding.rule,
            user=user,
            request_id=request_id,
            excerpt=finding.excerpt,
        )
        log.warning("prompt_rejected", extra={"rule": finding.rule, "model": request.model})
        raise PromptRejected(
            f"The prompt was rejected by the gateway's prompt guard (rule: {finding.rule}). "
            "Rephrase the request without instructions aimed at the model's configuration.",
            extra={"rule": finding.rule},
        )

    def check(self, request: ChatRequest, *, user: str | None, request_id: str | None) -> None:
        self.validate(request)
        self.screen(request, user=user, request_id=request_id)
