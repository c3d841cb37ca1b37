# Cairn build and test entry points. See README.md.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/cairn-edge/cairn/cmd/internal/cli.Version=$(VERSION)
BINARIES  := cairn cairn-agent cairn-init
ARCHES    := amd64 arm64
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build deps test test-quick test-full lint bench demo clean

all: build

## build: static binaries for linux/amd64 and linux/arm64 into bin/
build:
	@for arch in $(ARCHES); do for b in $(BINARIES); do \
		echo "build bin/$$b-linux-$$arch"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/$$b-linux-$$arch ./cmd/$$b || exit 1; \
	done; done

## deps: Debian packages that tests and image builds need
deps:
	@scripts/install-deps.sh

## test: everything CI runs
test: deps lint build test-full

# The end-to-end scenarios, the longest package by far, start at once
# beside the others instead of waiting for their turn. Their limit is a
# guard against a hung device, above what they take (docs/e2e.md).
test-full:
	@$(GO) test -count=1 -timeout 70m ./tests/e2e/... & e2e=$$!; \
	$(GO) test -count=1 -timeout 55m $$($(GO) list ./... | grep -v '/tests/e2e'); rest=$$?; \
	wait $$e2e; e2e_rc=$$?; \
	test $$rest -eq 0 && test $$e2e_rc -eq 0

## test-quick: unit tests only, under a minute
test-quick:
	$(GO) test -short -count=1 ./...

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^tests/testdata/')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## bench: speed and memory benchmarks, printed with ratios against baselines run alongside
bench: deps
	$(GO) test -count=1 -run '^$$' -bench BenchmarkInstall -benchtime 1x -timeout 30m ./agent/update
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 3x ./images/verity

## demo: boot an emulated device through a first boot, an update and a rollback (as root)
demo: deps
	$(GO) run ./tests/e2e/demo

clean:
	rm -rf bin/
