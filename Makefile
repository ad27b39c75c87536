# sluice — build, demo, tests and benchmarks.
#
#   make run    the demo: examples/quickstart.yaml on embedded defaults
#   make test   everything CI runs (installs the npm test servers first)
#   make lint   gofmt, go vet, staticcheck and the go.mod tidy check
#   make chaos  the chaos run: sluice serve and three pipelines SIGKILLed
#               200 times, and 200 power losses of the stream store and a
#               pipeline (docs/reliability.md)
#   make fuzz   every fuzz target for FUZZTIME each (the seeds run in make test)
#   make bench  Go benchmarks (records/s, MB/s, allocations), then sluice
#               against Benthos on the same input (bench/, writes bench/results.md)

GO       ?= go
BIN      := bin/sluice
PIPELINE ?= examples/quickstart.yaml
# BENCH selects benchmarks; BENCHTIME=1x is the smoke mode CI uses.
# BENCHFLAGS go to the comparison (bench/): -records, -runs, -workloads, -peer.
BENCH      ?= .
BENCHTIME  ?= 1s
BENCHFLAGS ?=
# FUZZTIME is how long make fuzz runs each fuzz target.
FUZZTIME   ?= 30s

.PHONY: build run test test-short chaos fuzz bench bench-smoke lint deps clean

# The first build compiles every library sluice uses (the AWS SDK, Arrow,
# Parquet, …) and is silent for minutes; say so rather than look stuck.
build:
	@[ -x $(BIN) ] || echo "Building $(BIN): the first build compiles sluice and its libraries, which takes a few minutes (about 3 on 2 cores); later builds take seconds."
	$(GO) build -o $(BIN) ./cmd/sluice

run: build
	./$(BIN) run $(PIPELINE)

# deps installs the AWS-protocol test servers (kinesalite, s3rver, dynalite)
# pinned in testservers/package-lock.json, and says when PostgreSQL (Debian's
# postgresql package, which .ci/run installs) is missing.
deps:
	@if [ -f testservers/package-lock.json ]; then \
		npm ci --prefix testservers --no-audit --no-fund --loglevel=error; \
	fi
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || [ -n "$$SLUICE_PG_BIN" ] || command -v postgres >/dev/null 2>&1 || \
		echo "note: PostgreSQL is not installed, so its tests are skipped: sudo apt-get install -y postgresql (or set SLUICE_PG_BIN)"

# lint: gofmt, go vet, staticcheck and a tidy check (go.mod and go.sum say
# exactly what the code imports), for the module and the benchmark
# harness. staticcheck is pinned and comes from the Go module proxy
# through go run, built once and then cached.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
	cd bench && $(GO) vet . && $(GO) run $(STATICCHECK) . && \
		{ $(GO) mod tidy -diff || { echo "bench/go.mod or go.sum is not tidy: run go mod tidy in bench"; exit 1; }; }

# The second line repeats a test whose failure is a shutdown race: one run
# in ten of the source's supervisor could restart a reader after the stop.
test: deps lint
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -race -count=100 -run '^TestExpiredIteratorResumesAfterLastEmitted$$' ./engine/sources/kinesis/
	$(MAKE) bench-smoke

test-short: lint
	$(GO) test -short -count=1 ./...

# chaos is the long run of two crash tests that the test suite runs
# shorter (20 kills, 60 power losses): CHAOS_KILLS SIGKILLs of the processes of TestChaos, and as
# many power losses of TestPowerLossStoreAndPipeline. Each prints its
# seed; CHAOS_SEED=N runs the same kills again.
CHAOS_KILLS ?= 200

chaos: deps
	CHAOS_KILLS=$(CHAOS_KILLS) $(GO) test -race -count=1 -timeout 60m -v -run '^TestChaos$$' ./cmd/sluice/
	CHAOS_KILLS=$(CHAOS_KILLS) $(GO) test -race -count=1 -timeout 20m -v -run '^TestPowerLossStoreAndPipeline$$' ./internal/chaos/
# fuzz runs each fuzz target of the module on its own (go test fuzzes
# one target at a time) for FUZZTIME, goes on past a failure and names
# the failed targets at the end. A failing input is written to its
# package's testdata/fuzz/TARGET, where make test replays it from then
# on: fix the code and commit the input.
fuzz:
	@targets=$$($(GO) test -list '^Fuzz' ./... | awk '/^Fuzz/ {n[++k]=$$1; next} /^ok/ {for (i=1; i<=k; i++) print $$2 "," n[i]; k=0}'); \
	[ -n "$$targets" ] || { echo "make fuzz: no fuzz targets listed"; exit 1; }; \
	total=0; \
	for t in $$targets; do \
		pkg=$${t%,*}; name=$${t#*,}; \
		echo "== $$pkg $$name"; \
		out=$$($(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg 2>&1); rc=$$?; \
		if [ $$rc -ne 0 ]; then echo "$$out"; failed="$$failed $$pkg.$$name"; fi; \
		n=$$(echo "$$out" | sed -n 's/.*fuzz: elapsed: .*execs: \([0-9]*\) .*/\1/p' | tail -n 1); \
		echo "   $${n:-0} executions"; \
		total=$$((total + $${n:-0})); \
	done; \
	echo "make fuzz: $$total executions in all"; \
	if [ -n "$$failed" ]; then echo "make fuzz: failed:$$failed (each failing input is in its package's testdata/fuzz)"; exit 1; fi

bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) ./...
	cd bench && $(GO) run . $(BENCHFLAGS)

# bench-smoke runs every benchmark once, and the comparison on 2,000
# records with sluice alone (building Benthos takes minutes the first
# time), checking every output against the reference model, so that the
# harness cannot rot. It asserts no timing.
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./... > /dev/null
	cd bench && $(GO) vet . && $(GO) test -count=1 . && $(GO) run . -smoke > /dev/null

clean:
	rm -rf bin out data
