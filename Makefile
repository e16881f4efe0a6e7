# Stream Montages. `make demo` runs a montage on a one-process farm; `make test`
# runs every test. Both install what they need when it is missing.
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
BINARIES := bin/montage-coordinator bin/montage-agent bin/montagectl bin/montage-samples

.PHONY: build demo test test-loaded test-race ci proto proto-check lint tools ffmpeg bench soak fuzz clean dashboards release

build:
	$(GO) build -o bin/montage-coordinator ./coordinator
	$(GO) build -o bin/montage-agent ./agent
	$(GO) build -o bin/montagectl ./ctl
	$(GO) build -o bin/montage-samples ./internal/testmedia/cmd/montage-samples

ffmpeg:
	@scripts/ensure-ffmpeg.sh

tools:
	@scripts/ensure-tools.sh

demo: ffmpeg build
	scripts/demo.sh

# Every test; the coordinator's packages also run under the race detector.
test: ffmpeg tools
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...
	$(GO) test -count=1 -race -timeout 10m ./coordinator/...

# Every test three times under two busy loops (long; not part of ci).
test-loaded: ffmpeg tools
	scripts/test-loaded.sh

# CI runs the chaos soak for two minutes after the tests.
ci: ffmpeg tools lint test
	SOAK_MINUTES=2 scripts/soak.sh

# The chaos soak (SOAK_MINUTES, default 10); its last line is the summary.
soak: ffmpeg tools
	scripts/soak.sh

proto: tools
	buf lint
	buf generate

# Grafana dashboards are Go code (grafana/dashboards); this renders the
# committed JSON. A test fails when it is stale.
dashboards:
	$(GO) run ./grafana/dashboards/gen -out grafana/dashboards

# Binaries for linux, macOS and Windows (amd64, arm64), .deb and .rpm of
# the agent and the coordinator, and SHA256SUMS, in dist/ (VERSION=0.1.0).
release:
	scripts/release.sh

lint: tools
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	staticcheck ./...
	buf lint

bench: ffmpeg build
	bench/overhead.sh
	bench/cluster.sh
	bench/scale.sh
	bench/seedloop.sh
	$(GO) test ./e2e -run '^$$' -bench 'SourceBytes|CachedRerun|TwoPinned|TranscribeEightHighlights|AgentRestartToLease|CutModes1080p60' -benchtime 1x -timeout 30m
	$(GO) test ./e2e -run '^$$' -bench 'ConsoleFarm10k' -benchtime 10x -timeout 10m
	$(GO) test ./coordinator/api -run '^$$' -bench 'ListHighlights100k' -benchtime 20x

fuzz:
	$(GO) test ./internal/spec -run '^$$' -fuzz FuzzParseTimestamp -fuzztime 30s
	$(GO) test ./internal/spec -run '^$$' -fuzz FuzzValidate -fuzztime 30s
	$(GO) test ./ctl/specfile -run '^$$' -fuzz FuzzParse -fuzztime 30s
	$(GO) test ./ctl/cli -run '^$$' -fuzz FuzzPrinters -fuzztime 30s

clean:
	rm -rf bin out dist
