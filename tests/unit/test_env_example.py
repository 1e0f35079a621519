from __future__ import annotations

import re
from pathlib import Path

from llm_gateway.settings import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def test_env_example_documents_every_setting_and_holds_no_secret() -> None:
    text = ENV_EXAMPLE.read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    expected = {name.upper() for name in Settings.model_fields}
    assert expected - listed == set(), "add these to .env.example"
    assert listed - expected - {"SECRETS_DIR"} == set(), "remove these from .env.example"
    for secret in ("JWT_SECRET_KEY", "LITELLM_API_KEY", "QDRANT_API_KEY", "DEV_PASSWORD"):
        assert re.search(rf"^# {secret}=$", text, flags=re.MULTILINE), secret
