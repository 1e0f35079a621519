#!/usr/bin/env bash
# Install Debian's redis-server for the tests without starting it as a service: the tests start
# their own on a free loopback port. A policy-rc.d that refuses every start keeps the package's
# maintainer scripts from launching one, and is removed afterwards (unless one was there).
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "redis-server is missing and installing it needs root: apt-get install -y redis-server" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
own_policy=false
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=true
fi
cleanup() { if $own_policy; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends redis-server; then
  apt-get update
  apt-get install -y --no-install-recommends redis-server
fi
command -v redis-server >/dev/null
