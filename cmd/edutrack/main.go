// Command edutrack is EduTrack's one binary: `edutrack serve` runs the service; other
// subcommands operate it.
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
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"golang.org/x/sync/errgroup"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
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
  serve   run EduTrack (HTTP API on EDUTRACK_HTTP_ADDR, data under EDUTRACK_DATA_DIR)

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
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// serve runs the service until ctx ends, then shuts down gracefully: the HTTP server stops
// taking requests and finishes those in flight (their appends included) before the log closes.
func serve(ctx context.Context, cfg config, stderr io.Writer, ready func(string)) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	store, err := sqlitelog.Open(filepath.Join(cfg.dataDir, "events.db"), sqlitelog.Options{})
	if err != nil {
		return err
	}
	defer store.Close()

	handler, err := commands.New(store, time.Now, commands.Options{})
	if err != nil {
		return err
	}
	writeAPI, err := commands.NewAPI(handler, log)
	if err != nil {
		return err
	}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	writeAPI.Routes(r)

	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.httpAddr, err)
	}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Info("edutrack serving", "addr", ln.Addr().String(), "data", cfg.dataDir, "roles", "write")
	if ready != nil {
		ready(ln.Addr().String())
	}

	g, gctx := errgroup.WithContext(ctx)
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
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}
