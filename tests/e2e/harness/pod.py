"""The gateway's pod, as the kubelet would read it from a rendered Deployment.

`pod_spec_from_manifests` takes the documents `helm template` prints (or a hand-written fixture)
and resolves everything the kubelet resolves before starting a container: env from literal values,
ConfigMap/Secret key references and `envFrom`, `$(VAR)` expansion, named ports, the three probes,
`preStop`, the grace period, the security context and the volumes with their contents.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

Manifest = Mapping[str, Any]


class PodSpecError(ValueError):
    """The manifests do not describe a pod the harness can run (missing object or field)."""


@dataclass(frozen=True)
class HttpProbe:
    path: str
    port: int
    period_seconds: float = 10
    timeout_seconds: float = 1
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay_seconds: float = 0


@dataclass(frozen=True)
class PreStop:
    """`sleep` is the native action (kubelet waits); `exec` runs a command in the container."""

    kind: Literal["sleep", "exec"]
    seconds: float = 0
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class Volume:
    name: str
    kind: Literal["emptyDir", "configMap", "secret", "persistentVolumeClaim"]
    files: Mapping[str, str] = field(default_factory=dict)  # configMap/secret contents
    file_modes: Mapping[str, int] = field(default_factory=dict)  # path -> mode (defaultMode/items)
    medium: str = ""  # emptyDir: "" or "Memory"
    size_limit: str | None = None
    claim_name: str | None = None


@dataclass(frozen=True)
class VolumeMount:
    volume: str
    mount_path: str
    read_only: bool = False
    sub_path: str | None = None


@dataclass(frozen=True)
class PodSpec:
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: Mapping[str, str]
    ports: Mapping[str, int]  # name -> containerPort
    startup_probe: HttpProbe | None
    liveness_probe: HttpProbe | None
    readiness_probe: HttpProbe | None
    pre_stop: PreStop | None
    termination_grace_period_seconds: float
    run_as_user: int | None
    run_as_group: int | None
    fs_group: int | None  # group owner of volume files, as the kubelet applies it
    read_only_root_filesystem: bool
    drop_capabilities: tuple[str, ...]
    allow_privilege_escalation: bool
    volumes: tuple[Volume, ...]
    volume_mounts: tuple[VolumeMount, ...]

    def volume(self, name: str) -> Volume:
        for volume in self.volumes:
            if volume.name == name:
                return volume
        raise PodSpecError(f"volume {name!r} is mounted but not declared")


def load_manifests(text: str) -> list[dict[str, Any]]:
    """Every non-empty document of a multi-document YAML stream."""
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def _find(documents: Iterable[Manifest], kind: str, name: str) -> Manifest:
    for doc in documents:
        if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
            return doc
    raise PodSpecError(f"{kind} {name!r} is referenced but not in the rendered manifests")


def _config_data(documents: Iterable[Manifest], kind: str, name: str) -> dict[str, str]:
    doc = _find(documents, kind, name)
    data: dict[str, str] = {key: str(value) for key, value in (doc.get("data") or {}).items()}
    if kind == "Secret":
        data = {key: base64.b64decode(value).decode() for key, value in data.items()}
        data.update({key: str(value) for key, value in (doc.get("stringData") or {}).items()})
    return data


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _expand(value: str, env: Mapping[str, str]) -> str:
    # Kubernetes expands $(VAR) from variables defined earlier; unknown references stay as text.
    return _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)


def _resolve_env(container: Manifest, documents: list[Manifest], pod_name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    # envFrom first; explicit `env` entries override it, as in Kubernetes.
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                ref = source[key]
                try:
                    data = _config_data(documents, kind, ref["name"])
                except PodSpecError:
                    if ref.get("optional"):
                        continue
                    raise
                env.update({prefix + k: v for k, v in data.items()})
    for entry in container.get("env") or []:
        name = entry["name"]
        if "value" in entry:
            env[name] = _expand(str(entry["value"]), env)
            continue
        source = entry.get("valueFrom", {})
        value: str | None = None
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if key in source:
                ref = source[key]
                data = _config_data(documents, kind, ref["name"])
                if ref["key"] not in data and not ref.get("optional"):
                    raise PodSpecError(f"{kind} {ref['name']!r} has no key {ref['key']!r}")
                value = data.get(ref["key"])
        if "fieldRef" in source:
            value = {"metadata.name": pod_name, "metadata.namespace": "default"}.get(
                source["fieldRef"]["fieldPath"], ""
            )
        if value is not None:
            env[name] = value
    return env


def _port(value: Any, ports: Mapping[str, int]) -> int:
    if isinstance(value, int):
        return value
    if value in ports:
        return ports[value]
    raise PodSpecError(f"probe port {value!r} is not a named container port")


def _probe(raw: Manifest | None, ports: Mapping[str, int]) -> HttpProbe | None:
    if not raw:
        return None
    if "httpGet" not in raw:
        raise PodSpecError(f"only httpGet probes are emulated, got {sorted(raw)}")
    return HttpProbe(
        path=raw["httpGet"].get("path", "/"),
        port=_port(raw["httpGet"]["port"], ports),
        period_seconds=raw.get("periodSeconds", 10),
        timeout_seconds=raw.get("timeoutSeconds", 1),
        failure_threshold=raw.get("failureThreshold", 3),
        success_threshold=raw.get("successThreshold", 1),
        initial_delay_seconds=raw.get("initialDelaySeconds", 0),
    )


def _pre_stop(container: Manifest) -> PreStop | None:
    hook = (container.get("lifecycle") or {}).get("preStop")
    if not hook:
        return None
    if "sleep" in hook:
        return PreStop(kind="sleep", seconds=float(hook["sleep"]["seconds"]))
    if "exec" in hook:
        command = tuple(str(part) for part in hook["exec"]["command"])
        # `sleep N` (directly or via `sh -c`) is what the chart's old-cluster option renders.
        match = re.fullmatch(r"(?:.*\s)?sleep\s+(\d+(?:\.\d+)?)", " ".join(command).strip())
        return PreStop(kind="exec", seconds=float(match.group(1)) if match else 0, command=command)
    raise PodSpecError(f"unsupported preStop handler {sorted(hook)}")


def _volume(raw: Manifest, documents: list[Manifest]) -> Volume:
    name = raw["name"]
    if "emptyDir" in raw:
        empty = raw["emptyDir"] or {}
        return Volume(
            name, "emptyDir", medium=empty.get("medium", ""), size_limit=empty.get("sizeLimit")
        )
    for kind, key, ref_name in (
        ("ConfigMap", "configMap", "name"),
        ("Secret", "secret", "secretName"),
    ):
        if key in raw:
            source = raw[key]
            data = _config_data(documents, kind, source[ref_name])
            default_mode = int(source.get("defaultMode", 0o644))
            modes = dict.fromkeys(data, default_mode)
            if source.get("items"):
                data = {item["path"]: data[item["key"]] for item in source["items"]}
                modes = {
                    item["path"]: int(item.get("mode", default_mode)) for item in source["items"]
                }
            return Volume(name, key, files=data, file_modes=modes)  # type: ignore[arg-type]
    if "persistentVolumeClaim" in raw:
        return Volume(
            name, "persistentVolumeClaim", claim_name=raw["persistentVolumeClaim"]["claimName"]
        )
    raise PodSpecError(f"volume {name!r}: unsupported source {sorted(raw)}")


def pod_spec_from_manifests(
    documents: Iterable[Manifest],
    deployment: str | None = None,
    container: str | None = None,
    pod_name: str = "pod-0",
) -> PodSpec:
    """The named Deployment's container (or the only/first one) resolved against its objects."""
    docs = list(documents)
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    if deployment is not None:
        deployments = [d for d in deployments if d["metadata"]["name"] == deployment]
    if not deployments:
        raise PodSpecError(f"no Deployment {deployment or ''} in the manifests".replace("  ", " "))
    pod = deployments[0]["spec"]["template"]["spec"]
    containers = pod["containers"]
    chosen = (
        next((c for c in containers if c["name"] == container), None)
        if container
        else containers[0]
    )
    if chosen is None:
        raise PodSpecError(f"no container {container!r} in the Deployment")

    ports = {p["name"]: int(p["containerPort"]) for p in chosen.get("ports") or [] if "name" in p}
    pod_security = pod.get("securityContext") or {}
    security = {**pod_security, **(chosen.get("securityContext") or {})}
    return PodSpec(
        name=pod_name,
        image=chosen["image"],
        command=tuple(chosen.get("command") or ()),
        args=tuple(chosen.get("args") or ()),
        env=_resolve_env(chosen, docs, pod_name),
        ports=ports,
        startup_probe=_probe(chosen.get("startupProbe"), ports),
        liveness_probe=_probe(chosen.get("livenessProbe"), ports),
        readiness_probe=_probe(chosen.get("readinessProbe"), ports),
        pre_stop=_pre_stop(chosen),
        termination_grace_period_seconds=float(pod.get("terminationGracePeriodSeconds", 30)),
        run_as_user=security.get("runAsUser"),
        run_as_group=security.get("runAsGroup"),
        fs_group=pod_security.get("fsGroup"),
        read_only_root_filesystem=bool(security.get("readOnlyRootFilesystem", False)),
        drop_capabilities=tuple((security.get("capabilities") or {}).get("drop") or ()),
        allow_privilege_escalation=bool(security.get("allowPrivilegeEscalation", True)),
        volumes=tuple(_volume(v, docs) for v in pod.get("volumes") or []),
        volume_mounts=tuple(
            VolumeMount(
                volume=m["name"],
                mount_path=m["mountPath"],
                read_only=bool(m.get("readOnly", False)),
                sub_path=m.get("subPath"),
            )
            for m in chosen.get("volumeMounts") or []
        ),
    )
