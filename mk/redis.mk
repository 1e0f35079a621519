# redis-server (Debian's package) for the integration tests, which start their own on a free
# loopback port and stop it. Installed when missing, never started as a system service.
.PHONY: redis-server
redis-server: ## install Debian's redis-server if missing (tests start their own, never the service)
	@command -v redis-server >/dev/null 2>&1 || scripts/stack/install-redis-server.sh

pytest: redis-server
