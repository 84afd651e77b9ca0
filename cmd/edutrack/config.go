package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// config is what serve needs. Every setting comes from an EDUTRACK_ variable, and a flag of the
// same name overrides it.
type config struct {
	httpAddr        string
	dataDir         string
	shutdownTimeout time.Duration
	consistencyWait time.Duration
	cacheEntries    int
	logLevel        slog.Level
}

// loadConfig reads the environment and the flags, and reports every invalid setting at once.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("http-addr", env("EDUTRACK_HTTP_ADDR", ":8080"), "HTTP listen address (EDUTRACK_HTTP_ADDR)")
	dataDir := fs.String("data-dir", env("EDUTRACK_DATA_DIR", "./data"), "directory of the embedded stores (EDUTRACK_DATA_DIR)")
	shutdown := fs.String("shutdown-timeout", env("EDUTRACK_SHUTDOWN_TIMEOUT", "20s"), "time to finish in-flight requests on stop (EDUTRACK_SHUTDOWN_TIMEOUT)")
	wait := fs.String("consistency-wait", env("EDUTRACK_CONSISTENCY_WAIT", "3s"), "longest wait of a read for its minPosition (EDUTRACK_CONSISTENCY_WAIT)")
	entries := fs.Int("cache-entries", 0, "documents the in-process cache holds (EDUTRACK_CACHE_ENTRIES, default 100000)")
	level := fs.String("log-level", env("EDUTRACK_LOG_LEVEL", "info"), "debug, info, warn or error (EDUTRACK_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	var problems []error
	cfg := config{httpAddr: *addr, dataDir: *dataDir}
	if _, _, err := net.SplitHostPort(cfg.httpAddr); err != nil {
		problems = append(problems, fmt.Errorf("EDUTRACK_HTTP_ADDR %q: %w", cfg.httpAddr, err))
	}
	if strings.TrimSpace(cfg.dataDir) == "" {
		problems = append(problems, errors.New("EDUTRACK_DATA_DIR is empty"))
	}
	var err error
	if cfg.shutdownTimeout, err = time.ParseDuration(*shutdown); err != nil || cfg.shutdownTimeout <= 0 {
		problems = append(problems, fmt.Errorf("EDUTRACK_SHUTDOWN_TIMEOUT %q: want a positive duration such as 20s", *shutdown))
	}
	if cfg.consistencyWait, err = time.ParseDuration(*wait); err != nil || cfg.consistencyWait <= 0 {
		problems = append(problems, fmt.Errorf("EDUTRACK_CONSISTENCY_WAIT %q: want a positive duration such as 3s", *wait))
	}
	raw := strconv.Itoa(*entries)
	if *entries == 0 {
		raw = env("EDUTRACK_CACHE_ENTRIES", "100000")
	}
	if cfg.cacheEntries, err = strconv.Atoi(raw); err != nil || cfg.cacheEntries <= 0 {
		problems = append(problems, fmt.Errorf("EDUTRACK_CACHE_ENTRIES %q: want a positive integer", raw))
	}
	if err := cfg.logLevel.UnmarshalText([]byte(*level)); err != nil {
		problems = append(problems, fmt.Errorf("EDUTRACK_LOG_LEVEL %q: want debug, info, warn or error", *level))
	}
	if len(problems) > 0 {
		return config{}, fmt.Errorf("invalid configuration:\n  %w", errors.Join(problems...))
	}
	return cfg, nil
}
