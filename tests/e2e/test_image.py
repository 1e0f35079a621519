"""The built image's metadata: what Kubernetes and `docker run` rely on before anything runs."""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.e2e


def test_image_metadata_declares_the_runtime_contract(gateway_image: str) -> None:
    raw = subprocess.run(
        ["docker", "image", "inspect", gateway_image], capture_output=True, check=True, text=True
    ).stdout
    config = json.loads(raw)[0]["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])

    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["llm-gateway"]
    assert config["Cmd"] == ["serve"]
    assert config["WorkingDir"] == "/app"
    assert "8000/tcp" in config["ExposedPorts"]
    assert "/data" in config["Volumes"]
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert (env["DATA_DIR"], env["HOST"], env["PORT"]) == ("/data", "0.0.0.0", "8000")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    labels = config["Labels"]
    for key in ("title", "description", "source", "version", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
