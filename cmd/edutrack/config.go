package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/auth/clientip"
	"github.com/edutrack/edutrack/internal/auth/cors"
	"github.com/edutrack/edutrack/internal/auth/ratelimit"
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
	access          access
}

// access is how serve authenticates callers and bounds what they may ask of it.
type access struct {
	// disabled turns authentication off (EDUTRACK_AUTH=disabled): every caller is an admin.
	disabled bool
	// jwtKey is the HMAC key of the tokens; nil with oidcIssuer, or to use the data dir's.
	jwtKey     []byte
	oidcIssuer string
	// issuer is the iss of HMAC tokens; OIDC tokens carry oidcIssuer.
	issuer    string
	audience  string
	roleClaim string
	// trustedProxies may say who the client is in X-Forwarded-For.
	trustedProxies []netip.Prefix
	corsOrigins    []string
	// perIP and perUser are the request budgets; a zero Limit is no limit.
	perIP, perUser ratelimit.Limit
	requestTimeout time.Duration
}

// loadConfig reads the environment and the flags, and reports every invalid setting at once.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	return loadConfigFlags(fs, args, getenv)
}

// loadConfigFlags is loadConfig for a command that adds flags of its own to fs.
func loadConfigFlags(fs *flag.FlagSet, args []string, getenv func(string) string) (config, error) {
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
	authMode := fs.String("auth", env("EDUTRACK_AUTH", "jwt"), "jwt, or disabled to let every request act as an admin (EDUTRACK_AUTH)")
	// The key itself has no flag: command lines are visible to every user of the machine.
	keyFile := fs.String("jwt-key-file", getenv("EDUTRACK_JWT_KEY_FILE"), "file holding the HMAC key of the bearer tokens (EDUTRACK_JWT_KEY_FILE, or the key itself in EDUTRACK_JWT_KEY); default: "+auth.KeyFileName+" in the data dir, generated on first start")
	oidcIssuer := fs.String("oidc-issuer", env("EDUTRACK_OIDC_ISSUER", ""), "https URL of an OpenID Connect provider whose tokens to accept instead of HMAC ones (EDUTRACK_OIDC_ISSUER)")
	jwtIssuer := fs.String("jwt-issuer", env("EDUTRACK_JWT_ISSUER", auth.DefaultIssuer), "iss of HMAC tokens (EDUTRACK_JWT_ISSUER)")
	audience := fs.String("jwt-audience", env("EDUTRACK_JWT_AUDIENCE", auth.DefaultAudience), "aud every token must carry (EDUTRACK_JWT_AUDIENCE)")
	roleClaim := fs.String("jwt-role-claim", env("EDUTRACK_JWT_ROLE_CLAIM", auth.DefaultRoleClaim), "claim holding the caller's role (EDUTRACK_JWT_ROLE_CLAIM)")
	proxies := fs.String("trusted-proxies", env("EDUTRACK_TRUSTED_PROXIES", ""), "CIDRs or addresses of proxies whose X-Forwarded-For names the client (EDUTRACK_TRUSTED_PROXIES)")
	origins := fs.String("cors-origins", env("EDUTRACK_CORS_ORIGINS", ""), "origins whose pages may call the API, such as https://school.example; empty: none (EDUTRACK_CORS_ORIGINS)")
	perIP := fs.String("rate-limit-ip", env("EDUTRACK_RATE_LIMIT_IP", defaultPerIP), "requests per client address, as N/period, or off (EDUTRACK_RATE_LIMIT_IP)")
	perUser := fs.String("rate-limit-user", env("EDUTRACK_RATE_LIMIT_USER", defaultPerUser), "requests per user, as N/period, or off (EDUTRACK_RATE_LIMIT_USER)")
	reqTimeout := fs.String("request-timeout", env("EDUTRACK_REQUEST_TIMEOUT", "10s"), "longest time the server spends on one /v1 request (EDUTRACK_REQUEST_TIMEOUT)")
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
	a := access{oidcIssuer: *oidcIssuer, issuer: *jwtIssuer, audience: *audience, roleClaim: *roleClaim}
	switch *authMode {
	case "jwt":
	case "disabled":
		a.disabled = true
	default:
		problems = append(problems, fmt.Errorf("EDUTRACK_AUTH %q: want jwt, or disabled", *authMode))
	}
	key := getenv("EDUTRACK_JWT_KEY")
	switch {
	case key != "" && *keyFile != "":
		problems = append(problems, errors.New("EDUTRACK_JWT_KEY and EDUTRACK_JWT_KEY_FILE: set one of them"))
	case key != "" && len(key) < auth.MinKeyLen:
		problems = append(problems, fmt.Errorf("EDUTRACK_JWT_KEY: %d bytes; want at least %d", len(key), auth.MinKeyLen))
	case key != "":
		a.jwtKey = []byte(key)
	case *keyFile != "":
		if a.jwtKey, err = auth.ReadKeyFile(*keyFile); err != nil {
			problems = append(problems, fmt.Errorf("EDUTRACK_JWT_KEY_FILE: %w", err))
		}
	}
	if a.oidcIssuer != "" && (key != "" || *keyFile != "") {
		problems = append(problems, errors.New("EDUTRACK_OIDC_ISSUER and EDUTRACK_JWT_KEY(_FILE): set one of them"))
	}
	if a.oidcIssuer != "" {
		if u, err := url.Parse(a.oidcIssuer); err != nil || u.Scheme != "https" || u.Host == "" {
			problems = append(problems, fmt.Errorf("EDUTRACK_OIDC_ISSUER %q: want an https URL", a.oidcIssuer))
		}
	}
	// Processes on KurrentDB have data dirs of their own: a key generated in each would make
	// each refuse the others' tokens.
	if !a.disabled && cfg.esdbURL != "" && a.oidcIssuer == "" && key == "" && *keyFile == "" {
		problems = append(problems, errors.New("EDUTRACK_JWT_KEY: the processes of a KurrentDB deployment must share one key: set EDUTRACK_JWT_KEY(_FILE) or EDUTRACK_OIDC_ISSUER"))
	}
	if a.trustedProxies, err = clientip.ParsePrefixes(*proxies); err != nil {
		problems = append(problems, fmt.Errorf("EDUTRACK_TRUSTED_PROXIES: %w", err))
	}
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			a.corsOrigins = append(a.corsOrigins, o)
		}
	}
	if _, err := cors.New(a.corsOrigins); err != nil {
		problems = append(problems, fmt.Errorf("EDUTRACK_CORS_ORIGINS: %w", err))
	}
	if a.perIP, err = parseLimit(*perIP); err != nil {
		problems = append(problems, fmt.Errorf("EDUTRACK_RATE_LIMIT_IP %q: %w", *perIP, err))
	}
	if a.perUser, err = parseLimit(*perUser); err != nil {
		problems = append(problems, fmt.Errorf("EDUTRACK_RATE_LIMIT_USER %q: %w", *perUser, err))
	}
	// The write timeout must leave room to send the answer past the request's own deadline.
	if a.requestTimeout, err = time.ParseDuration(*reqTimeout); err != nil || a.requestTimeout <= 0 || a.requestTimeout > writeTimeout-5*time.Second {
		problems = append(problems, fmt.Errorf("EDUTRACK_REQUEST_TIMEOUT %q: want a positive duration up to %s", *reqTimeout, writeTimeout-5*time.Second))
	}
	cfg.access = a
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

// The default request budgets: bursts of a page's worth of requests, and a sustained rate no
// person clicks at. A school behind one NAT address shares the address's budget, hence its size.
const (
	defaultPerIP   = "100/1s"
	defaultPerUser = "20/1s"
)

// parseLimit reads a budget written N/period, such as 100/1s or 600/1m, with a burst of N; off
// is no limit.
func parseLimit(s string) (ratelimit.Limit, error) {
	if s == "off" {
		return ratelimit.Limit{}, nil
	}
	n, period, ok := strings.Cut(s, "/")
	requests, err := strconv.Atoi(n)
	if !ok || err != nil || requests <= 0 {
		return ratelimit.Limit{}, errors.New("want N/period such as 100/1s, or off")
	}
	d, err := time.ParseDuration(period)
	if err != nil || d <= 0 || d/time.Duration(requests) < time.Microsecond {
		return ratelimit.Limit{}, errors.New("want N/period such as 100/1s, or off, at most one request per microsecond")
	}
	return ratelimit.Limit{Requests: requests, Period: d}, nil
}

// writeTimeout bounds the writing of an answer; the request timeout stays below it, so that a
// request that runs out of time still gets its 503.
const writeTimeout = 30 * time.Second
