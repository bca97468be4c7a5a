# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/polis
PKGS  := ./...
# chDB (ClickHouse 26.x as a library) for the tests of the Modern schema;
# scripts/install-deps puts it there.
export CHDB_LIB_PATH ?= $(CURDIR)/.cache/chdb/libchdb.so

.PHONY: plugin plugin-test plugin-deps run test test-short deps build vet fmt lint fuzz bench golden loadtest loadtest-full loadtest-spine clean

run: deps build ## install what is missing, then run ClickHouse, the platform and a simulated fleet
	$(BIN) dev

test: deps lint plugin-test ## lint, the Grafana plugin's frontend tests, then every Go test, against real ClickHouse, kfake and MQTT clients, with the race detector
	POLIS_TEST_REQUIRE=1 $(GO) test -race -timeout 20m $(PKGS)

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

loadtest: deps build ## short full-fleet load test: a small fleet in gateway and direct mode, with the mosquitto reference (report in loadtest/out/fleet)
	$(GO) run ./loadtest/cmd/fleet -polis $(BIN) -sites 300 -coworking 20 -duration 15s -hold 5s -loads realistic,max $(ARGS)

loadtest-full: deps build ## the whole fleet (4,800 offices, 250 coworking spaces, 46,000+ devices) in both modes, realistic and as fast as possible
	$(GO) run ./loadtest/cmd/fleet -polis $(BIN) $(ARGS)

loadtest-spine: deps build ## the ingest spine in one process, with the bulk-insert baseline (report in loadtest/out/report.md)
	$(GO) run ./loadtest/cmd/e2e $(ARGS)

clean:
	rm -rf bin

# The Grafana datasource: its frontend (TypeScript, React, @grafana/ui;
# webpack builds dist/module.js) and its Go backend.
PLUGIN := plugins/grafana

plugin: plugin-deps ## the Grafana datasource in plugins/grafana/dist: module.js, plugin.json and the backend for linux/amd64 and arm64
	cd $(PLUGIN) && npm run --silent build
	GOOS=linux GOARCH=amd64 $(GO) build -o $(PLUGIN)/dist/gpx_polis_linux_amd64 ./$(PLUGIN)/cmd/polis-datasource
	GOOS=linux GOARCH=arm64 $(GO) build -o $(PLUGIN)/dist/gpx_polis_linux_arm64 ./$(PLUGIN)/cmd/polis-datasource
	cp $(PLUGIN)/plugin.json $(PLUGIN)/dist/

plugin-deps: ## npm ci for the plugin's frontend, if node_modules is missing
	@[ -d $(PLUGIN)/node_modules ] || { cd $(PLUGIN) && npm ci --no-audit --no-fund --loglevel=error; }

plugin-test: plugin-deps ## the plugin's frontend: type check and jest
	cd $(PLUGIN) && npx tsc --noEmit -p . && npx jest --ci
