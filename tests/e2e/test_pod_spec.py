"""The harness reads a Deployment as the kubelet does (no Docker: runs in `make pytest`)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from tests.e2e.harness.manifests import fixture_manifests
from tests.e2e.harness.pod import (
    HttpProbe,
    PodSpecError,
    PreStop,
    load_manifests,
    pod_spec_from_manifests,
)


@pytest.fixture
def documents() -> list[dict[str, Any]]:
    return copy.deepcopy(fixture_manifests().documents)


def _container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_env_merges_config_map_then_explicit_entries_and_resolves_field_refs(
    documents: list[dict[str, Any]],
) -> None:
    spec = pod_spec_from_manifests(documents, pod_name="gateway-7")

    assert spec.env["ENVIRONMENT"] == "production"  # envFrom configMapRef
    assert spec.env["WEB_CONCURRENCY"] == "2"
    assert spec.env["POD_NAME"] == "gateway-7"  # fieldRef metadata.name
    assert spec.env["SECRETS_DIR"] == "/var/run/secrets/llm-gateway"


def test_explicit_env_overrides_env_from_and_expands_earlier_variables(
    documents: list[dict[str, Any]],
) -> None:
    _container(documents)["env"] += [
        {"name": "LOG_LEVEL", "value": "DEBUG"},
        {"name": "GREETING", "value": "level=$(LOG_LEVEL) unknown=$(NOPE)"},
    ]

    spec = pod_spec_from_manifests(documents)

    assert spec.env["LOG_LEVEL"] == "DEBUG"
    assert spec.env["GREETING"] == "level=DEBUG unknown=$(NOPE)"


def test_secret_key_ref_is_base64_decoded(documents: list[dict[str, Any]]) -> None:
    _container(documents)["env"].append(
        {
            "name": "JWT_SECRET_KEY",
            "valueFrom": {"secretKeyRef": {"name": "gw-llm-gateway", "key": "JWT_SECRET_KEY"}},
        }
    )

    spec = pod_spec_from_manifests(documents)

    assert spec.env["JWT_SECRET_KEY"] == "e2e-fixture-signing-key-0123456789abcdef-xyz"


def test_probes_resolve_the_named_port_and_keep_their_timing(
    documents: list[dict[str, Any]],
) -> None:
    spec = pod_spec_from_manifests(documents)

    assert spec.ports == {"http": 8000}
    assert spec.startup_probe == HttpProbe("/livez", 8000, 2, 2, 30)
    assert spec.liveness_probe == HttpProbe("/livez", 8000, 10, 2, 3)
    assert spec.readiness_probe == HttpProbe("/readyz", 8000, 5, 2, 2)


def test_termination_and_security_settings(documents: list[dict[str, Any]]) -> None:
    spec = pod_spec_from_manifests(documents)

    assert spec.pre_stop == PreStop(kind="sleep", seconds=5)
    assert spec.termination_grace_period_seconds == 45
    assert (spec.run_as_user, spec.run_as_group) == (10001, 10001)
    assert spec.read_only_root_filesystem is True
    assert spec.drop_capabilities == ("ALL",)
    assert spec.allow_privilege_escalation is False
    assert spec.args == ("serve",)
    assert spec.command == ()


@pytest.mark.parametrize(
    ("command", "seconds"),
    [
        pytest.param(["sleep", "10"], 10, id="direct-sleep"),
        pytest.param(["/bin/sh", "-c", "sleep 7"], 7, id="shell-sleep"),
        pytest.param(["/bin/true"], 0, id="not-a-sleep"),
    ],
)
def test_exec_pre_stop_keeps_its_command_and_reads_the_sleep(
    documents: list[dict[str, Any]], command: list[str], seconds: float
) -> None:
    _container(documents)["lifecycle"] = {"preStop": {"exec": {"command": command}}}

    spec = pod_spec_from_manifests(documents)

    assert spec.pre_stop == PreStop(kind="exec", seconds=seconds, command=tuple(command))


def test_volumes_carry_their_kind_and_decoded_secret_files(
    documents: list[dict[str, Any]],
) -> None:
    spec = pod_spec_from_manifests(documents)

    tmp = spec.volume("tmp")
    assert (tmp.kind, tmp.medium, tmp.size_limit) == ("emptyDir", "Memory", "64Mi")
    secrets = spec.volume("secrets")
    assert secrets.kind == "secret"
    assert secrets.files == {"JWT_SECRET_KEY": "e2e-fixture-signing-key-0123456789abcdef-xyz"}
    mounts = {m.mount_path: (m.volume, m.read_only) for m in spec.volume_mounts}
    assert mounts == {
        "/tmp": ("tmp", False),
        "/data": ("data", False),
        "/var/run/secrets/llm-gateway": ("secrets", True),
    }


def test_config_map_volume_items_select_and_rename_keys() -> None:
    text = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a.yaml: "x: 1", b.yaml: "y: 2"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      containers:
        - name: c
          image: img
          volumeMounts: [{name: cfg, mountPath: /etc/cfg}]
      volumes:
        - name: cfg
          configMap: {name: cfg, items: [{key: a.yaml, path: conf/app.yaml}]}
"""
    spec = pod_spec_from_manifests(load_manifests(text))

    assert spec.volume("cfg").files == {"conf/app.yaml": "x: 1"}
    assert spec.termination_grace_period_seconds == 30  # Kubernetes' default


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(
            lambda c: c["envFrom"].append({"configMapRef": {"name": "missing"}}),
            "ConfigMap 'missing'",
            id="missing-config-map",
        ),
        pytest.param(
            lambda c: c["env"].append(
                {
                    "name": "X",
                    "valueFrom": {"secretKeyRef": {"name": "gw-llm-gateway", "key": "NOPE"}},
                }
            ),
            "no key 'NOPE'",
            id="missing-secret-key",
        ),
        pytest.param(
            lambda c: c.update(readinessProbe={"tcpSocket": {"port": 8000}}),
            "only httpGet probes",
            id="tcp-probe",
        ),
        pytest.param(
            lambda c: c.update(livenessProbe={"httpGet": {"path": "/", "port": "admin"}}),
            "'admin' is not a named container port",
            id="unknown-port-name",
        ),
    ],
)
def test_unrunnable_specs_are_refused_with_the_reason(
    documents: list[dict[str, Any]], mutate: Any, message: str
) -> None:
    mutate(_container(documents))

    with pytest.raises(PodSpecError, match=message):
        pod_spec_from_manifests(documents)


def test_optional_env_from_may_be_missing(documents: list[dict[str, Any]]) -> None:
    _container(documents)["envFrom"].append({"secretRef": {"name": "extra", "optional": True}})

    assert pod_spec_from_manifests(documents).env["ENVIRONMENT"] == "production"


def test_fixture_secret_is_real_base64() -> None:
    # Guards the fixture itself: a typo there would make every e2e pod fail its config check.
    secret = next(d for d in fixture_manifests().documents if d["kind"] == "Secret")
    decoded = base64.b64decode(secret["data"]["JWT_SECRET_KEY"]).decode()
    assert len(decoded) >= 32
