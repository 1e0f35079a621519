"""Start the LiteLLM and MLflow images the way the chart runs them on the node, and ask them.

`python -m devstack.node.images check` renders the chart with k8s/values-node.yaml and turns each
side workload's pod spec into a `docker run`: the same command/args, env (the rendered Secret's
values too), uid/gid, read-only root filesystem, dropped capabilities and no privilege
escalation; the ConfigMap mounted read-only; every emptyDir as a tmpfs of its size limit; and no
network at all, as on the node. It waits for the startup probe's path to answer 200 within the
probe's budget, then checks the readiness path and one real request (a mock chat completion with
the master key; an MLflow experiment written to the store). The gateway image is not checked here:
the e2e suite (`make test-e2e`) runs its rendered pod spec under an emulated kubelet.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

RELEASE = "image-check"
NAMESPACE = "default"
NODE_VALUES = Path("k8s/values-node.yaml")
CHART = Path("chart/llm-gateway")
HELM = Path(".tools/bin/helm")

# Runs inside the container (its own Python; the images have no curl): one HTTP request described
# by argv[1] as JSON, prints the status and the start of the body.
_REQUEST_SNIPPET = """
import json, sys, urllib.error, urllib.request
spec = json.loads(sys.argv[1])
data = json.dumps(spec["body"]).encode() if spec.get("body") is not None else None
headers = {"Content-Type": "application/json", **spec.get("headers", {})}
request = urllib.request.Request(spec["url"], data=data, headers=headers, method=spec["method"])
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        status, body = response.status, response.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
except OSError as error:
    status, body = 0, str(error).encode()
print(status, body[:300].decode(errors="replace"))
"""


class CheckFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Request:
    """One HTTP request made from inside the container and the status it must get."""

    method: str
    path: str
    expect_status: int
    headers: Mapping[str, str] | None = None
    body: Any = None
    expect_in_body: str = ""


def render(root: Path) -> list[dict[str, Any]]:
    argv = [str(root / HELM), "template", RELEASE, str(root / CHART), "-n", NAMESPACE]
    argv += ["-f", str(root / NODE_VALUES)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise CheckFailed(f"helm template failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _find(documents: Sequence[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in documents:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise CheckFailed(f"the render has no {kind} {name}")


def _tmpfs_size(quantity: str) -> str:
    """Kubernetes binary quantities (256Mi) in tmpfs' units (256m: also powers of 1024)."""
    for suffix, unit in (("Ki", "k"), ("Mi", "m"), ("Gi", "g")):
        if quantity.endswith(suffix):
            return quantity.removesuffix(suffix) + unit
    return quantity


def container_env(documents: Sequence[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The environment the kubelet gives the container: envFrom Secrets, then plain env values."""
    env = {}
    for source in container.get("envFrom", []):
        secret = _find(documents, "Secret", source["secretRef"]["name"])
        for key, value in secret.get("data", {}).items():
            env[key] = base64.b64decode(value).decode()
    env.update(
        {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
    )
    return env


def docker_run_argv(
    documents: Sequence[dict[str, Any]], deployment: dict[str, Any], name: str, scratch: Path
) -> list[str]:
    """`docker run` for the deployment's only container, as the kubelet would start it."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pod_context = pod.get("securityContext", {})
    context = {**pod_context, **container.get("securityContext", {})}
    argv = ["docker", "run", "-d", "--name", name, "--network", "none"]
    uid, gid = context.get("runAsUser"), context.get("runAsGroup")
    if uid is not None:
        argv += ["--user", f"{uid}:{gid if gid is not None else uid}"]
    if context.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    for capability in context.get("capabilities", {}).get("drop", []):
        argv += ["--cap-drop", capability]
    if context.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    for key, value in container_env(documents, container).items():
        argv += ["-e", f"{key}={value}"]
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    # An emptyDir is writable by the pod's user (fsGroup owns it); a tmpfs owned by that uid and
    # group is the closest docker offers. emptyDirs are not noexec, so neither is the tmpfs.
    owner = f"uid={uid},gid={pod_context.get('fsGroup', gid)}" if uid is not None else ""
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            config_map = _find(documents, "ConfigMap", volume["configMap"]["name"])
            folder = scratch / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            for file_name, text in config_map.get("data", {}).items():
                (folder / file_name).write_text(text)
            folder.chmod(0o755)
            argv += ["-v", f"{folder}:{mount['mountPath']}:ro"]
        elif "emptyDir" in volume:
            options = ["rw", "exec"]
            if "sizeLimit" in volume["emptyDir"]:
                options.append(f"size={_tmpfs_size(str(volume['emptyDir']['sizeLimit']))}")
            if owner:
                options.append(owner)
            argv += ["--tmpfs", f"{mount['mountPath']}:{','.join(options)}"]
        else:
            raise CheckFailed(f"{name}: volume {mount['name']} is neither a ConfigMap nor emptyDir")
    command, args = container.get("command"), container.get("args", [])
    if command:
        return [*argv, "--entrypoint", command[0], container["image"], *command[1:], *args]
    return [*argv, container["image"], *args]


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["docker", *args],  # noqa: S607 - docker from PATH, as the Makefile uses it
        capture_output=True,
        text=True,
        check=False,
    )


def _ask(name: str, port: int, request: Request) -> tuple[int, str]:
    spec = {
        "method": request.method,
        "url": f"http://127.0.0.1:{port}{request.path}",
        "headers": dict(request.headers or {}),
        "body": request.body,
    }
    result = _docker("exec", name, "python3", "-c", _REQUEST_SNIPPET, json.dumps(spec))
    status, _, body = result.stdout.strip().partition(" ")
    return (int(status) if status.isdigit() else 0), body


def _running(name: str) -> bool:
    return _docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"


def _logs_tail(name: str) -> str:
    result = _docker("logs", "--tail", "30", name)
    return result.stdout + result.stderr


def check_workload(
    documents: Sequence[dict[str, Any]],
    workload: str,
    requests: Callable[[Mapping[str, str], int], Sequence[Request]],
    say: Callable[[str], None],
) -> None:
    """Run one side workload's container; raise CheckFailed unless it answers as required."""
    deployment = _find(documents, "Deployment", f"{RELEASE}-{workload}")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port = int(container["ports"][0]["containerPort"])
    startup = container["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    name = f"llm-gateway-image-check-{workload}"
    _docker("rm", "-f", name)
    with tempfile.TemporaryDirectory(prefix="llm-gateway-image-check-") as scratch:
        argv = docker_run_argv(documents, deployment, name, Path(scratch))
        started = time.monotonic()
        started_container = _docker(*argv[1:])
        if started_container.returncode != 0:
            raise CheckFailed(f"{workload}: docker run failed: {started_container.stderr.strip()}")
        try:
            probe = Request("GET", startup["httpGet"]["path"], 200)
            while _ask(name, port, probe)[0] != 200:
                if not _running(name):
                    raise CheckFailed(f"{workload} exited:\n{_logs_tail(name)}")
                if time.monotonic() - started > budget:
                    raise CheckFailed(f"{workload}: no 200 within {budget}s:\n{_logs_tail(name)}")
                time.sleep(1)
            ready = time.monotonic() - started
            readiness = Request("GET", container["readinessProbe"]["httpGet"]["path"], 200)
            answers = []
            for request in (readiness, *requests(container_env(documents, container), port)):
                status, body = _ask(name, port, request)
                if status != request.expect_status or request.expect_in_body not in body:
                    raise CheckFailed(
                        f"{workload}: {request.method} {request.path} answered {status} {body!r},"
                        f" expected {request.expect_status} with {request.expect_in_body!r}"
                    )
                answers.append(f"{request.method} {request.path} {status}")
            say(
                f"{container['image']}: {probe.path} 200 after {ready:.1f}s"
                f" (user {argv[argv.index('--user') + 1] if '--user' in argv else 'image'},"
                f" read-only root: {'--read-only' in argv}, no network); {'; '.join(answers)}"
            )
        finally:
            _docker("rm", "-f", name)


def _litellm_requests(env: Mapping[str, str], port: int) -> list[Request]:
    key = env["LITELLM_MASTER_KEY"]
    chat = {"model": "smart-router", "messages": [{"role": "user", "content": "hello"}]}
    return [
        Request(
            "POST",
            "/v1/chat/completions",
            200,
            headers={"Authorization": f"Bearer {key}"},
            body=chat,
            expect_in_body="Hello from smart-router",
        ),
    ]


def _mlflow_requests(env: Mapping[str, str], port: int) -> list[Request]:
    # MLflow >= 3.5 answers only allowed Host names; localhost:<port> is in the chart's list.
    host = {"Host": f"localhost:{port}"}
    return [
        Request(
            "POST",
            "/api/2.0/mlflow/experiments/create",
            200,
            headers=host,
            body={"name": "image-check"},
            expect_in_body="experiment_id",
        ),
    ]


def check_all(root: Path, say: Callable[[str], None]) -> None:
    documents = render(root)
    check_workload(documents, "litellm", _litellm_requests, say)
    check_workload(documents, "mlflow", _mlflow_requests, say)
