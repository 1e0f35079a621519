#!/usr/bin/env bash
# skaffold's custom builder for the local node (`skaffold dev -p node`): build $IMAGE from the
# Dockerfile on the offline base and import it into the node's containerd. The node has no
# registry to push to, and skaffold only side-loads into kind, k3d and minikube by itself.
set -euo pipefail
: "${IMAGE:?skaffold sets IMAGE}"
cd "${BUILD_CONTEXT:-.}"
docker build --build-arg BASE_IMAGE="${BASE_IMAGE:-llm-gateway-base:bookworm}" -t "$IMAGE" .
"${NODE_PYTHON:-.venv/bin/python}" -m devstack.node load-images "$IMAGE"
