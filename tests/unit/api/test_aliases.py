"""Each legacy path is served by its current route's handler, and documented as such."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.api.aliases import LEGACY_ALIASES
from llm_gateway.app import create_app
from tests.support.settings import make_settings


@pytest.mark.parametrize(("alias", "target"), [pytest.param(a, t, id=a) for a, t in LEGACY_ALIASES])
def test_an_alias_is_documented_as_its_target_under_a_second_path(
    tmp_path: Path, alias: str, target: str
) -> None:
    operations = create_app(make_settings(tmp_path)).openapi()["paths"]
    assert operations[alias].keys() == operations[target].keys()
    for method, operation in operations[alias].items():
        expected = operations[target][method]
        assert operation["responses"] == expected["responses"]
        assert operation.get("requestBody") == expected.get("requestBody")
        assert operation["summary"] == f"{expected['summary']} (original stack's path)"
