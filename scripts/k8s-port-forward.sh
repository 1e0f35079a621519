#!/usr/bin/env bash
# Forward the gateway and the dependency UIs to localhost until Ctrl-C:
#   gateway :8000   MLflow UI :5000   Qdrant dashboard :6333/dashboard   LiteLLM UI :4000/ui
set -euo pipefail
KUBECTL=${KUBECTL:-.tools/bin/kubectl}
RELEASE=${HELM_RELEASE:-llm-gateway}
NAMESPACE=${K8S_NAMESPACE:-llm-gateway}
CONTEXT=${KUBE_CONTEXT:-kind-${KIND_CLUSTER:-llm-gateway}}

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop EXIT INT TERM

forward() { # service local-port remote-port
  if "$KUBECTL" --context "$CONTEXT" -n "$NAMESPACE" get service "$1" >/dev/null 2>&1; then
    "$KUBECTL" --context "$CONTEXT" -n "$NAMESPACE" port-forward "service/$1" "$2:$3" >/dev/null &
    pids+=("$!")
    echo "service/$1 -> http://localhost:$2"
  else
    echo "service/$1 not deployed (subchart disabled?): skipped"
  fi
}

# The release name contains the chart name, so the gateway's objects are named after the release.
forward "$RELEASE" 8000 8000
forward "$RELEASE-mlflow" 5000 5000
forward "$RELEASE-qdrant" 6333 6333
forward "$RELEASE-litellm" 4000 4000
echo "forwarding; Ctrl-C stops. Try: make smoke"
wait
