# Benchmarks (issue 6): never part of `make test` or CI. See bench/run.py.
.PHONY: bench
bench: install ## run the benchmarks and regenerate bench/RESULTS.md and plots
	$(BIN)/python -m bench.run

.PHONY: bench-ratelimit
bench-ratelimit: install redis-server ## CPU and p99 per request of the shared rate-limit stores vs memory://
	$(BIN)/python -m bench.ratelimit_bench

# Upstream transport benchmark (brief E): the native aiohttp adapter vs httpx's pool. Not part of `make test`.
.PHONY: bench-transport
bench-transport: install ## compare the upstream HTTP transports (httpx vs aiohttp) and print a table
	$(BIN)/python bench/transport_bench.py
