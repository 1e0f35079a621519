"""The gateway pod's security settings hold in the running container, not only in the manifest."""

from __future__ import annotations

from tests.cluster.conftest import Release

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
PROBE = (
    "import os, pathlib\n"
    "print('uid', os.getuid(), 'gid', os.getgid())\n"
    "try:\n"
    "    pathlib.Path('/probe-write').write_text('x')\n"
    "    print('rootfs writable')\n"
    "except OSError as exc:\n"
    "    print('rootfs', exc.strerror)\n"
    f"print('token', os.path.exists('{TOKEN_DIR}'))\n"
    "pathlib.Path('/tmp/probe-write').write_text('x')\n"
    "print('tmp writable')\n"
)


def test_non_root_read_only_root_and_no_service_account_token(release: Release) -> None:
    pod = release.gateway_pods()[0]["metadata"]["name"]
    result = release.kube.kubectl("exec", pod, "--", "python", "-c", PROBE)
    lines = result.stdout.splitlines()
    uid = int(lines[0].split()[1])
    assert uid != 0 and uid == 10001
    assert lines[1] == "rootfs Read-only file system", lines
    assert lines[2] == "token False", lines
    assert lines[3] == "tmp writable"
