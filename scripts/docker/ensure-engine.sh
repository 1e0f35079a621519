#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`; start one by hand when it does not.
#
# Machines without systemd (CI containers, this sandbox) have no service manager to start
# dockerd, so we install Debian's docker.io when the daemon binary is missing and run dockerd in
# the background, logging to $DOCKERD_LOG. If no engine can be had, exit non-zero with a message
# that says why: the e2e suite must fail loudly, never skip.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/tmp/llm-gateway-dockerd.log}
DOCKERD_WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}

die() {
  echo "" >&2
  echo "ERROR: no Docker engine: $*" >&2
  echo "       (the e2e suite needs one; it fails rather than skipping)" >&2
  if [[ -f "$DOCKERD_LOG" ]]; then
    echo "---- last lines of $DOCKERD_LOG ----" >&2
    tail -n 30 "$DOCKERD_LOG" >&2 || true
  fi
  exit 1
}

engine_up() { docker info >/dev/null 2>&1; }

if engine_up; then
  echo "docker engine: already running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install or start dockerd"
  SUDO=(sudo)
fi
as_root() { "${SUDO[@]}" "$@"; }

if ! command -v dockerd >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "dockerd is missing and apt-get is not available"
  echo "docker engine: dockerd missing, installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq || die "apt-get update failed"
  as_root apt-get install -y -qq docker.io >/dev/null || die "apt-get install docker.io failed"
fi
command -v docker >/dev/null 2>&1 || die "the docker client is missing"

# Started by a service manager elsewhere but not answering: do not start a second daemon.
if [[ -S /var/run/docker.sock ]] && pgrep -x dockerd >/dev/null 2>&1; then
  for _ in $(seq "$DOCKERD_WAIT_SECONDS"); do engine_up && exit 0; sleep 1; done
  die "a dockerd process exists but does not answer on /var/run/docker.sock"
fi

# Bridge networking needs packet forwarding for containers (and `docker build` RUN steps) to reach
# PyPI through the NAT dockerd sets up; dockerd enables it itself when it may write /proc/sys.
start_dockerd() {
  echo "docker engine: starting dockerd $* (log: $DOCKERD_LOG)"
  # setsid + nohup: the daemon must outlive this script and the make job that ran it.
  "${SUDO[@]}" setsid nohup dockerd "$@" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  DOCKERD_PID=$!
  local pid=$DOCKERD_PID
  for _ in $(seq "$DOCKERD_WAIT_SECONDS"); do
    if engine_up; then
      echo "docker engine: up ($(docker version --format '{{.Server.Version}}'), storage $(docker info --format '{{.Driver}}'))"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 1
  done
  return 1
}

: >"$DOCKERD_LOG"
# overlay2 is the fast default; vfs is the fallback for filesystems that cannot host overlays
# (e.g. an overlay root without a backing ext4/xfs).
if ! start_dockerd ${DOCKERD_FLAGS:-}; then
  # Stop only the daemon this script started (by its pid), then try the fallback driver.
  as_root kill "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 20); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
  echo "docker engine: default start failed, retrying with --storage-driver=vfs"
  start_dockerd --storage-driver=vfs ${DOCKERD_FLAGS:-} || die "dockerd did not start within ${DOCKERD_WAIT_SECONDS}s"
fi
