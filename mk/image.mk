# Container image and the e2e suite that runs it under an emulated kubelet (brief G).
IMAGE ?= llm-gateway:dev
REDIS_IMAGE ?= llm-gateway-redis:dev
POSTGRES_IMAGE ?= llm-gateway-postgres:dev
BASE_IMAGE ?= python:3.12-slim
OFFLINE_BASE_IMAGE ?= llm-gateway-base:bookworm
IMAGE_VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
# auto: use $(BASE_IMAGE) when it is present or can be pulled, else the debootstrap base.
E2E_BASE ?= auto
DOCKER_BUILD = docker build --build-arg VERSION=$(IMAGE_VERSION) -t $(IMAGE)

.PHONY: docker-engine
docker-engine: ## ensure a Docker engine answers (installs docker.io and starts dockerd if needed)
	scripts/docker/ensure-engine.sh

.PHONY: image
image: docker-engine ## build the image on python:3.12-slim (needs a container registry)
	$(DOCKER_BUILD) --build-arg BASE_IMAGE=$(BASE_IMAGE) .
	@$(MAKE) --no-print-directory image-size

.PHONY: image-offline
image-offline: docker-engine ## build the image on a debootstrap Debian base (no registry needed)
	BASE_TAG=$(OFFLINE_BASE_IMAGE) scripts/docker/build-offline-base.sh
	$(DOCKER_BUILD) --build-arg BASE_IMAGE=$(OFFLINE_BASE_IMAGE) .
	@$(MAKE) --no-print-directory image-size

.PHONY: image-size
image-size: ## print the built image's size
	@docker image inspect $(IMAGE) --format '{{.Size}}' \
	  | awk '{printf "$(IMAGE): %.0f MB\n", $$1 / 1e6}'

.PHONY: image-e2e
image-e2e: docker-engine
	@if [[ "$(E2E_BASE)" == offline ]]; then use=offline; \
	elif [[ "$(E2E_BASE)" == registry ]]; then use=registry; \
	elif docker image inspect $(BASE_IMAGE) >/dev/null 2>&1 \
	  || timeout 30 docker pull -q $(BASE_IMAGE) >/dev/null 2>&1; then use=registry; \
	else echo "no registry answers for $(BASE_IMAGE): building on the offline base"; use=offline; fi; \
	if [[ $$use == offline ]]; then $(MAKE) --no-print-directory image-offline; \
	else $(MAKE) --no-print-directory image; fi

.PHONY: test-e2e
test-e2e: install tools image-e2e ## build the image and run the e2e suite (kubelet + endpoints emulation) on the chart's pod spec
	E2E_IMAGE=$(IMAGE) E2E_POD_SOURCE=chart $(BIN)/pytest -m e2e tests/e2e $(PYTEST_ARGS)

.PHONY: image-redis
image-redis: ## build the chart's Redis image from Debian's redis-server on the offline base
	REDIS_IMAGE=$(REDIS_IMAGE) OFFLINE_BASE_IMAGE=$(OFFLINE_BASE_IMAGE) scripts/docker/build-redis-image.sh

.PHONY: image-postgres
image-postgres: ## build the chart's PostgreSQL image from Debian's postgresql on the offline base
	POSTGRES_IMAGE=$(POSTGRES_IMAGE) OFFLINE_BASE_IMAGE=$(OFFLINE_BASE_IMAGE) scripts/docker/build-postgres-image.sh
