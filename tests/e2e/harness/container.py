"""Run a PodSpec as one Docker container, with exactly the spec's user, filesystem, env and mounts.

The container joins a user bridge network (so pods and their dependencies reach each other by
name) and publishes every named port on a fixed free loopback port of the host: probes and the
endpoints proxy talk to `127.0.0.1:<host port>`, and a restarted container keeps its address.
Every lifecycle action is timestamped in `events` (monotonic seconds).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.harness.pod import PodSpec, Volume
from tests.support.processes import free_port

E2E_LABEL = "llm-gateway-e2e"


class DockerError(RuntimeError):
    """A docker CLI call failed; the message carries its stderr."""


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


async def docker(*args: str, check: bool = True, timeout: float = 120) -> CommandResult:
    process = await asyncio.create_subprocess_exec(
        "docker",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise DockerError(f"docker {' '.join(args[:2])} timed out after {timeout}s") from None
    result = CommandResult(process.returncode or 0, out.decode(), err.decode())
    if check and result.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:3])} failed: {result.stderr.strip()}")
    return result


@dataclass
class Event:
    name: str
    at: float  # time.monotonic()


@dataclass
class PodContainer:
    """One pod's container. `start()` creates it; `restart()` replaces the process, not the pod."""

    spec: PodSpec
    workdir: Path  # where configMap/secret volume files are written
    network: str
    image: str | None = None  # overrides spec.image (the locally built tag)
    env_overrides: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    host_ports: dict[int, int] = field(default_factory=dict)  # containerPort -> host port
    events: list[Event] = field(default_factory=list)
    paused: bool = False
    _volumes_created: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.name or f"{E2E_LABEL}-{self.spec.name}-{free_port()}"
        self.host_ports = {port: free_port() for port in self.spec.ports.values()}

    def record(self, name: str) -> float:
        at = time.monotonic()
        self.events.append(Event(name, at))
        return at

    def event_time(self, name: str) -> float | None:
        times = [event.at for event in self.events if event.name == name]
        return times[-1] if times else None

    def url(self, port: int | str = "http", path: str = "") -> str:
        number = self.spec.ports[port] if isinstance(port, str) else port
        return f"http://127.0.0.1:{self.host_ports[number]}{path}"

    async def _volume_args(self, volume: Volume, mount_path: str, read_only: bool) -> list[str]:
        if volume.kind == "emptyDir" and volume.medium == "Memory":
            options = "rw,exec,mode=1777"
            if volume.size_limit:
                options += f",size={volume.size_limit.replace('Mi', 'm').replace('Gi', 'g')}"
            return ["--tmpfs", f"{mount_path}:{options}"]
        if volume.kind == "emptyDir":
            # Disk-backed emptyDir: a fresh world-writable directory (group fsGroup, setgid), as
            # the kubelet makes it. A docker tmpfs would inherit the image directory's mode and
            # root ownership instead, unlike Kubernetes.
            directory = self.workdir / f"{self.name}-{volume.name}"
            directory.mkdir(parents=True, exist_ok=True)
            if self.spec.fs_group is not None and os.geteuid() == 0:
                os.chown(directory, -1, self.spec.fs_group)
            directory.chmod(0o2777)
            return ["-v", f"{directory}:{mount_path}"]
        if volume.kind in ("configMap", "secret"):
            directory = self.workdir / f"{self.name}-{volume.name}"
            directory.mkdir(parents=True, exist_ok=True)
            for relative, content in volume.files.items():
                target = directory / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
                target.chmod(volume.file_modes.get(relative, 0o644))
                if self.spec.fs_group is not None and os.geteuid() == 0:
                    # fsGroup: the kubelet makes volume files group-owned by it, which is how a
                    # 0440 secret stays readable by the non-root user.
                    os.chown(target, -1, self.spec.fs_group)
            return ["-v", f"{directory}:{mount_path}:ro"]
        # persistentVolumeClaim: a named volume that outlives container restarts, as a PVC does.
        volume_name = f"{self.name}-{volume.claim_name or volume.name}"
        await docker("volume", "create", "--label", E2E_LABEL, volume_name)
        self._volumes_created.append(volume_name)
        return ["-v", f"{volume_name}:{mount_path}{':ro' if read_only else ''}"]

    async def run_args(self) -> list[str]:
        spec = self.spec
        args = ["--name", self.name, "--label", E2E_LABEL, "--network", self.network]
        args += ["--hostname", spec.name, "--network-alias", spec.name]
        # Reach processes a test runs on the host (a LiteLLM proxy, MLflow) by this name.
        args += ["--add-host", "host.docker.internal:host-gateway", "--no-healthcheck"]
        if spec.run_as_user is not None:
            group = spec.run_as_group if spec.run_as_group is not None else spec.run_as_user
            args += ["--user", f"{spec.run_as_user}:{group}"]
        if spec.fs_group is not None:
            args += ["--group-add", str(spec.fs_group)]
        if spec.read_only_root_filesystem:
            args.append("--read-only")
        args += [f"--cap-drop={cap}" for cap in spec.drop_capabilities]
        if not spec.allow_privilege_escalation:
            args += ["--security-opt", "no-new-privileges"]
        for container_port, host_port in self.host_ports.items():
            args += ["-p", f"127.0.0.1:{host_port}:{container_port}"]
        for key, value in {**spec.env, **self.env_overrides}.items():
            args += ["-e", f"{key}={value}"]
        for mount in spec.volume_mounts:
            args += await self._volume_args(
                spec.volume(mount.volume), mount.mount_path, mount.read_only
            )
        if spec.command:
            args += ["--entrypoint", spec.command[0]]
        args.append(self.image or spec.image)
        args += [*spec.command[1:], *spec.args]
        return args

    async def start(self) -> None:
        """Create and start the container (`docker run -d`); records `container_started`."""
        args = await self.run_args()
        await docker("run", "-d", *args)
        self.record("container_started")

    async def restart(self) -> None:
        """Start the stopped container again, as the kubelet restarts a failed container."""
        await docker("start", self.name)
        self.record("container_started")

    async def exec(self, command: Sequence[str], timeout: float = 60) -> CommandResult:
        return await docker("exec", self.name, *command, check=False, timeout=timeout)

    async def signal_process(self, pid: int, signal: str) -> CommandResult:
        """Signal one process inside the container (e.g. SIGSTOP a worker: a hung worker)."""
        # The shell's builtin `kill`: minimal bases have no /bin/kill (procps).
        return await self.exec(["sh", "-c", f"kill -{signal} {int(pid)}"])

    async def processes(self) -> dict[int, str]:
        """pid -> command line of every process in the container (read from /proc)."""
        script = "for p in /proc/[0-9]*; do echo ${p#/proc/} $(tr '\\0' ' ' < $p/cmdline); done"
        result = await self.exec(["sh", "-c", script])
        table: dict[int, str] = {}
        for line in result.stdout.splitlines():
            pid, _, cmdline = line.partition(" ")
            if pid.isdigit() and cmdline.strip():
                table[int(pid)] = cmdline.strip()
        return table

    async def kill(self, signal: str) -> None:
        """Signal PID 1 (`TERM`, `KILL`, `STOP`, `CONT`, ...)."""
        await docker("kill", "-s", signal, self.name, check=False)
        if signal == "KILL" and self.paused:
            # A frozen cgroup only dies once thawed.
            await docker("unpause", self.name, check=False)
            self.paused = False
        self.record(f"signal_{signal}")

    async def pause(self) -> None:
        """Freeze every process of the container (cgroup freezer): a hung pod."""
        await docker("pause", self.name)
        self.paused = True
        self.record("paused")

    async def unpause(self) -> None:
        await docker("unpause", self.name)
        self.paused = False
        self.record("unpaused")

    async def running(self) -> bool:
        result = await docker("inspect", "-f", "{{.State.Running}}", self.name, check=False)
        return result.stdout.strip() == "true"

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if still running after `timeout` seconds."""
        try:
            result = await docker("wait", self.name, timeout=timeout)
        except DockerError:
            return None
        self.record("exited")
        return int(result.stdout.strip())

    async def exit_code(self) -> int:
        result = await docker("inspect", "-f", "{{.State.ExitCode}}", self.name)
        return int(result.stdout.strip())

    async def logs(self) -> str:
        """stdout and stderr interleaved, in the order the container wrote them."""
        process = await asyncio.create_subprocess_exec(
            "docker",
            "logs",
            self.name,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        return out.decode()

    async def remove(self) -> None:
        await docker("rm", "-f", "-v", self.name, check=False)
        for volume in self._volumes_created:
            await docker("volume", "rm", "-f", volume, check=False)
