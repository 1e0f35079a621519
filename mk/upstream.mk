# Upstream transport benchmark (brief E): httpx's pool vs httpx-aiohttp. Not part of `make test`.
.PHONY: bench-transport
bench-transport: install ## compare the upstream HTTP transports (httpx vs aiohttp) and print a table
	$(BIN)/python bench/transport_bench.py
