"""The chart README documents every value a user can set."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.chart.rendering import CHART

pytestmark = pytest.mark.chart


def _paths(node: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            paths.extend(_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def test_every_value_is_in_the_readme_table() -> None:
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = []
    for path in _paths(values):
        parts = path.split(".")
        # A documented parent (e.g. a whole securityContext) covers its children.
        if not any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1)):
            missing.append(path)
    assert missing == []
