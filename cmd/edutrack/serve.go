package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/edutrack/edutrack/internal/auth/cors"
	"github.com/edutrack/edutrack/internal/auth/ticket"
	"github.com/edutrack/edutrack/internal/observe"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections"
)

// newServeCmd is `edutrack serve`. It hands the configuration, once valid, to start.
func newServeCmd(getenv func(string) string, start func(ctx context.Context, cfg config, stderr io.Writer) error) *cobra.Command {
	s := readSettings(getenv)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run EduTrack (HTTP API on EDUTRACK_HTTP_ADDR, data under EDUTRACK_DATA_DIR)",
		Long: `Serve runs EduTrack until SIGINT or SIGTERM. Every setting is an EDUTRACK_ variable, and the
flag of the same name overrides it; invalid settings stop it before it starts, every one named.`,
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := s.config()
			if err != nil {
				s.logger(cmd.ErrOrStderr()).Error("edutrack cannot start", "err", err)
				return logged{err}
			}
			return start(cmd.Context(), cfg, cmd.ErrOrStderr())
		},
	}
	s.addFlags(cmd.Flags())
	return cmd
}

// serve runs the service until ctx ends, then shuts down gracefully: the HTTP server stops
// taking requests and finishes those in flight (their appends included), the projections
// finish the batch in hand, and then the stores close.
func serve(ctx context.Context, cfg config, stderr io.Writer, ready func(string)) (err error) {
	log := newLogger(stderr, cfg.logFormat, cfg.logLevel)
	defer func() {
		if err != nil {
			log.Error("edutrack stopped on an error", "err", err)
			err = logged{err}
		}
	}()
	// The libraries' own logs are details of EduTrack's: debug lines in its log.
	redis.SetLogger(redisLog{log})
	if err := privateDir(cfg.dataDir, log); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	eng, err := openEngines(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	// Deferred first, so run last: once the HTTP server and the projections have stopped.
	defer eng.close()
	p, closeAccess, err := newProcess(ctx, cfg, log, reg, eng)
	if err != nil {
		return err
	}
	defer closeAccess()

	if cfg.roles.write || cfg.roles.read {
		if err := p.openModuleFiles(ctx); err != nil {
			return err
		}
	}
	handler, err := p.commandHandler()
	if err != nil {
		return err
	}
	if cfg.roles.write {
		if err := p.write(handler); err != nil {
			return err
		}
		if err := p.imageUploads(ctx, handler); err != nil {
			return err
		}
	}
	var live *projections.Live
	if cfg.roles.project {
		if live, err = p.project(); err != nil {
			return err
		}
	}
	if cfg.roles.read {
		if err := p.read(ctx, live, handler); err != nil {
			return err
		}
	}
	if cfg.roles.react || cfg.roles.work {
		if p.events == nil {
			return errNoLog
		}
		closeJobs, err := p.jobs(ctx)
		if err != nil {
			return err
		}
		// Deferred, so run once the workers have stopped.
		defer closeJobs()
	}
	return p.run(ctx, ready)
}

// logged is an error the log has told already; main exits 1 without printing it again.
type logged struct{ error }

func (l logged) Unwrap() error { return l.error }

// privateDir creates the data directory, or narrows an existing one, to its owner alone: it
// holds names, emails and education records.
func privateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make the data dir private: %w", err)
		}
		log.Info("made the data dir readable by its owner alone", "dir", dir, "was", st.Mode().Perm().String())
	}
	return nil
}

// headAsGet routes every HEAD request as a GET: no route serves HEAD itself, and the server
// sends a HEAD's headers without the body. (chi's GetHead asks the router first, which a
// mounted router answers for every method.)
func headAsGet(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			if rctx := chi.RouteContext(r.Context()); rctx != nil {
				rctx.RouteMethod = http.MethodGet
			}
		}
		next.ServeHTTP(w, r)
	})
}

// noSniff tells browsers to take every answer as its Content-Type says.
func noSniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// allowedMethods lists the methods the router serves on path, for a 405's Allow header.
func allowedMethods(r chi.Routes, path string) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := m
		if m == http.MethodHead {
			probe = http.MethodGet // headAsGet serves HEAD wherever GET is served
		}
		if r.Match(chi.NewRouteContext(), probe, path) {
			out = append(out, m)
		}
	}
	return out
}

// redisLog hands the Redis client's log lines to EduTrack's log, at debug level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "library", "go-redis")
}

// newProcess is a process before its roles join it: a router that serves health and metrics to
// anyone and puts /v1 behind the authenticator and the request budgets. closeAccess releases
// the budgets' limiter.
func newProcess(ctx context.Context, cfg config, log *slog.Logger, reg *prometheus.Registry, eng *engines) (_ *process, closeAccess func() error, err error) {
	instrument, err := observe.Instrument(reg)
	if err != nil {
		return nil, nil, err
	}
	authn, err := newAuthenticator(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	limiter, closeLimiter, err := newLimiter(cfg, reg, log)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			closeLimiter()
		}
	}()
	v1mw, err := v1Middleware(cfg, authn, limiter, log)
	if err != nil {
		return nil, nil, err
	}
	publicMW, err := publicMiddleware(cfg, limiter, log)
	if err != nil {
		return nil, nil, err
	}
	signedMW, err := signedMiddleware(cfg, limiter, log)
	if err != nil {
		return nil, nil, err
	}
	closeTickets := func() error { return nil }
	var tickets *ticket.Tickets
	var streamMW []func(http.Handler) http.Handler
	if cfg.roles.read {
		if tickets, closeTickets, err = newTickets(cfg); err != nil {
			return nil, nil, err
		}
		defer func() {
			if err != nil {
				closeTickets()
			}
		}()
		if streamMW, err = streamMiddleware(cfg, authn, tickets, limiter, log); err != nil {
			return nil, nil, err
		}
	}
	corsMW, err := cors.New(cfg.access.corsOrigins)
	if err != nil {
		return nil, nil, err
	}
	r := chi.NewRouter()
	badRequestID := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		problem.Write(w, req, log, problem.New(http.StatusBadRequest, "X-Request-Id",
			fmt.Sprintf("must be 1 to %d printable ASCII characters", observe.MaxRequestIDLen)))
	})
	// Every answer says not to sniff its type and carries its request id; HEAD is served by
	// every GET route. CORS goes before routing: a preflight carries no token and uses a method
	// no route has.
	r.Use(middleware.Recoverer, noSniff, observe.Requests(log, badRequestID), instrument, headAsGet, corsMW)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	p := &process{cfg: cfg, log: log, reg: reg, events: eng.events, integrity: eng.integrity, reads: eng.reads, docs: eng.docs, router: r, v1: r.With(v1mw...), public: r.With(publicMW...), signed: r.With(signedMW...), authn: authn,
		readiness: observe.Readiness{Checks: eng.checks, NonCritical: eng.nonCritical}, positions: projections.NewPositions(),
		projectors: []projections.Projector{projections.Courses{}, projections.Learners{}, projections.Snapshots{}},
		tickets:    tickets, streams: r.With(streamMW...)}
	return p, func() error { return errors.Join(closeTickets(), closeLimiter()) }, nil
}

// run serves HTTP and runs the roles' workers until ctx ends. Then the HTTP server stops taking
// requests and finishes those in flight, and after it the roles' closers run: the projections
// finish the batch in hand.
func (p *process) run(ctx context.Context, ready func(string)) error {
	r := p.router
	r.Method(http.MethodGet, "/readyz", p.readiness)
	// The roles have added to the readiness: /metrics reports it too, for alerts.
	if err := p.reg.Register(observe.ReadinessMetrics(func() observe.Readiness { return p.readiness })); err != nil {
		return err
	}
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		problem.Write(w, req, p.log, problem.New(http.StatusNotFound, "", "no such route"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		allowed := allowedMethods(r, req.URL.Path)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		problem.Write(w, req, p.log, problem.New(http.StatusMethodNotAllowed, "",
			"the route does not take "+req.Method+"; it takes "+strings.Join(allowed, ", ")))
	})

	ln, err := net.Listen("tcp", p.cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", p.cfg.httpAddr, err)
	}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
	}
	p.log.Info("edutrack serving", "addr", ln.Addr().String(), "data", p.cfg.dataDir, "roles", p.cfg.roles.String())
	if ready != nil {
		ready(ln.Addr().String())
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, w := range p.workers {
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
		p.log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), p.cfg.shutdownTimeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		for _, c := range p.closers {
			err = errors.Join(err, c())
		}
		return err
	})
	return g.Wait()
}
