# Benchmarks (issue 6): never part of `make test` or CI. See bench/run.py.
.PHONY: bench
bench: install ## run the benchmarks and regenerate bench/RESULTS.md and plots
	$(BIN)/python -m bench.run

.PHONY: bench-ratelimit
bench-ratelimit: install redis-server ## CPU and p99 per request of the shared rate-limit stores vs memory://
	$(BIN)/python -m bench.ratelimit_bench
