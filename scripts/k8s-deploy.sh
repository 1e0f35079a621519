#!/usr/bin/env bash
# helm upgrade --install the chart, waiting for every workload and rolling back on failure.
# Usage: HELM=.tools/bin/helm scripts/k8s-deploy.sh [-f values.yaml ...] [--set k=v ...]
set -euo pipefail
HELM=${HELM:-.tools/bin/helm}
KUBECTL=${KUBECTL:-.tools/bin/kubectl}
RELEASE=${HELM_RELEASE:-llm-gateway}
NAMESPACE=${K8S_NAMESPACE:-llm-gateway}
CONTEXT=${KUBE_CONTEXT:-kind-${KIND_CLUSTER:-llm-gateway}}

# Helm 4 renamed --atomic to --rollback-on-failure; both wait for readiness and roll back.
if "$HELM" version --short | grep -q '^v3\.'; then
  rollback=(--atomic --wait)
else
  rollback=(--rollback-on-failure --wait=watcher)
fi

"$HELM" upgrade --install "$RELEASE" chart/llm-gateway \
  --kube-context "$CONTEXT" \
  --namespace "$NAMESPACE" --create-namespace \
  "${rollback[@]}" --timeout 10m \
  "$@"

"$KUBECTL" --context "$CONTEXT" -n "$NAMESPACE" get pods -o wide
echo "deployed: make port-forward (in another terminal), then make smoke"
