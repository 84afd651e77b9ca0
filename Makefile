# EduTrack developer tasks. Every target runs on a machine with Go (and gcc, for -race).
GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: run test bench load lint build

build:
	$(GO) build -o bin/edutrack ./cmd/edutrack
	$(GO) build -o bin/edutrack-load ./cmd/edutrack-load

run:
	$(GO) run ./cmd/edutrack serve

# The whole suite, as CI runs it. .ci/deps first installs what the tests need (redis-server,
# promtool, chromium, postgresql, SeaweedFS's weed) where it is missing; the tests start their own
# servers on free ports.
test:
	@eval "$$(bash .ci/deps)"; export EDUTRACK_PROMTOOL EDUTRACK_CHROMIUM EDUTRACK_PG_BIN EDUTRACK_WEED; \
	$(GO) test -race -timeout 30m -count=1 ./...

# Go benchmarks of the event log (durable appends) and of rebuilds; see BENCHMARKS.md.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5s ./eventstore/sqlitelog/
	$(GO) test -run '^$$' -bench Rebuild -benchtime 3x ./projections/

# The write API under the load tool: a fresh server on a temp data dir, then 64 clients. The
# load tool sends no tokens yet and drives thousands of requests a second from one address, so
# the server runs without authentication and rate limits: the numbers leave their cost out.
load: build
	@dir=$$(mktemp -d); \
	EDUTRACK_DATA_DIR=$$dir EDUTRACK_HTTP_ADDR=127.0.0.1:18080 EDUTRACK_LOG_LEVEL=warn \
	EDUTRACK_AUTH=disabled EDUTRACK_RATE_LIMIT_IP=off EDUTRACK_RATE_LIMIT_USER=off ./bin/edutrack serve & pid=$$!; \
	sleep 1; ./bin/edutrack-load -addr http://127.0.0.1:18080 -phases healthz,write,reads,lag -duration 10s -warmup 2s; rc=$$?; \
	kill $$pid; wait $$pid; rm -rf $$dir; exit $$rc

# gofmt, go vet, staticcheck, the layering rules of internal/layering/rules.txt, and one
# responsibility per file: no non-test Go file over 500 lines.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@long=$$(git ls-files '*.go' | grep -v '_test.go$$' | xargs wc -l | awk '$$2 != "total" && $$1 > 500'); \
	if [ -n "$$long" ]; then echo "non-test Go files over 500 lines (split them along their seams):"; echo "$$long"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run ./internal/layering
