#!/usr/bin/env bash
# Stop with a clear message when a tool the Kubernetes targets need is missing.
# Usage: scripts/k8s-require.sh kind docker ...
set -euo pipefail
missing=0
for tool in "$@"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    case "$tool" in
      kind) hint="install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)" ;;
      skaffold) hint="install skaffold (https://skaffold.dev/docs/install/)" ;;
      docker) hint="install and start Docker (make docker-engine does it on Debian)" ;;
      helm|kubectl) hint="run make tools" ;;
      *) hint="install it" ;;
    esac
    echo "error: '$tool' is not on PATH: $hint" >&2
    missing=1
  fi
done
exit "$missing"
