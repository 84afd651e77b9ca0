// Command edutrack is EduTrack's one binary: `edutrack serve` runs the service; other
// subcommands operate it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/commands/writeapi"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/kurrent"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/auth/cors"
	"github.com/edutrack/edutrack/internal/observe"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/cache/rediscache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/opsapi"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/mongostore"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
	"github.com/edutrack/edutrack/readapi"
	"github.com/edutrack/edutrack/readapi/history"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "edutrack:", err)
		os.Exit(1)
	}
}

const usage = `usage: edutrack <command> [flags]

commands:
  serve          run EduTrack (HTTP API on EDUTRACK_HTTP_ADDR, data under EDUTRACK_DATA_DIR)
  projections    operate the read models of a running server: list, rebuild, dead-letters, skip, retry
  audit verify   recompute the event log's hash chains and name the first altered or removed event
  healthcheck    exit 0 when the server on this machine is ready (for container health checks)
  token          mint a bearer token signed with the configured key: token --sub ID --role ROLE [--ttl 1h]

Run 'edutrack <command> -h' for the flags of a command.`

// run is the whole program. ready, if not nil, learns the HTTP address once it listens.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(addr string)) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := loadConfig(args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stderr, ready)
	case "audit":
		if len(args) < 2 || args[1] != "verify" {
			fmt.Fprintln(stderr, usage)
			return errors.New("audit: the only audit command is verify")
		}
		return auditVerify(ctx, args[2:], getenv, stdout, stderr)
	case "projections":
		return projectionsCmd(ctx, args[1:], getenv, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, args[1:], getenv, stdout, stderr)
	case "token":
		return tokenCmd(args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// serve runs the service until ctx ends, then shuts down gracefully: the HTTP server stops
// taking requests and finishes those in flight (their appends included), the projections
// finish the batch in hand, and then the stores close.
func serve(ctx context.Context, cfg config, stderr io.Writer, ready func(string)) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	checks := map[string]func(context.Context) error{}
	// The embedded log admits one process at a time, so a read-only process does not open it
	// (reads come from the read models, and learner histories are then served by the process
	// that holds the log). KurrentDB serves any number of processes.
	var events eventstore.Store
	switch {
	case cfg.esdbURL != "":
		ks, err := kurrent.Open(ctx, cfg.esdbURL, kurrent.Options{Logger: log})
		if err != nil {
			return fmt.Errorf("open the KurrentDB event log: %w", err)
		}
		events = ks
	case cfg.roles.write:
		sl, err := sqlitelog.Open(filepath.Join(cfg.dataDir, "events.db"), sqlitelog.Options{})
		if err != nil {
			return err
		}
		events = sl
	default:
		// Beside a write process on this machine: follow the file it writes. A read process
		// can do without it (it then serves no learner histories); a projector cannot.
		fl, err := sqlitelog.OpenFollower(filepath.Join(cfg.dataDir, "events.db"), 0)
		switch {
		case err == nil:
			events = fl
		case cfg.roles.project:
			return err
		default:
			log.Warn("no event log to follow: learner histories are not served here", "err", err)
		}
	}
	if events != nil {
		defer events.Close()
		checks["event_log"] = func(ctx context.Context) error { _, err := events.Head(ctx); return err }
	}
	var reads readstore.Store
	if cfg.mongoURI != "" {
		ms, err := mongostore.Open(ctx, cfg.mongoURI, mongostore.Options{})
		if err != nil {
			return fmt.Errorf("open the MongoDB read store: %w", err)
		}
		reads, checks["read_store"] = ms, ms.Ping
	} else {
		ss, err := sqlitestore.Open(filepath.Join(cfg.dataDir, "read.db"))
		if err != nil {
			return err
		}
		reads = ss
		checks["read_store"] = func(ctx context.Context) error { _, err := ss.Checkpoint(ctx, documents.CoursesProjection); return err }
	}
	defer reads.Close()
	var docs cache.Cache
	switch {
	case cfg.redisURL != "":
		rc, err := rediscache.Open(cfg.redisURL, rediscache.Options{Prefix: "edutrack:"})
		if err != nil {
			return fmt.Errorf("open the Redis cache: %w", err)
		}
		defer rc.Close()
		// Redis being down degrades reads to the store; readiness still reports it.
		docs, checks["cache"] = rc, rc.Ping
	case cfg.roles.project:
		docs = cache.NewMemory(cfg.cacheEntries)
	default:
		// Nothing would tell an in-process cache of a read process without projections that a
		// document changed, so such a process reads the store every time.
		docs = cache.Nop{}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	instrument, err := observe.Instrument(reg)
	if err != nil {
		return err
	}
	authn, err := newAuthenticator(ctx, cfg, log)
	if err != nil {
		return err
	}
	limiter, closeLimiter, err := newLimiter(cfg, reg, log)
	if err != nil {
		return err
	}
	defer closeLimiter()
	v1mw, err := v1Middleware(cfg, authn, limiter, log)
	if err != nil {
		return err
	}
	corsMW, err := cors.New(cfg.access.corsOrigins)
	if err != nil {
		return err
	}
	r := chi.NewRouter()
	// CORS goes before routing: a preflight carries no token and uses a method no route has.
	r.Use(middleware.Recoverer, instrument, corsMW)
	// Health, readiness, metrics and the API description stay open; every /v1 route is
	// mounted on v1, behind the authenticator.
	v1 := r.With(v1mw...)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	readiness := observe.Readiness{Checks: checks}
	var workers []func(ctx context.Context) error
	var closers []func() error

	// The command side serves the write API, and records the read API's disclosures in any
	// process that can append to the log: the writer of the embedded log, or any on KurrentDB
	// (a follower of the embedded log only reads it).
	var handler *commands.Handler
	if canAppend := cfg.roles.write || cfg.esdbURL != ""; canAppend && (cfg.roles.write || cfg.roles.read) {
		if handler, err = commands.New(events, time.Now, commands.Options{}); err != nil {
			return err
		}
	}
	if cfg.roles.write {
		writeAPI, err := writeapi.New(handler, log)
		if err != nil {
			return err
		}
		writeAPI.Routes(v1)
	}
	positions := projections.NewPositions()
	projectors := []projections.Projector{projections.Courses{}, projections.Learners{}}
	var live *projections.Live
	if cfg.roles.project {
		codec, err := commands.NewCodec()
		if err != nil {
			return err
		}
		runner, err := projections.NewRunner(events, codec, reads, docs, positions, reg, log, projections.Options{}, projectors...)
		if err != nil {
			return err
		}
		live = runner.Live()
		// One process at a time projects: a second one waits for the lease, following the read
		// models meanwhile, and takes over when the first stops or dies.
		owner := leaseOwner()
		workers = append(workers, func(ctx context.Context) error {
			freeDeadHolder(ctx, reads, "projector", log)
			return projections.HoldLease(ctx, reads, "projector", owner, cfg.leaseTTL, log,
				func(ctx context.Context) error { return live.Follow(ctx, positions, 20*time.Millisecond) },
				runner.Run)
		})
		closers = append(closers, runner.Close)
		opsapi.Routes(v1.With(auth.Restrict(log, domain.Admin)), runner, log)
		readiness.Projections = func(ctx context.Context) map[string]observe.ProjectionState {
			head, _ := events.Head(ctx)
			out := map[string]observe.ProjectionState{}
			for name, status := range runner.Status() {
				pos := positions.Position(name)
				out[name] = observe.ProjectionState{Position: pos, Head: head, Lag: head - min(head, pos), Status: status}
			}
			return out
		}
	} else if cfg.roles.read {
		// Another process projects: follow its registrations and checkpoints, so this process
		// reads the live generation of each read model and minPosition waits work here too.
		live = projections.NewLive(reads, projectors...)
		if err := live.Refresh(ctx); err != nil {
			return err
		}
		workers = append(workers, func(ctx context.Context) error { return live.Follow(ctx, positions, 20*time.Millisecond) })
	}
	if cfg.roles.read {
		recorder := disclosures(cfg, handler, log)
		opts := readapi.Options{ConsistencyWait: cfg.consistencyWait, CacheKey: live.CacheKey, Disclosures: recorder}
		readAPI, err := readapi.New(live, docs, positions, reg, log, opts)
		if err != nil {
			return err
		}
		var historyAPI *history.API
		if events != nil {
			historyAPI, err = history.New(events, live, positions, log, history.Options{ConsistencyWait: cfg.consistencyWait,
				XAPIHomePage: cfg.xapiHomePage, Disclosures: recorder})
			if err != nil {
				return err
			}
		}
		r.Get("/openapi.json", readapi.ServeOpenAPI)
		v1.Group(func(r chi.Router) {
			r.Use(middleware.Compress(5, "application/json"))
			readAPI.Routes(r)
			if historyAPI != nil {
				historyAPI.Routes(r)
			}
		})
	}
	r.Method(http.MethodGet, "/readyz", readiness)
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		problem.Write(w, req, log, problem.New(http.StatusNotFound, "", "no such route"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		problem.Write(w, req, log, problem.New(http.StatusMethodNotAllowed, "", "the route does not take "+req.Method))
	})

	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.httpAddr, err)
	}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
	}
	log.Info("edutrack serving", "addr", ln.Addr().String(), "data", cfg.dataDir, "roles", cfg.roles.String())
	if ready != nil {
		ready(ln.Addr().String())
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, w := range workers {
		g.Go(func() error { return w(gctx) })
	}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		for _, c := range closers {
			err = errors.Join(err, c())
		}
		return err
	})
	return g.Wait()
}

// leaseOwner names this process in the projector lease.
func leaseOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), uuid.NewString()[:8])
}

// freeDeadHolder releases the projector lease when its holder was a process of this machine
// that no longer runs, as after a crash of the one process of the embedded default: the restart
// then projects at once instead of waiting out the lease. The fencing token still moves on, so
// nothing the dead holder left in flight can land. A holder elsewhere, or alive, is left alone.
func freeDeadHolder(ctx context.Context, store readstore.Store, name string, log *slog.Logger) {
	l, err := store.AcquireLease(ctx, name, "probe/"+uuid.NewString(), time.Nanosecond)
	if err == nil {
		// Nobody held it; the probe's lease has expired already, so this changes nothing.
		return
	}
	host, _ := os.Hostname()
	parts := strings.Split(l.Owner, "/")
	if !errors.Is(err, readstore.ErrLeaseHeld) || len(parts) != 3 || parts[0] != host {
		return
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return
	}
	if err := store.ReleaseLease(ctx, name, l.Owner); err == nil {
		log.Info("released the projector lease of a process of this machine that no longer runs", "holder", l.Owner)
	}
}

// auditVerify checks the embedded log's hash chains. It only reads, so it can run beside a live
// server.
func auditVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv("EDUTRACK_DATA_DIR")
	if def == "" {
		def = "./data"
	}
	dataDir := fs.String("data-dir", def, "directory of the embedded stores (EDUTRACK_DATA_DIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := filepath.Join(*dataDir, "events.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	rep, err := sqlitelog.Verify(ctx, path)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if rep.Problem != nil {
		fmt.Fprintf(stdout, "TAMPERED: %s\n", rep.Problem)
		return fmt.Errorf("audit verify: the event log was tampered with at position %d", rep.Problem.Position)
	}
	fmt.Fprintf(stdout, "ok: %d events in %d streams, every chain intact\n", rep.Events, rep.Streams)
	return nil
}
