#!/usr/bin/env bash
# skaffold's custom builder for the local node (`skaffold dev -p node`): build $IMAGE from the
# Dockerfile on the offline base and import it into the node's containerd. The node has no
# registry to push to, and skaffold only side-loads into kind, k3d and minikube by itself.
set -euo pipefail
: "${IMAGE:?skaffold sets IMAGE}"
cd "${BUILD_CONTEXT:-.}"
docker build --build-arg BASE_IMAGE="${BASE_IMAGE:-llm-gateway-base:bookworm}" -t "$IMAGE" .
# skaffold deploys a local build as NAME:<image id> (a tag it makes after this script returns,
# see its TagWithImageID): make that tag now so the node holds the reference the pods will use.
id=$(docker image inspect --format '{{.Id}}' "$IMAGE")
unique="${IMAGE%:*}:${id#sha256:}"
docker tag "$IMAGE" "$unique"
"${NODE_PYTHON:-.venv/bin/python}" -m devstack.node load-images "$IMAGE" "$unique"
