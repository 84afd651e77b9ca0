package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
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
	esdbURL         string // the KurrentDB/EventStoreDB event log, else the embedded one
	mongoURI        string // the MongoDB read store, else the embedded one
	redisURL        string // the Redis cache, else the in-process one
	roles           roles
	leaseTTL        time.Duration // how long the projector lease outlives its holder's last renewal
	xapiHomePage    string
	logLevel        slog.Level
}

// loadConfig reads the environment and the flags, and reports every invalid setting at once.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var problems []error
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		// A secret can come from a file instead, as container platforms mount them.
		if path := getenv(name + "_FILE"); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				problems = append(problems, fmt.Errorf("%s_FILE: %w", name, err))
				return def
			}
			return strings.TrimSpace(string(b))
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
	esdbURL := fs.String("esdb-url", env("EDUTRACK_ESDB_URL", ""), "KurrentDB/EventStoreDB connection string of the event log; empty keeps the embedded log (EDUTRACK_ESDB_URL, or _FILE)")
	mongoURI := fs.String("mongo-uri", env("EDUTRACK_MONGO_URI", ""), "MongoDB URI of the read store; empty keeps the embedded store (EDUTRACK_MONGO_URI, or _FILE)")
	redisURL := fs.String("redis-url", env("EDUTRACK_REDIS_URL", ""), "Redis URL of the document cache; empty keeps the in-process cache (EDUTRACK_REDIS_URL, or _FILE)")
	xapiHome := fs.String("xapi-homepage", env("EDUTRACK_XAPI_HOMEPAGE", "https://edutrack.invalid"), "homePage of learner accounts and base of activity ids in xAPI exports (EDUTRACK_XAPI_HOMEPAGE)")
	roleList := fs.String("roles", env("EDUTRACK_ROLES", "write,project,read"), "roles this process runs: write, project, read (EDUTRACK_ROLES)")
	leaseTTL := fs.String("lease-ttl", env("EDUTRACK_LEASE_TTL", "10s"), "how long the projector lease outlives a dead holder; a waiting projector takes over within 4/3 of it (EDUTRACK_LEASE_TTL)")
	level := fs.String("log-level", env("EDUTRACK_LOG_LEVEL", "info"), "debug, info, warn or error (EDUTRACK_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	cfg := config{httpAddr: *addr, dataDir: *dataDir, esdbURL: *esdbURL, mongoURI: *mongoURI, redisURL: *redisURL}
	cfg.xapiHomePage = strings.TrimRight(*xapiHome, "/")
	if u, err := url.Parse(cfg.xapiHomePage); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		problems = append(problems, fmt.Errorf("EDUTRACK_XAPI_HOMEPAGE %q: want an http(s) URL", *xapiHome))
	}
	var roleErr error
	if cfg.roles, roleErr = parseRoles(*roleList); roleErr != nil {
		problems = append(problems, roleErr)
	}
	if cfg.esdbURL != "" && !hasAnyPrefix(cfg.esdbURL, "kurrentdb://", "kurrentdb+discover://", "kurrent://", "kurrent+discover://",
		"kdb://", "kdb+discover://", "esdb://", "esdb+discover://") {
		problems = append(problems, errors.New("EDUTRACK_ESDB_URL: want a kurrentdb:// or esdb:// connection string"))
	}
	if cfg.mongoURI != "" && !strings.HasPrefix(cfg.mongoURI, "mongodb://") && !strings.HasPrefix(cfg.mongoURI, "mongodb+srv://") {
		problems = append(problems, errors.New("EDUTRACK_MONGO_URI: want a mongodb:// or mongodb+srv:// URI"))
	}
	if cfg.redisURL != "" && !strings.HasPrefix(cfg.redisURL, "redis://") && !strings.HasPrefix(cfg.redisURL, "rediss://") {
		problems = append(problems, errors.New("EDUTRACK_REDIS_URL: want a redis:// or rediss:// URL"))
	}
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
	if cfg.leaseTTL, err = time.ParseDuration(*leaseTTL); err != nil || cfg.leaseTTL < 300*time.Millisecond {
		problems = append(problems, fmt.Errorf("EDUTRACK_LEASE_TTL %q: want a duration of at least 300ms, such as 10s", *leaseTTL))
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

// roles are the parts of EduTrack one process runs.
type roles struct{ write, project, read bool }

func parseRoles(list string) (roles, error) {
	var r roles
	for _, name := range strings.Split(list, ",") {
		switch strings.TrimSpace(name) {
		case "write":
			r.write = true
		case "project":
			r.project = true
		case "read":
			r.read = true
		default:
			return r, fmt.Errorf("EDUTRACK_ROLES %q: each role is write, project or read", list)
		}
	}
	return r, nil
}

func (r roles) String() string {
	var names []string
	for _, x := range []struct {
		on   bool
		name string
	}{{r.write, "write"}, {r.project, "project"}, {r.read, "read"}} {
		if x.on {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ",")
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
