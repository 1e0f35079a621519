"""Shared real processes for integration tests (started once per session, on first use).

`litellm_stack`: a LiteLLM proxy (own venv) in front of the controllable fake upstream, see
tests/support/litellm_proxy.py. Starting the proxy costs 20-40 s here, so tests share one and
steer the upstream through `fake_upstream`, which is cleared before and after every test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_upstream import FakeUpstreamProcess
from tests.support.litellm_proxy import LiteLLMStack, start_litellm_stack


@pytest.fixture(scope="session")
def litellm_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMStack]:
    stack = start_litellm_stack(tmp_path_factory.mktemp("litellm-stack"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def fake_upstream(litellm_stack: LiteLLMStack) -> Iterator[FakeUpstreamProcess]:
    """The session's fake upstream, with default behaviour and zeroed counters for this test."""
    litellm_stack.upstream.clear()
    yield litellm_stack.upstream
    litellm_stack.upstream.clear()
