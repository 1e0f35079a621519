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

# MLflow trace export (issue 12): throughput per backend, the 10-minute load with an outage, and
# what tracing costs the request path. Not part of `make test`; figures in bench/RESULTS.md.
.PHONY: bench-trace-export
bench-trace-export: install stack-venvs ## traces/s one worker exports: sqlite vs Postgres, batch x uploads in flight
	$(BIN)/python -m bench.trace_export

.PHONY: bench-trace-load
bench-trace-load: install stack-venvs ## 10 min through LiteLLM with a 2 min MLflow outage: requests sent == traces in MLflow
	$(BIN)/python -m bench.trace_load $(BENCH_ARGS)

.PHONY: bench-trace-overhead
bench-trace-overhead: install stack-venvs ## gateway CPU/request and p99: tracking to MLflow vs off vs journal only
	$(BIN)/python -m bench.trace_overhead
