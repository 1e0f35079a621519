#!/usr/bin/env bash
# Build the chart's Redis image (k8s/images/redis/Dockerfile) from Debian's redis-server on the
# project's offline base, so no container registry is needed:
#
#   scripts/docker/build-redis-image.sh                     -> llm-gateway-redis:dev
#   REDIS_IMAGE=registry.example.com/redis:7 scripts/docker/build-redis-image.sh
#
# Then deploy with --set redis.enabled=true,redis.image.repository=...,redis.image.tag=...
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REDIS_IMAGE=${REDIS_IMAGE:-llm-gateway-redis:dev}
OFFLINE_BASE_IMAGE=${OFFLINE_BASE_IMAGE:-llm-gateway-base:bookworm}

"$ROOT/scripts/docker/ensure-engine.sh"
BASE_TAG="$OFFLINE_BASE_IMAGE" "$ROOT/scripts/docker/build-offline-base.sh"
docker build --build-arg BASE_IMAGE="$OFFLINE_BASE_IMAGE" -t "$REDIS_IMAGE" "$ROOT/k8s/images/redis"
# The image answers as the chart runs it: non-root, read-only root filesystem, /data writable.
docker run --rm --read-only --user 999:999 --tmpfs /data --tmpfs /tmp --entrypoint redis-server \
  "$REDIS_IMAGE" --version
echo "built $REDIS_IMAGE"
