#!/usr/bin/env bash
# Build the chart's PostgreSQL image (k8s/images/postgres/Dockerfile) from Debian's postgresql on
# the project's offline base, so no container registry is needed:
#
#   scripts/docker/build-postgres-image.sh                        -> llm-gateway-postgres:dev
#   POSTGRES_IMAGE=registry.example.com/postgres:15 scripts/docker/build-postgres-image.sh
#
# Then deploy with --set mlflow.postgresql.enabled=true,mlflow.postgresql.image.repository=...,
# mlflow.postgresql.image.tag=... (`python -m devstack.node.images build` builds it with the
# node's other images).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
POSTGRES_IMAGE=${POSTGRES_IMAGE:-llm-gateway-postgres:dev}
OFFLINE_BASE_IMAGE=${OFFLINE_BASE_IMAGE:-llm-gateway-base:bookworm}

"$ROOT/scripts/docker/ensure-engine.sh"
BASE_TAG="$OFFLINE_BASE_IMAGE" "$ROOT/scripts/docker/build-offline-base.sh"
docker build --build-arg BASE_IMAGE="$OFFLINE_BASE_IMAGE" -t "$POSTGRES_IMAGE" \
  "$ROOT/k8s/images/postgres"
# The image answers as the chart runs it: non-root, read-only root filesystem, the data
# directory's volume, the socket directory and /tmp writable.
docker run --rm --read-only --user 999:999 --tmpfs /var/lib/postgresql/data:uid=999,gid=999 \
  --tmpfs /var/run/postgresql:uid=999,gid=999 --tmpfs /tmp --entrypoint postgres \
  "$POSTGRES_IMAGE" --version
echo "built $POSTGRES_IMAGE"
