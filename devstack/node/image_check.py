"""Start the LiteLLM, PostgreSQL and MLflow images the way the chart runs them on the node.

`python -m devstack.node.images check` renders the chart with k8s/values-node.yaml and turns each
side workload's pod spec into `docker run`s: the same command/args (with the kubelet's $(VAR)
expansion), env (the rendered Secrets' values too), uid/gid, read-only root filesystem, dropped
capabilities and no privilege escalation; the ConfigMaps mounted read-only; every emptyDir as a
tmpfs of its size limit; init containers run to completion first; and no network at all, as on
the node, except that MLflow joins PostgreSQL's network namespace, where the PostgreSQL Service's
name points at loopback. It waits for the startup probe (an HTTP path answering 200, or an exec
command exiting 0) within the probe's budget, then checks the readiness probe and real requests:
a mock chat completion with LiteLLM's master key; PostgreSQL's login over TCP with the rendered
password (and a wrong one refused); an MLflow experiment written to the PostgreSQL store. The
gateway image is not checked here: the e2e suite (`make test-e2e`) runs its rendered pod spec under
an emulated kubelet.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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


def _secret_value(documents: Sequence[dict[str, Any]], reference: Mapping[str, str]) -> str:
    secret = _find(documents, "Secret", reference["name"])
    return base64.b64decode(secret["data"][reference["key"]]).decode()


def container_env(documents: Sequence[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The environment the kubelet gives the container: envFrom Secrets, then its env list (plain
    values and keys of rendered Secrets)."""
    env = {}
    for source in container.get("envFrom", []):
        secret = _find(documents, "Secret", source["secretRef"]["name"])
        for key, value in secret.get("data", {}).items():
            env[key] = base64.b64decode(value).decode()
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = _secret_value(documents, item["valueFrom"]["secretKeyRef"])
        else:
            raise CheckFailed(f"env {item['name']}: only values and Secret keys are supported")
    return env


def expand(argument: str, env: Mapping[str, str]) -> str:
    """The kubelet's $(VAR) expansion in command and args: defined variables only."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), argument)


def docker_run_argv(
    documents: Sequence[dict[str, Any]],
    workload: dict[str, Any],
    name: str,
    scratch: Path,
    *,
    container: dict[str, Any] | None = None,
    network: str = "none",
    add_hosts: Sequence[str] = (),
    detach: bool = True,
) -> list[str]:
    """`docker run` for one container of the workload's pod (default: its only main container),
    as the kubelet would start it. `network` is "none" or "container:<name>" (a pod's shared
    network namespace); `add_hosts` are NAME:IP lines for /etc/hosts."""
    pod = workload["spec"]["template"]["spec"]
    if container is None:
        (container,) = pod["containers"]
    pod_context = pod.get("securityContext", {})
    context = {**pod_context, **container.get("securityContext", {})}
    argv = ["docker", "run", *(["-d"] if detach else []), "--name", name, "--network", network]
    for host in add_hosts:
        argv += ["--add-host", host]
    uid, gid = context.get("runAsUser"), context.get("runAsGroup")
    if uid is not None:
        argv += ["--user", f"{uid}:{gid if gid is not None else uid}"]
    if context.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    for capability in context.get("capabilities", {}).get("drop", []):
        argv += ["--cap-drop", capability]
    if context.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    env = container_env(documents, container)
    for key, value in env.items():
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
    command = [expand(part, env) for part in container.get("command", [])]
    args = [expand(part, env) for part in container.get("args", [])]
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


@dataclass(frozen=True)
class Started:
    """One running container of a checked workload, ready (its probes passed)."""

    workload: str
    name: str  # the docker container's
    container: dict[str, Any]  # the rendered container spec
    env: dict[str, str]
    port: int

    def expect(self, requests: Sequence[Request]) -> list[str]:
        """Ask each request from inside the container; CheckFailed on any other answer."""
        answers = []
        for request in requests:
            status, body = _ask(self.name, self.port, request)
            if status != request.expect_status or request.expect_in_body not in body:
                raise CheckFailed(
                    f"{self.workload}: {request.method} {request.path} answered {status} {body!r},"
                    f" expected {request.expect_status} with {request.expect_in_body!r}"
                )
            answers.append(f"{request.method} {request.path} {status}")
        return answers


def _probe_passes(name: str, port: int, probe: Mapping[str, Any]) -> bool:
    if "httpGet" in probe:
        return _ask(name, port, Request("GET", probe["httpGet"]["path"], 200))[0] == 200
    return _docker("exec", name, *probe["exec"]["command"]).returncode == 0


def _probe_name(probe: Mapping[str, Any]) -> str:
    return probe["httpGet"]["path"] if "httpGet" in probe else probe["exec"]["command"][0]


def _run_init_containers(
    documents: Sequence[dict[str, Any]],
    workload: dict[str, Any],
    name: str,
    scratch: Path,
    network: str,
    budget: float,
) -> list[str]:
    """Each init container to completion, in order, as the kubelet runs them; their last lines."""
    done = []
    for init in workload["spec"]["template"]["spec"].get("initContainers", []):
        init_name = f"{name}-{init['name']}"
        _docker("rm", "-f", init_name)
        argv = docker_run_argv(
            documents, workload, init_name, scratch, container=init, network=network, detach=False
        )
        try:
            result = subprocess.run(  # noqa: S603 - fixed argv
                argv, capture_output=True, text=True, timeout=budget, check=False
            )
        except subprocess.TimeoutExpired as late:
            raise CheckFailed(f"init container {init['name']}: running after {budget}s") from late
        finally:
            _docker("rm", "-f", init_name)
        output = (result.stdout + result.stderr).strip().splitlines()
        if result.returncode != 0:
            tail = "\n".join(output[-20:])
            raise CheckFailed(f"init container {init['name']} exited {result.returncode}:\n{tail}")
        done.append(f"init {init['name']}: {output[-1] if output else 'exit 0'}")
    return done


@contextlib.contextmanager
def started(
    documents: Sequence[dict[str, Any]],
    kind: str,
    workload: str,
    say: Callable[[str], None],
    *,
    network: str = "none",
    add_hosts: Sequence[str] = (),
) -> Iterator[Started]:
    """Run one side workload's pod (init containers, then its container) until its startup and
    readiness probes pass; yield it, and remove it afterwards. CheckFailed if it never is ready."""
    spec = _find(documents, kind, f"{RELEASE}-{workload}")
    (container,) = spec["spec"]["template"]["spec"]["containers"]
    port = int(container["ports"][0]["containerPort"])
    startup = container["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    name = f"llm-gateway-image-check-{workload}"
    _docker("rm", "-f", name)
    with tempfile.TemporaryDirectory(prefix="llm-gateway-image-check-") as scratch:
        began = time.monotonic()
        notes = _run_init_containers(documents, spec, name, Path(scratch), network, budget)
        argv = docker_run_argv(
            documents, spec, name, Path(scratch), network=network, add_hosts=add_hosts
        )
        started_container = _docker(*argv[1:])
        if started_container.returncode != 0:
            raise CheckFailed(f"{workload}: docker run failed: {started_container.stderr.strip()}")
        try:
            while not _probe_passes(name, port, startup):
                if not _running(name):
                    raise CheckFailed(f"{workload} exited:\n{_logs_tail(name)}")
                if time.monotonic() - began > budget:
                    raise CheckFailed(
                        f"{workload}: startup probe failing after {budget}s:\n{_logs_tail(name)}"
                    )
                time.sleep(1)
            ready = time.monotonic() - began
            if not _probe_passes(name, port, container["readinessProbe"]):
                raise CheckFailed(f"{workload}: readiness probe fails:\n{_logs_tail(name)}")
            user = argv[argv.index("--user") + 1] if "--user" in argv else "image"
            say(
                f"{container['image']}: {_probe_name(startup)} passes after {ready:.1f}s"
                f" (user {user}, read-only root: {'--read-only' in argv}, network {network})"
                + "".join(f"; {note}" for note in notes)
            )
            yield Started(workload, name, container, container_env(documents, container), port)
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


def _psql(postgres: Started, password: str, sql: str) -> subprocess.CompletedProcess[str]:
    """psql over TCP to the server's own address, as a client in another pod logs in."""
    return _docker(
        "exec",
        "-e",
        f"PGPASSWORD={password}",
        postgres.name,
        "psql",
        "--no-psqlrc",
        "--host=127.0.0.1",
        f"--port={postgres.port}",
        f"--username={postgres.env['POSTGRES_USER']}",
        f"--dbname={postgres.env['POSTGRES_DB']}",
        "--tuples-only",
        "--no-align",
        f"--command={sql}",
    )


def check_postgres_login(postgres: Started) -> list[str]:
    """The rendered password logs MLflow's user into MLflow's database; a wrong one is refused."""
    user, database = postgres.env["POSTGRES_USER"], postgres.env["POSTGRES_DB"]
    good = _psql(
        postgres, postgres.env["POSTGRES_PASSWORD"], "SELECT current_user, current_database()"
    )
    if good.returncode != 0 or good.stdout.strip() != f"{user}|{database}":
        raise CheckFailed(f"postgresql: login with the Secret's password: {good.stderr.strip()}")
    bad = _psql(postgres, "not-" + postgres.env["POSTGRES_PASSWORD"], "SELECT 1")
    if bad.returncode == 0 or "password authentication failed" not in bad.stderr:
        raise CheckFailed(f"postgresql: a wrong password was not refused: {bad.stderr.strip()}")
    return [f"login {user}@{database} over TCP", "wrong password refused"]


def check_all(root: Path, say: Callable[[str], None]) -> None:
    documents = render(root)
    with started(documents, "Deployment", "litellm", say) as litellm:
        say(f"litellm: {'; '.join(litellm.expect(_litellm_requests(litellm.env, litellm.port)))}")
    # MLflow reaches PostgreSQL through its Service's name: here, in PostgreSQL's network
    # namespace, that name is loopback (a pod's containers share one namespace the same way).
    service = f"{RELEASE}-postgresql:127.0.0.1"
    with started(documents, "StatefulSet", "postgresql", say, add_hosts=(service,)) as postgres:
        say(f"postgresql: {'; '.join(check_postgres_login(postgres))}")
        network = f"container:{postgres.name}"
        with started(documents, "Deployment", "mlflow", say, network=network) as mlflow:
            say(f"mlflow: {'; '.join(mlflow.expect(_mlflow_requests(mlflow.env, mlflow.port)))}")
