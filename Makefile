# EduTrack developer tasks. Every target runs on a machine with Go (and gcc, for -race).
GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: run test bench load load-api load-hot load-write-auth load-scenario load-scenario-split load-live load-live-redis load-jobs load-jobs-pg lint build

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

# The school scenario (BENCHMARKS.md, "The school scenario"), small enough to finish in under two
# minutes: a fresh server on a temp data dir, authentication on with the key it generates there
# (the tool mints every user's token with it), rate limits and every other setting at their
# defaults; SCEN_USERS users, each with its own connection and live stream, thinking SCEN_THINK
# on average between requests.
# Servers listen on free ports, so that runs beside other servers on the machine do not collide.
FREE_PORT = python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
SCEN_USERS ?= 1000
SCEN_THINK ?= 1s
SCEN_ARGS ?= -instructors 20 -scenario-courses 100 -warmup 10s -duration 30s
load: build
	@dir=$$(mktemp -d); port=$$($(FREE_PORT)); \
	EDUTRACK_DATA_DIR=$$dir EDUTRACK_HTTP_ADDR=127.0.0.1:$$port EDUTRACK_LOG_LEVEL=warn ./bin/edutrack serve & pid=$$!; \
	sleep 2; ./bin/edutrack-load -addr http://127.0.0.1:$$port -token-key $$dir/jwt.key -server-pids $$pid \
		-phases scenario -users $(SCEN_USERS) -think $(SCEN_THINK) $(SCEN_ARGS); rc=$$?; \
	kill $$pid; wait $$pid; rm -rf $$dir; exit $$rc

# The school at full size, on the embedded default (one process, every role). Each user holds two
# descriptors in the tool and two in the server (its connection and its stream): ulimit -n is
# raised as far as the hard limit allows, and the tool says so if it is still short (a container
# without CAP_SYS_RESOURCE keeps its hard limit: at 20,000, 9,900 users fit). The live streams'
# per-address cap is raised past the users, as README says to for a school behind one NAT address;
# the rate limits stay at their defaults.
SCEN_FULL_USERS ?= 10000
SCEN_FULL_ARGS ?= -think 4s -instructors 100 -scenario-courses 200 -warmup 40s -duration 60s
SCEN_ENV = EDUTRACK_LOG_LEVEL=warn EDUTRACK_LIVE_MAX_PER_ADDRESS=100000
load-scenario: build
	@ulimit -n $$(ulimit -Hn); dir=$$(mktemp -d); port=$$($(FREE_PORT)); \
	$(SCEN_ENV) EDUTRACK_DATA_DIR=$$dir EDUTRACK_HTTP_ADDR=127.0.0.1:$$port ./bin/edutrack serve & pid=$$!; \
	sleep 2; ./bin/edutrack-load -addr http://127.0.0.1:$$port -token-key $$dir/jwt.key -server-pids $$pid \
		-phases scenario -users $(SCEN_FULL_USERS) $(SCEN_FULL_ARGS); rc=$$?; \
	kill $$pid; wait $$pid; rm -rf $$dir; exit $$rc

# The same school on the roles split: one process writes and projects, two read processes serve
# the reads and the streams (half the users each), all on one data dir and a redis-server of
# their own on a free port (cache, change feed, rate limit budgets, tickets). Users send commands
# to the writer and read from their read process: three descriptors each in the tool.
SCEN_SPLIT_USERS ?= 10000
load-scenario-split: build
	@ulimit -n $$(ulimit -Hn); dir=$$(mktemp -d); port=$$($(FREE_PORT)); w=$$($(FREE_PORT)); a=$$($(FREE_PORT)); b=$$($(FREE_PORT)); \
	redis-server --port $$port --bind 127.0.0.1 --save '' --appendonly no --dir $$dir >$$dir/redis.log & rpid=$$!; sleep 0.5; \
	export $(SCEN_ENV) EDUTRACK_DATA_DIR=$$dir EDUTRACK_REDIS_URL=redis://127.0.0.1:$$port; \
	EDUTRACK_ROLES=write,project EDUTRACK_HTTP_ADDR=127.0.0.1:$$w ./bin/edutrack serve & wpid=$$!; sleep 2; \
	EDUTRACK_ROLES=read EDUTRACK_HTTP_ADDR=127.0.0.1:$$a ./bin/edutrack serve & r1=$$!; \
	EDUTRACK_ROLES=read EDUTRACK_HTTP_ADDR=127.0.0.1:$$b ./bin/edutrack serve & r2=$$!; sleep 2; \
	./bin/edutrack-load -addr http://127.0.0.1:$$w -read-addrs http://127.0.0.1:$$a,http://127.0.0.1:$$b \
		-token-key $$dir/jwt.key -server-pids $$wpid,$$r1,$$r2,$$rpid \
		-phases scenario -users $(SCEN_SPLIT_USERS) $(SCEN_FULL_ARGS); rc=$$?; \
	kill $$r1 $$r2 $$wpid; wait $$r1 $$r2 $$wpid; kill $$rpid; wait $$rpid; rm -rf $$dir; exit $$rc

# The write API with tokens beside /healthz: authentication on, every command as its own
# learner with a token minted with the server's key. A write client completes a learner's modules
# back to back, as fast as the server answers: tens a second for one user, a script rather than a
# person, which the per-user budget (20/s) refuses; so it is off here (WRITE_ENV), and the
# per-address budget stays at its default, which authenticated requests do not spend.
WRITE_ARGS ?= -clients 64 -learners 32 -courses 20 -modules 50 -duration 10s -warmup 2s
WRITE_ENV ?= EDUTRACK_RATE_LIMIT_USER=off
load-write-auth: build
	@dir=$$(mktemp -d); port=$$($(FREE_PORT)); \
	$(WRITE_ENV) EDUTRACK_DATA_DIR=$$dir EDUTRACK_HTTP_ADDR=127.0.0.1:$$port EDUTRACK_LOG_LEVEL=warn ./bin/edutrack serve & pid=$$!; \
	sleep 2; ./bin/edutrack-load -addr http://127.0.0.1:$$port -token-key $$dir/jwt.key -phases healthz,write $(WRITE_ARGS); rc=$$?; \
	kill $$pid; wait $$pid; rm -rf $$dir; exit $$rc

# Hot reads with a token against nginx serving the same bytes (needs nginx and wrk).
load-hot: build
	bash cmd/edutrack-load/hot.sh

# The write and read API phases without authentication or rate limits (the figures before
# tokens): healthz, write, reads and lag from 64 clients.
load-api: build
	@dir=$$(mktemp -d); \
	EDUTRACK_DATA_DIR=$$dir EDUTRACK_HTTP_ADDR=127.0.0.1:18080 EDUTRACK_LOG_LEVEL=warn \
	EDUTRACK_AUTH=disabled EDUTRACK_RATE_LIMIT_IP=off EDUTRACK_RATE_LIMIT_USER=off ./bin/edutrack serve & pid=$$!; \
	sleep 1; ./bin/edutrack-load -addr http://127.0.0.1:18080 -phases healthz,write,reads,lag -duration 10s -warmup 2s; rc=$$?; \
	kill $$pid; wait $$pid; rm -rf $$dir; exit $$rc

# Live updates under the load tool (BENCHMARKS.md, "Live updates"): LIVE_CONNS streams of
# GET /v1/live while commands are paced at LIVE_RATE/s. The tool opens every stream from one
# address as one user (with authentication disabled, every caller is the same admin), so the
# per-user and per-address caps are raised past the streams opened; the buffer stays the default.
LIVE_CONNS ?= 10000
LIVE_RATE ?= 1000
LIVE_ARGS ?= -duration 10s -warmup 2s
# load-live can run the lag phase first (LIVE_PHASES=lag,live): visibility by polling, in the same run.
LIVE_PHASES ?= live
LIVE_ENV = EDUTRACK_LOG_LEVEL=warn EDUTRACK_AUTH=disabled EDUTRACK_RATE_LIMIT_IP=off EDUTRACK_RATE_LIMIT_USER=off \
	EDUTRACK_LIVE_MAX_PER_USER=1000000 EDUTRACK_LIVE_MAX_PER_ADDRESS=1000000

# One process with every role (the embedded default) serves the commands and every stream.
load-live: build
	@dir=$$(mktemp -d); \
	$(LIVE_ENV) EDUTRACK_DATA_DIR=$$dir EDUTRACK_HTTP_ADDR=127.0.0.1:18080 ./bin/edutrack serve & pid=$$!; \
	sleep 1; ./bin/edutrack-load -addr http://127.0.0.1:18080 -phases $(LIVE_PHASES) -live-conns $(LIVE_CONNS) -lag-rate $(LIVE_RATE) $(LIVE_ARGS); rc=$$?; \
	kill $$pid; wait $$pid; rm -rf $$dir; exit $$rc

# One process writes and projects, two read processes serve the streams (half each), all on one
# data dir and a redis-server of their own on a free port, which carries the change feed and
# the cache.
load-live-redis: build
	@dir=$$(mktemp -d); port=$$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	redis-server --port $$port --bind 127.0.0.1 --save '' --appendonly no --dir $$dir >$$dir/redis.log & rpid=$$!; sleep 0.5; \
	export $(LIVE_ENV) EDUTRACK_DATA_DIR=$$dir EDUTRACK_REDIS_URL=redis://127.0.0.1:$$port; \
	EDUTRACK_ROLES=write,project EDUTRACK_HTTP_ADDR=127.0.0.1:18080 ./bin/edutrack serve & wpid=$$!; sleep 1; \
	EDUTRACK_ROLES=read EDUTRACK_HTTP_ADDR=127.0.0.1:18081 ./bin/edutrack serve & r1=$$!; \
	EDUTRACK_ROLES=read EDUTRACK_HTTP_ADDR=127.0.0.1:18082 ./bin/edutrack serve & r2=$$!; sleep 1; \
	./bin/edutrack-load -addr http://127.0.0.1:18080 -live-addrs http://127.0.0.1:18081,http://127.0.0.1:18082 \
		-phases live -live-conns $(LIVE_CONNS) -lag-rate $(LIVE_RATE) $(LIVE_ARGS); rc=$$?; \
	kill $$r1 $$r2 $$wpid; wait $$r1 $$r2 $$wpid; kill $$rpid; wait $$rpid; rm -rf $$dir; exit $$rc

# Emails and certificates under the load tool (BENCHMARKS.md, "Jobs and certificates"): the
# server mails to the SMTP sink the tool runs on JOBS_SMTP (nothing listens there until the
# phase starts, and no email is queued before it), issues certificates (on by default) into its
# data dir, and runs every role. JOBS_ARGS sizes the phase.
JOBS_SMTP ?= 127.0.0.1:18025
JOBS_ARGS ?= -jobs-emails 2000 -jobs-certificates 1000 -jobs-idle 100
JOBS_ENV = EDUTRACK_LOG_LEVEL=warn EDUTRACK_AUTH=disabled EDUTRACK_RATE_LIMIT_IP=off EDUTRACK_RATE_LIMIT_USER=off \
	EDUTRACK_SMTP_URL=smtp://$(JOBS_SMTP) EDUTRACK_SMTP_FROM='EduTrack <noreply@load.edutrack.test>' \
	EDUTRACK_PUBLIC_URL=http://load.edutrack.test EDUTRACK_CERTIFICATES=on

# The embedded default: the job queue in jobs.db beside events.db.
load-jobs: build
	@dir=$$(mktemp -d); \
	$(JOBS_ENV) EDUTRACK_DATA_DIR=$$dir EDUTRACK_HTTP_ADDR=127.0.0.1:18080 ./bin/edutrack serve & pid=$$!; \
	sleep 1; ./bin/edutrack-load -addr http://127.0.0.1:18080 -phases jobs -smtp-listen $(JOBS_SMTP) $(JOBS_ARGS); rc=$$?; \
	kill $$pid; wait $$pid; rm -rf $$dir; exit $$rc

# The same with the job queue on PostgreSQL: a cluster of the run's own (initdb into the temp dir,
# its settings the defaults, durable commits included) on a free port, run as the postgres user
# when make runs as root, which initdb refuses. EDUTRACK_PG_BIN is where initdb and postgres are.
EDUTRACK_PG_BIN ?= /usr/lib/postgresql/15/bin
load-jobs-pg: build
	@dir=$$(mktemp -d); chmod 755 $$dir; mkdir $$dir/pg; as=; \
	if [ $$(id -u) = 0 ]; then chown postgres $$dir/pg; as="runuser -u postgres --"; fi; \
	port=$$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	$$as $(EDUTRACK_PG_BIN)/initdb -D $$dir/pg/data -U edutrack --auth=trust -E UTF8 --locale=C >$$dir/initdb.log || exit 1; \
	$$as $(EDUTRACK_PG_BIN)/postgres -D $$dir/pg/data -p $$port -c listen_addresses=127.0.0.1 \
		-c unix_socket_directories=$$dir/pg -c max_connections=200 >$$dir/postgres.log 2>&1 & gpid=$$!; sleep 2; \
	$(JOBS_ENV) EDUTRACK_POSTGRES_URL="postgres://edutrack@127.0.0.1:$$port/postgres?sslmode=disable" \
	EDUTRACK_DATA_DIR=$$dir EDUTRACK_HTTP_ADDR=127.0.0.1:18080 ./bin/edutrack serve & pid=$$!; \
	sleep 2; ./bin/edutrack-load -addr http://127.0.0.1:18080 -phases jobs -smtp-listen $(JOBS_SMTP) $(JOBS_ARGS); rc=$$?; \
	kill $$pid; wait $$pid; kill $$gpid; wait $$gpid; rm -rf $$dir; exit $$rc

# gofmt, go vet, staticcheck, the layering rules of internal/layering/rules.txt, and one
# responsibility per file: no non-test Go file over 500 lines. Generated files (the standard
# "// Code generated ... DO NOT EDIT." line, such as gqlgen's) are exempt: no one splits them.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@long=$$(git ls-files '*.go' | grep -v '_test.go$$' | xargs grep -L -E '^// Code generated .* DO NOT EDIT\.$$' | xargs wc -l | awk '$$2 != "total" && $$1 > 500'); \
	if [ -n "$$long" ]; then echo "non-test Go files over 500 lines (split them along their seams):"; echo "$$long"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run ./internal/layering
