# Upstream transport benchmark (brief E): the native aiohttp adapter vs httpx's pool. Not part of `make test`.
.PHONY: bench-transport
bench-transport: install ## compare the upstream HTTP transports (httpx vs aiohttp) and print a table
	$(BIN)/python bench/transport_bench.py
