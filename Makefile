# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/polis
PKGS  := ./...
# chDB (ClickHouse 26.x as a library) for the tests of the Modern schema;
# scripts/install-deps puts it there.
export CHDB_LIB_PATH ?= $(CURDIR)/.cache/chdb/libchdb.so

.PHONY: plugin run test test-short deps build vet fmt lint fuzz bench golden loadtest clean

run: deps build ## install what is missing, then run ClickHouse, the platform and a simulated fleet
	$(BIN) dev

test: deps lint ## lint, then every test, against real ClickHouse, kfake and MQTT clients, with the race detector
	$(GO) test -race -timeout 20m $(PKGS)

test-short: ## unit tests only, no servers
	$(GO) test -short $(PKGS)

deps: ## install Debian packages the project needs, and chDB for the tests, if missing
	@scripts/install-deps

build:
	$(GO) build -o $(BIN) ./cmd/polis

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

lint: vet ## go vet, gofmt and staticcheck (the version in go.mod's tool line, checks in staticcheck.conf)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) tool staticcheck $(PKGS)

fuzz: ## each fuzz target for FUZZTIME (default 15s)
	@scripts/fuzz $${FUZZTIME:-15s}

bench: ## Go benchmarks (figures go to docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Every package whose tests have an -update flag; each runs all its tests
# with it, so every golden file it checks is rewritten.
GOLDEN_PKGS = $(sort $(patsubst %/,./%,$(dir $(shell git grep -l 'flag.Bool."update"' -- '*_test.go'))))

golden: ## rewrite every golden file (DDL, decoder fixtures, rule test reports, backtest SVG) from the code
	$(GO) test $(GOLDEN_PKGS) -update

loadtest: deps build ## end-to-end load test (see docs/benchmarks.md)
	$(GO) run ./loadtest/cmd/e2e $(ARGS)

clean:
	rm -rf bin

plugin: ## the Grafana datasource's backend and plugin.json in plugins/grafana/dist (no frontend yet)
	GOOS=linux GOARCH=amd64 $(GO) build -o plugins/grafana/dist/gpx_polis_linux_amd64 ./plugins/grafana/cmd/polis-datasource
	GOOS=linux GOARCH=arm64 $(GO) build -o plugins/grafana/dist/gpx_polis_linux_arm64 ./plugins/grafana/cmd/polis-datasource
	cp plugins/grafana/plugin.json plugins/grafana/dist/
