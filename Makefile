# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/polis
PKGS  := ./...

.PHONY: run test test-short deps build vet fmt lint fuzz bench golden loadtest clean

run: deps build ## install what is missing, then run ClickHouse, the platform and a simulated fleet
	$(BIN) dev

test: deps ## every test, against real ClickHouse, kfake and MQTT clients, with the race detector
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) test -race -timeout 20m $(PKGS)

test-short: ## unit tests only, no servers
	$(GO) test -short $(PKGS)

deps: ## install Debian packages the project needs, if missing
	@scripts/install-deps

build:
	$(GO) build -o $(BIN) ./cmd/polis

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

lint: vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))"

fuzz: ## each fuzz target for FUZZTIME (default 15s)
	@scripts/fuzz $${FUZZTIME:-15s}

bench: ## Go benchmarks (figures go to docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

golden: ## rewrite golden files (DDL) from the code
	$(GO) test ./storage/schema -run Golden -update

loadtest: deps build ## end-to-end load test (see docs/benchmarks.md)
	$(GO) run ./loadtest/cmd/e2e $(ARGS)

clean:
	rm -rf bin
