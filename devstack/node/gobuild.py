"""Builds the node's Go programs from the Go module proxy into a cache outside the repository.

Nothing built here is committed. Each program is built once per pinned version into
`<cache>/bin/<name>-<version>/`; the Go build and module caches are the user's own (`go env
GOCACHE GOMODCACHE`), so a warm machine rebuilds nothing and a cold one pays the compile once.

Kubernetes cannot be built with `go install k8s.io/kubernetes/...@v`: its go.mod pins the
staging modules (k8s.io/api, client-go...) at v0.0.0 with replaces into ./staging. The wrapper
module in `k8s/node/kube` requires k8s.io/kubernetes and replaces each staging module with its
published v0.M.P; that replace list is generated here from k/k's own go.mod, never hand-kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.node import versions
from devstack.venvs import exclusive, repo_root

KUBE_COMPONENTS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)
_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/\S+\s*$")
_GO_DIRECTIVE = re.compile(r"^go\s+(\S+)\s*$", re.MULTILINE)


def cache_dir() -> Path:
    configured = os.environ.get("LLM_GATEWAY_NODE_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llm-gateway" / "node"


def bin_dir() -> Path:
    """Where `ensure_all` links every built program (one folder to put on PATH)."""
    return cache_dir() / "bin"


def staging_replaces(kubernetes_gomod: str) -> list[str]:
    """The module paths k/k's go.mod replaces with a folder under ./staging, in file order."""
    found = []
    for line in kubernetes_gomod.splitlines():
        match = _STAGING_REPLACE.match(line)
        if match:
            found.append(match.group(1))
    if not found:
        raise ValueError("no ./staging replaces found: is this k8s.io/kubernetes's go.mod?")
    return found


def wrapper_gomod(kubernetes_gomod: str, kubernetes: str, module: str) -> str:
    """go.mod for the wrapper: require k/k at `kubernetes`, each staging module at v0.M.P."""
    staging = versions.staging_version(kubernetes)
    go_line = _GO_DIRECTIVE.search(kubernetes_gomod)
    if go_line is None:
        raise ValueError("k8s.io/kubernetes's go.mod has no go directive")
    lines = [
        f"module {module}",
        "",
        f"go {go_line.group(1)}",
        "",
        f"require k8s.io/kubernetes {kubernetes}",
        "",
        "replace (",
        *(f"\t{path} => {path} {staging}" for path in staging_replaces(kubernetes_gomod)),
        ")",
        "",
    ]
    return "\n".join(lines)


def version_ldflags(kubernetes: str) -> str:
    """The -X flags k/k's hack/lib/version.sh sets, so servers report the real version."""
    major, minor, _ = kubernetes.lstrip("v").split(".")
    values = {
        "gitVersion": kubernetes,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0)),
    }
    flags = [
        f"-X k8s.io/{package}/version.{key}={value}"
        for package in ("client-go/pkg", "component-base")
        for key, value in values.items()
    ]
    return " ".join(["-s", "-w", *flags])


@dataclass(frozen=True)
class GoTool:
    """A program built from one module version: `go build <package>` in a copy of the module.

    A copy rather than `go install pkg@v`, because go install refuses modules whose go.mod has
    replace directives (etcd's server and skaffold pin their siblings that way).
    """

    name: str
    module: str
    version: str
    package: str  # relative to the module root, e.g. ./cmd/crictl
    tags: tuple[str, ...] = ()
    ldflags: str = "-s -w"
    cgo: bool = False
    # A main package under k8s/node/ to build in a module that requires `module` instead of in a
    # copy of it: for modules whose replaces point at sibling folders the proxy does not carry.
    wrapper: str | None = None


# The version the node reports (`containerd://1.7.x`), not "+unknown" as a bare `go build` says.
_CONTAINERD_LDFLAGS = (
    f"-s -w -X github.com/containerd/containerd/version.Version={versions.CONTAINERD.lstrip('v')}"
)


def tools() -> dict[str, GoTool]:
    return {
        tool.name: tool
        for tool in (
            GoTool("etcd", "go.etcd.io/etcd/server/v3", versions.ETCD, ".", wrapper="etcd"),
            GoTool("crictl", "sigs.k8s.io/cri-tools", versions.CRI_TOOLS, "./cmd/crictl"),
            GoTool("coredns", "github.com/coredns/coredns", versions.COREDNS, "."),
            GoTool(
                "containerd",
                "github.com/containerd/containerd",
                versions.CONTAINERD,
                "./cmd/containerd",
                tags=("no_btrfs", "no_devmapper", "no_zfs", "no_aufs"),
                ldflags=_CONTAINERD_LDFLAGS,
            ),
            GoTool(
                "containerd-shim-runc-v2",
                "github.com/containerd/containerd",
                versions.CONTAINERD,
                "./cmd/containerd-shim-runc-v2",
                ldflags=_CONTAINERD_LDFLAGS,
            ),
            GoTool(
                "ctr",
                "github.com/containerd/containerd",
                versions.CONTAINERD,
                "./cmd/ctr",
                ldflags=_CONTAINERD_LDFLAGS,
            ),
            GoTool(
                "helm3",
                "helm.sh/helm/v3",
                versions.HELM3,
                "./cmd/helm",
                ldflags=f"-s -w -X helm.sh/helm/v3/internal/version.version={versions.HELM3}",
            ),
            GoTool(
                "skaffold",
                "github.com/GoogleContainerTools/skaffold/v2",
                versions.SKAFFOLD,
                "./cmd/skaffold",
                ldflags="-s -w -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version"
                f".version={versions.SKAFFOLD}",
            ),
        )
    }


def _go(args: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path) -> None:
    with log.open("ab") as out:
        out.write(f"\n$ go {' '.join(args)}  (in {cwd})\n".encode())
        out.flush()
        result = subprocess.run(  # noqa: S603 - fixed argv
            ["go", *args],  # noqa: S607 - the Go on PATH is the toolchain
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"go {' '.join(args)} failed (exit {result.returncode}):\n{tail}")


def _go_env(cgo: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "1" if cgo else "0"
    env["GOFLAGS"] = "-buildvcs=false -mod=mod"
    env.setdefault("GOTOOLCHAIN", "local")
    return env


def _module_dir(module: str, version: str, env: Mapping[str, str]) -> Path:
    raw = subprocess.run(  # noqa: S603 - fixed argv
        ["go", "mod", "download", "-json", f"{module}@{version}"],  # noqa: S607
        env=dict(env),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return Path(json.loads(raw)["Dir"])


def _recipe_key(*parts: object) -> str:
    """Part of a build folder's name: a changed recipe (flags, tags, wrapper source) rebuilds."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]


def _wrapper_source(name: str) -> str:
    return (repo_root() / "k8s" / "node" / name / "main.go").read_text()


def _installed(target: Path) -> bool:
    return target.is_file() and os.access(target, os.X_OK)


def build_kube(log: Path) -> Path:
    """The multi-call Kubernetes binary (k8s/node/kube), built once per pinned version."""
    key = _recipe_key(_wrapper_source("kube"), version_ldflags(versions.KUBERNETES))
    target = cache_dir() / "build" / f"kube-{versions.KUBERNETES}-{key}" / "kube"
    if _installed(target):
        return target
    env = _go_env(cgo=False)
    source = target.parent / "src"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    shutil.copy(repo_root() / "k8s" / "node" / "kube" / "main.go", source / "main.go")
    kk_dir = _module_dir("k8s.io/kubernetes", versions.KUBERNETES, env)
    gomod = wrapper_gomod(
        (kk_dir / "go.mod").read_text(), versions.KUBERNETES, "llm-gateway.local/node/kube"
    )
    (source / "go.mod").write_text(gomod)
    _go(["mod", "tidy"], cwd=source, env=env, log=log)
    partial = target.with_suffix(".partial")
    _go(
        [
            "build",
            "-trimpath",
            "-ldflags",
            version_ldflags(versions.KUBERNETES),
            "-o",
            str(partial),
            ".",
        ],
        cwd=source,
        env=env,
        log=log,
    )
    partial.rename(target)
    return target


def _write_wrapper(tool: GoTool, source: Path, env: Mapping[str, str], log: Path) -> None:
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    (source / "main.go").write_text(_wrapper_source(str(tool.wrapper)))
    upstream = _module_dir(tool.module, tool.version, env)
    go_line = _GO_DIRECTIVE.search((upstream / "go.mod").read_text())
    go_version = go_line.group(1) if go_line else "1.23"
    (source / "go.mod").write_text(
        f"module llm-gateway.local/node/{tool.name}\n\ngo {go_version}\n\n"
        f"require {tool.module} {tool.version}\n"
    )
    _go(["mod", "tidy"], cwd=source, env=env, log=log)


def build_tool(tool: GoTool, log: Path) -> Path:
    wrapper = _wrapper_source(tool.wrapper) if tool.wrapper else None
    key = _recipe_key(tool, wrapper)
    target = cache_dir() / "build" / f"{tool.name}-{tool.version}-{key}" / tool.name
    if _installed(target):
        return target
    env = _go_env(cgo=tool.cgo)
    source = cache_dir() / "src" / f"{tool.module.replace('/', '_')}-{tool.version}"
    if tool.wrapper is not None:
        _write_wrapper(tool, source, env, log)
    elif not (source / "go.mod").is_file():
        pristine = _module_dir(tool.module, tool.version, env)
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(pristine, source)
        for path in source.rglob("*"):  # the module cache is read-only
            path.chmod(path.stat().st_mode | 0o200)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    args = ["build", "-trimpath", "-ldflags", tool.ldflags, "-o", str(partial)]
    if tool.tags:
        args += ["-tags", ",".join(tool.tags)]
    _go([*args, tool.package], cwd=source, env=env, log=log)
    partial.rename(target)
    return target


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


# What `up` needs; skaffold is built only for the dev loop (`build skaffold`).
NODE_PROGRAMS = (
    "kube",
    "etcd",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "crictl",
    "coredns",
)


def ensure(names: Sequence[str] | None = None) -> Path:
    """Build what is missing and link it all into bin_dir(); return bin_dir().

    `names` picks tools (and "kube" for the Kubernetes binary); None builds everything.
    """
    wanted = list(names) if names is not None else ["kube", *tools()]
    log = cache_dir() / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(cache_dir() / ".build.lock"):
        links: dict[str, Path] = {}
        for name in wanted:
            started = time.monotonic()
            if name == "kube":
                built = build_kube(log)
                links.update({component: built for component in KUBE_COMPONENTS})
            else:
                built = build_tool(tools()[name], log)
                links[name] = built
            elapsed = time.monotonic() - started
            if elapsed > 1:
                print(f"node: built {name} in {elapsed:.0f} s", flush=True)  # noqa: T201
        bin_dir().mkdir(parents=True, exist_ok=True)
        for name, built in links.items():
            _link(bin_dir() / name, built)
    return bin_dir()


def skaffold_path() -> Path:
    """A folder to put first on PATH for skaffold: `skaffold`, and `helm` as Helm 3 (versions)."""
    bins = ensure(["skaffold", "helm3"])
    folder = cache_dir() / "skaffold-path"
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in (("skaffold", bins / "skaffold"), ("helm", bins / "helm3")):
        _link(folder / name, target.resolve())
    return folder
