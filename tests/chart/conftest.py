from __future__ import annotations

import pytest

from tests.chart.rendering import HELM, HelmMissing, helm_binary


@pytest.fixture(scope="session", autouse=True)
def _helm_present() -> None:
    # A missing helm FAILS the chart tests; it never skips them.
    try:
        helm_binary()
    except HelmMissing as missing:
        pytest.fail(f"{missing}. Chart tests need {HELM}: run make tools", pytrace=False)
