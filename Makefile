# warden — see README.md.
GO ?= go

.PHONY: test deps vet build run bench fuzz fmt

## test: install what the tests need when missing, then vet and run every test with the race detector,
## then, alone on the machine, the attack tests whose bounds are latencies (-tags attack)
test: deps vet
	$(GO) test -race ./...
	cd third_party/mochi-mqtt-server && $(GO) test -race -count=1 .
	$(GO) test -tags attack -count=1 -run '^TestLoginFlood' ./cmd/warden

## deps: install redis-server, mosquitto-clients, openssl, curl, jq, oathtool, slapd, ldap-utils, chromium and
## docker-compose when missing (apt-get),
## and nats-server >= 2.10 (go install at go.mod's version)
deps:
	@bash scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

## build: a static warden binary in bin/, stamped with VERSION (git describe) for `warden --version`
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/warden ./cmd/warden

## run: start warden with the embedded store in ./data
run:
	$(GO) run ./cmd/warden

## bench: the micro-benchmarks recorded in docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./acl/ ./credential/

## fuzz: run each fuzz target for a short while (FUZZTIME=30s by default)
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

fmt:
	gofmt -l -w .
