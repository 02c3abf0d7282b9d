# The two commands a new user runs are `make quickstart` and `make test`.
GO ?= go

# The modules whose tests run in `make test`: the core (cache, codec, loader,
# ...), azure (the Azure SDK stays out of the core module), the fault suite
# and otel (OpenTelemetry stays out too), and the example service
# examples/webapp (SQLite and the Prometheus exporter stay out of the core).
# benchmarks/ is vetted and run by bench-ci.
MODULES = . azure faults otel examples/webapp

.PHONY: test quickstart webapp webapp-load bench bench-ci fuzz soak vet staticcheck fmt check

# The README's test command: installs redis-server (and redis-py, for the
# interop test, and PostgreSQL's server binaries, for examples/webapp's
# PostgreSQL suite) when it is missing, runs
# the codec's allocation bounds in a normal build (the race detector adds
# copies of its own), then every test of every module (root, azure, and the
# short forms of the fault suite) with the race detector against private
# redis-server processes.
test:
	./scripts/ensure-redis
	./scripts/ensure-python-redis
	./scripts/ensure-postgres
	$(GO) test -count=1 -run 'Allocation' ./codec/
	@set -e; for m in $(MODULES); do \
		echo "== go test -race ($$m)"; \
		(cd $$m && $(GO) test -race -count=1 ./...); \
	done

# Runs the guide, step by step, against REDIS_URL or a private redis-server.
quickstart:
	$(GO) run ./examples/quickstart

# Runs the example service (examples/webapp) against REDIS_URL, or a private
# redis-server when nothing answers there, and prints the address to open.
# ADDR (default 127.0.0.1:8080) and DATA_DIR (default examples/webapp/data),
# or DATABASE_URL for PostgreSQL; CACHE=off for the database alone.
webapp:
	cd examples/webapp && $(GO) run .

# The webapp's load comparison: aside on and off (the database alone), one
# instance and two, on a private redis-server and a fresh SQLite catalogue
# per row, printed as one markdown table. LOAD_DB=postgres runs it on a
# private PostgreSQL server instead.
LOAD_DB ?= sqlite
webapp-load:
	./scripts/ensure-redis
	cd examples/webapp && $(GO) run ./cmd/load -compare -db $(LOAD_DB)

vet:
	@set -e; for m in $(MODULES) benchmarks; do \
		echo "== go vet ($$m)"; \
		(cd $$m && $(GO) vet ./...); \
	done

# staticcheck on every module (installs the pinned version when missing).
staticcheck:
	./scripts/staticcheck

fmt:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

check: fmt vet staticcheck test

# Benchmarks of the library's own packages, then the comparison with other
# Go Redis caches (benchmarks/, its own module): a benchstat table and a chart
# in benchmarks/results and benchmarks/README.md.
bench:
	./scripts/ensure-redis
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	$(MAKE) -C benchmarks bench

# Compiles every comparison benchmark and runs each once.
bench-ci:
	./scripts/ensure-redis
	$(MAKE) -C benchmarks ci

# The long runs of the lease and invalidation tests (10 s of a hot key
# invalidated every 10 ms, among others), then the long forms of the fault
# suite, whose table of results lands in faults/REPORT.md.
soak:
	./scripts/ensure-redis
	ASIDE_SOAK=1 $(GO) test -race -count=1 -run 'HotKey|Herd|Stale' -v ./cache/
	cd faults && ASIDE_SOAK=1 FAULTS_REPORT=REPORT.md $(GO) test -race -count=1 -v ./...

# Short fuzzing of every fuzz target of every module (FUZZTIME each).
FUZZTIME ?= 30s
fuzz:
	@for m in $(MODULES); do \
		(cd $$m && for pkg in $$($(GO) list ./...); do \
			for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
				echo "== $$pkg $$f"; \
				$(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
			done; \
		done) || exit 1; \
	done
