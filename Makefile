# The two commands a new user runs are `make quickstart` and `make test`.
GO ?= go

# The modules whose tests run in `make test`: the core (cache, codec, loader,
# ...), azure (the Azure SDK stays out of the core module), the fault suite
# and otel (OpenTelemetry stays out too), and the example service
# examples/webapp (SQLite and the Prometheus exporter stay out of the core).
# benchmarks/ is vetted and run by bench-ci.
MODULES = . azure faults otel examples/webapp

.PHONY: test test-servers quickstart webapp webapp-load bench bench-ci fuzz soak vet staticcheck fmt check

# The extra servers of the matrix (scripts/ensure-servers unpacks them from
# Debian's newer suites into .servers/, without touching the system). Empty
# (make test SERVERS=) runs the machine's redis-server alone.
SERVERS ?= redis-8 redis-86 valkey-9

# The README's test command: installs redis-server (and redis-py, for the
# interop test, and PostgreSQL's server binaries, for examples/webapp's
# PostgreSQL suite) when it is missing, and the extra servers of SERVERS,
# runs the codec's allocation bounds in a normal build (the race detector adds
# copies of its own), then every test of every module (root, azure, and the
# short forms of the fault suite) with the race detector against private
# redis-server processes, then the core suites on each extra server
# (test-servers).
test:
	./scripts/ensure-redis
	./scripts/ensure-python-redis
	./scripts/ensure-postgres
	@if [ -n "$(strip $(SERVERS))" ]; then ./scripts/ensure-servers $(SERVERS) >/dev/null; fi
	$(GO) test -count=1 -run 'Allocation' ./codec/
	@set -e; for m in $(MODULES); do \
		echo "== go test -race ($$m)"; \
		(cd $$m && $(if $(strip $(SERVERS)),,ASIDE_NO_EXTRA_SERVERS=1) $(GO) test -race -count=1 ./...); \
	done
	@$(MAKE) --no-print-directory test-servers

# The core suites on each server of SERVERS (REDIS_SERVER=<its wrapper>, which
# internal/redistest starts instead of redis-server): the root module's cache
# and invalidation packages, and the short forms of the fault suite. Every
# server runs even when one fails; the last line names those that failed.
test-servers:
	@set -e; [ -n "$(strip $(SERVERS))" ] || exit 0; \
	servers="$$(./scripts/ensure-servers $(SERVERS))"; \
	failed=""; \
	for s in $$servers; do \
		name="$${s%%=*}"; bin="$${s#*=}"; \
		echo "== $$name: $$("$$bin" --version)"; \
		echo "== go test -race (cache, invalidation) on $$name"; \
		REDIS_SERVER="$$bin" $(GO) test -race -count=1 ./cache/... ./invalidation/... || failed="$$failed $$name(core)"; \
		echo "== go test -race (faults) on $$name"; \
		(cd faults && REDIS_SERVER="$$bin" $(GO) test -race -count=1 ./...) || failed="$$failed $$name(faults)"; \
	done; \
	if [ -n "$$failed" ]; then echo "== test-servers failed on:$$failed"; exit 1; fi

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
# BENCH_SERVER=<path or name> runs them on another server: a path to a
# redis-server-compatible binary, or a name of scripts/ensure-servers
# (valkey-9, redis-8), which installs it. Empty: redis-server on PATH.
BENCH_SERVER ?=
ifneq ($(BENCH_SERVER),)
ifeq ($(findstring /,$(BENCH_SERVER)),)
BENCH_SERVER_PATH := $(shell ./scripts/ensure-servers $(BENCH_SERVER) | sed -n 's/^[^=]*=//p')
else
BENCH_SERVER_PATH := $(abspath $(BENCH_SERVER))
endif
endif
BENCH_ENV = $(if $(BENCH_SERVER),REDIS_SERVER="$(BENCH_SERVER_PATH)")
CHECK_BENCH_SERVER = @if [ -n "$(BENCH_SERVER)" ]; then \
	[ -n "$(BENCH_SERVER_PATH)" ] && "$(BENCH_SERVER_PATH)" --version || \
	{ echo "BENCH_SERVER=$(BENCH_SERVER) is no server (a path, or a name of scripts/ensure-servers)" >&2; exit 1; }; fi

bench:
	./scripts/ensure-redis
	$(CHECK_BENCH_SERVER)
	$(BENCH_ENV) $(GO) test -run='^$$' -bench=. -benchmem ./...
	$(MAKE) -C benchmarks bench $(if $(BENCH_SERVER),BENCH_SERVER="$(BENCH_SERVER_PATH)")

# Compiles every comparison benchmark and runs each once.
bench-ci:
	./scripts/ensure-redis
	$(CHECK_BENCH_SERVER)
	$(MAKE) -C benchmarks ci $(if $(BENCH_SERVER),BENCH_SERVER="$(BENCH_SERVER_PATH)")

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
