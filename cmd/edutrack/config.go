package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/auth/clientip"
	"github.com/edutrack/edutrack/internal/auth/cors"
	"github.com/edutrack/edutrack/internal/auth/ratelimit"
	"github.com/edutrack/edutrack/reactors/email/smtpmail"
)

// config is what serve needs, checked and in the types serve uses; settings.config makes it.
type config struct {
	httpAddr        string
	dataDir         string
	shutdownTimeout time.Duration
	consistencyWait time.Duration
	cacheEntries    int
	catalogMaxAge   time.Duration
	esdbURL         string // the KurrentDB/EventStoreDB event log, else the embedded one
	mongoURI        string // the MongoDB read store, else the embedded one
	redisURL        string // the Redis cache, else the in-process one
	postgresURL     string // the job queue on PostgreSQL, else jobs.db in the data dir
	roles           roles
	leaseTTL        time.Duration // how long the projector lease outlives its holder's last renewal
	xapiHomePage    string
	logLevel        slog.Level
	logFormat       string // text or json
	access          access
	anchors         anchoring
	// smtp is nil when no SMTP server is configured: then no email is enqueued.
	smtp *smtpConfig
	// blobDir is the directory of the blob bucket (certificates' PDFs); empty: blobs in the
	// data dir.
	blobDir string
	// blobS3 is the bucket of an S3-compatible store instead, when EDUTRACK_BLOB_URL is s3://.
	blobS3 *s3Config
	// noCertificates is EDUTRACK_CERTIFICATES=off: the reactor passes completions by.
	noCertificates bool
	// graphqlIntrospection lets every caller introspect the GraphQL schema, not only admins.
	graphqlIntrospection bool
	// publicURL is EDUTRACK_PUBLIC_URL, or nil when it is not set.
	publicURL *url.URL
	files     fileConfig
	media     mediaConfig
}

// smtpConfig is how the emails are sent, and where their links lead.
type smtpConfig struct {
	url, from          string
	username, password string
	publicURL          *url.URL
}

// anchoring is how the embedded event log anchors its hash chains (see anchorkey.go).
type anchoring struct {
	// key is EDUTRACK_ANCHOR_KEY's, or the key in EDUTRACK_ANCHOR_KEY_FILE (keyFile); nil to use
	// defaultFile's.
	key     []byte
	keyFile string
	// defaultFile is where the embedded default keeps the key it generates: in the user's
	// config dir, outside the data dir. Empty when the environment names no home; the log then
	// goes unanchored.
	defaultFile string
	every       time.Duration
}

// keySource says where the configured key came from, for the log.
func (a anchoring) keySource() string {
	if a.keyFile != "" {
		return a.keyFile
	}
	return "EDUTRACK_ANCHOR_KEY"
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
	live           liveLimits
}

// liveLimits cap the live streams (GET /v1/live) of one process.
type liveLimits struct {
	maxTopics, maxPerUser, maxPerAddress, buffer int
}

// maxLiveBuffer bounds EDUTRACK_LIVE_BUFFER: each stream's buffer is allocated whole when it
// opens, and a client that far behind is better told to resync.
const maxLiveBuffer = 4096

// Validate names every problem of the settings at once.
func (s settings) Validate() error {
	problems := slices.Clone(s.unreadable)
	add := func(err error) { problems = append(problems, err) }
	if u, err := url.Parse(strings.TrimRight(s.xapiHomePage, "/")); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add(fmt.Errorf("EDUTRACK_XAPI_HOMEPAGE %q: want an http(s) URL", s.xapiHomePage))
	}
	if _, err := parseRoles(s.roles); err != nil {
		add(err)
	}
	if s.esdbURL != "" && !hasAnyPrefix(s.esdbURL, "kurrentdb://", "kurrentdb+discover://", "kurrent://", "kurrent+discover://",
		"kdb://", "kdb+discover://", "esdb://", "esdb+discover://") {
		add(errors.New("EDUTRACK_ESDB_URL: want a kurrentdb:// or esdb:// connection string"))
	}
	if s.mongoURI != "" && !hasAnyPrefix(s.mongoURI, "mongodb://", "mongodb+srv://") {
		add(errors.New("EDUTRACK_MONGO_URI: want a mongodb:// or mongodb+srv:// URI"))
	}
	if s.redisURL != "" && !hasAnyPrefix(s.redisURL, "redis://", "rediss://") {
		add(errors.New("EDUTRACK_REDIS_URL: want a redis:// or rediss:// URL"))
	}
	if s.postgresURL != "" && !hasAnyPrefix(s.postgresURL, "postgres://", "postgresql://") {
		add(errors.New("EDUTRACK_POSTGRES_URL: want a postgres:// or postgresql:// URL"))
	}
	if _, _, err := net.SplitHostPort(s.httpAddr); err != nil {
		add(fmt.Errorf("EDUTRACK_HTTP_ADDR %q: %w", s.httpAddr, err))
	}
	if strings.TrimSpace(s.dataDir) == "" {
		add(errors.New("EDUTRACK_DATA_DIR is empty"))
	}
	if d, err := time.ParseDuration(s.shutdownTimeout); err != nil || d <= 0 {
		add(fmt.Errorf("EDUTRACK_SHUTDOWN_TIMEOUT %q: want a positive duration such as 20s", s.shutdownTimeout))
	}
	if d, err := time.ParseDuration(s.leaseTTL); err != nil || d < 300*time.Millisecond {
		add(fmt.Errorf("EDUTRACK_LEASE_TTL %q: want a duration of at least 300ms, such as 10s", s.leaseTTL))
	}
	if d, err := time.ParseDuration(s.consistencyWait); err != nil || d <= 0 {
		add(fmt.Errorf("EDUTRACK_CONSISTENCY_WAIT %q: want a positive duration such as 3s", s.consistencyWait))
	}
	if n, err := strconv.Atoi(s.cacheEntries); err != nil || n <= 0 {
		add(fmt.Errorf("EDUTRACK_CACHE_ENTRIES %q: want a positive integer", s.cacheEntries))
	}
	if d, err := time.ParseDuration(s.catalogMaxAge); err != nil || d < 0 {
		add(fmt.Errorf("EDUTRACK_CATALOG_MAX_AGE %q: want a duration such as 1s, or 0s", s.catalogMaxAge))
	}
	if err := new(slog.Level).UnmarshalText([]byte(s.logLevel)); err != nil {
		add(fmt.Errorf("EDUTRACK_LOG_LEVEL %q: want debug, info, warn or error", s.logLevel))
	}
	if s.logFormat != "text" && s.logFormat != "json" {
		add(fmt.Errorf("EDUTRACK_LOG_FORMAT %q: want text or json", s.logFormat))
	}
	if s.auth != "jwt" && s.auth != "disabled" {
		add(fmt.Errorf("EDUTRACK_AUTH %q: want jwt, or disabled", s.auth))
	}
	switch {
	case s.jwtKey != "" && s.jwtKeyFile != "":
		add(errors.New("EDUTRACK_JWT_KEY and EDUTRACK_JWT_KEY_FILE: set one of them"))
	case s.jwtKey != "" && len(s.jwtKey) < auth.MinKeyLen:
		add(fmt.Errorf("EDUTRACK_JWT_KEY: %d bytes; want at least %d", len(s.jwtKey), auth.MinKeyLen))
	case s.jwtKeyFile != "":
		if _, err := auth.ReadKeyFile(s.jwtKeyFile); err != nil {
			add(fmt.Errorf("EDUTRACK_JWT_KEY_FILE: %w", err))
		}
	}
	if s.oidcIssuer != "" && (s.jwtKey != "" || s.jwtKeyFile != "") {
		add(errors.New("EDUTRACK_OIDC_ISSUER and EDUTRACK_JWT_KEY(_FILE): set one of them"))
	}
	if s.oidcIssuer != "" {
		if u, err := url.Parse(s.oidcIssuer); err != nil || u.Scheme != "https" || u.Host == "" {
			add(fmt.Errorf("EDUTRACK_OIDC_ISSUER %q: want an https URL", s.oidcIssuer))
		}
	}
	// Processes on KurrentDB have data dirs of their own: a key generated in each would make
	// each refuse the others' tokens.
	if s.auth != "disabled" && s.esdbURL != "" && s.oidcIssuer == "" && s.jwtKey == "" && s.jwtKeyFile == "" {
		add(errors.New("EDUTRACK_JWT_KEY: the processes of a KurrentDB deployment must share one key: set EDUTRACK_JWT_KEY(_FILE) or EDUTRACK_OIDC_ISSUER"))
	}
	if _, err := clientip.ParsePrefixes(s.trustedProxies); err != nil {
		add(fmt.Errorf("EDUTRACK_TRUSTED_PROXIES: %w", err))
	}
	if _, err := cors.New(splitList(s.corsOrigins)); err != nil {
		add(fmt.Errorf("EDUTRACK_CORS_ORIGINS: %w", err))
	}
	if _, err := parseLimit(s.rateLimitIP); err != nil {
		add(fmt.Errorf("EDUTRACK_RATE_LIMIT_IP %q: %w", s.rateLimitIP, err))
	}
	if _, err := parseLimit(s.rateLimitUser); err != nil {
		add(fmt.Errorf("EDUTRACK_RATE_LIMIT_USER %q: %w", s.rateLimitUser, err))
	}
	for _, x := range []struct {
		name, value string
		limit       int
	}{{"EDUTRACK_LIVE_MAX_TOPICS", s.liveMaxTopics, 1000}, {"EDUTRACK_LIVE_MAX_PER_USER", s.liveMaxPerUser, 1_000_000},
		{"EDUTRACK_LIVE_MAX_PER_ADDRESS", s.liveMaxPerAddress, 1_000_000}, {"EDUTRACK_LIVE_BUFFER", s.liveBuffer, maxLiveBuffer}} {
		if n, err := strconv.Atoi(x.value); err != nil || n <= 0 || n > x.limit {
			add(fmt.Errorf("%s %q: want an integer from 1 to %d", x.name, x.value, x.limit))
		}
	}
	for _, err := range s.smtpProblems() {
		add(err)
	}
	for _, err := range s.mediaProblems() {
		add(err)
	}
	for _, err := range s.blobProblems() {
		add(err)
	}
	for _, err := range s.anchorProblems() {
		add(err)
	}
	for _, err := range s.fileProblems() {
		add(err)
	}
	// The write timeout must leave room to send the answer past the request's own deadline.
	if d, err := time.ParseDuration(s.requestTimeout); err != nil || d <= 0 || d > writeTimeout-5*time.Second {
		add(fmt.Errorf("EDUTRACK_REQUEST_TIMEOUT %q: want a positive duration up to %s", s.requestTimeout, writeTimeout-5*time.Second))
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration:\n  %w", errors.Join(problems...))
	}
	return nil
}

// logger is the log the settings ask for, as far as they are valid: a start that fails on its
// configuration says so in the same format as every other line.
func (s settings) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	if level.UnmarshalText([]byte(s.logLevel)) != nil {
		level = slog.LevelInfo
	}
	return newLogger(w, s.logFormat, level)
}

// newLogger returns a logger writing lines of format (json, else text) at level and above.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// config checks the settings and turns them into the configuration serve runs with.
func (s settings) config() (config, error) {
	if err := s.Validate(); err != nil {
		return config{}, err
	}
	// Validate has parsed every setting once already, so the errors below are all nil, but
	// for the key file's: it could have gone since.
	c := config{httpAddr: s.httpAddr, dataDir: s.dataDir, esdbURL: s.esdbURL, mongoURI: s.mongoURI, redisURL: s.redisURL,
		postgresURL: s.postgresURL, xapiHomePage: strings.TrimRight(s.xapiHomePage, "/")}
	c.shutdownTimeout, _ = time.ParseDuration(s.shutdownTimeout)
	c.consistencyWait, _ = time.ParseDuration(s.consistencyWait)
	c.leaseTTL, _ = time.ParseDuration(s.leaseTTL)
	c.cacheEntries, _ = strconv.Atoi(s.cacheEntries)
	c.catalogMaxAge, _ = time.ParseDuration(s.catalogMaxAge)
	c.roles, _ = parseRoles(s.roles)
	c.logLevel.UnmarshalText([]byte(s.logLevel))
	c.logFormat = s.logFormat
	c.access = access{disabled: s.auth == "disabled", oidcIssuer: s.oidcIssuer, issuer: s.jwtIssuer, audience: s.jwtAudience,
		roleClaim: s.jwtRoleClaim, corsOrigins: splitList(s.corsOrigins)}
	c.access.trustedProxies, _ = clientip.ParsePrefixes(s.trustedProxies)
	c.access.perIP, _ = parseLimit(s.rateLimitIP)
	c.access.perUser, _ = parseLimit(s.rateLimitUser)
	c.access.requestTimeout, _ = time.ParseDuration(s.requestTimeout)
	c.access.live.maxTopics, _ = strconv.Atoi(s.liveMaxTopics)
	c.access.live.maxPerUser, _ = strconv.Atoi(s.liveMaxPerUser)
	c.access.live.maxPerAddress, _ = strconv.Atoi(s.liveMaxPerAddress)
	c.access.live.buffer, _ = strconv.Atoi(s.liveBuffer)
	switch {
	case s.jwtKey != "":
		c.access.jwtKey = []byte(s.jwtKey)
	case s.jwtKeyFile != "":
		key, err := auth.ReadKeyFile(s.jwtKeyFile)
		if err != nil {
			return config{}, fmt.Errorf("EDUTRACK_JWT_KEY_FILE: %w", err)
		}
		c.access.jwtKey = key
	}
	if s.smtpURL != "" {
		c.smtp = &smtpConfig{url: s.smtpURL, from: s.smtpFrom, username: s.smtpUsername, password: s.smtpPassword}
		c.smtp.publicURL, _ = url.Parse(strings.TrimRight(s.publicURL, "/"))
	}
	c.noCertificates = s.certificates == "off"
	c.graphqlIntrospection = s.graphqlIntrospection == "on"
	if s.publicURL != "" {
		c.publicURL, _ = url.Parse(strings.TrimRight(s.publicURL, "/"))
	}
	if u, _ := url.Parse(s.blobURL); s.blobURL != "" && u.Scheme == "s3" {
		c.blobS3 = &s3Config{url: u, accessKeyID: s.s3AccessKeyID, secretAccessKey: s.s3SecretAccessKey}
	} else if s.blobURL != "" {
		c.blobDir = u.Path
	}
	files, err := s.fileConfig()
	if err != nil {
		return config{}, err
	}
	c.files = files
	c.media = s.mediaConfig()
	c.anchors.every, _ = time.ParseDuration(s.anchorInterval)
	switch {
	case s.anchorKey != "":
		c.anchors.key = []byte(s.anchorKey)
	case s.anchorKeyFile != "":
		key, err := readAnchorKeyFile(s.anchorKeyFile)
		if err != nil {
			return config{}, fmt.Errorf("EDUTRACK_ANCHOR_KEY_FILE: %w", err)
		}
		c.anchors.key, c.anchors.keyFile = key, s.anchorKeyFile
	case s.configDir != "":
		c.anchors.defaultFile = defaultAnchorKeyFile(s.configDir)
	}
	return c, nil
}

// smtpProblems are the problems of the email settings, which matter only with an SMTP server.
func (s settings) smtpProblems() []error {
	if s.smtpURL == "" {
		return nil
	}
	var problems []error
	add := func(err error) { problems = append(problems, err) }
	if _, err := smtpmail.ParseURL(s.smtpURL); err != nil {
		add(fmt.Errorf("EDUTRACK_SMTP_URL %q: %w", redacted(s.smtpURL), err))
	}
	if s.smtpFrom == "" {
		add(errors.New("EDUTRACK_SMTP_FROM: required with EDUTRACK_SMTP_URL, such as 'EduTrack <noreply@school.example>'"))
	} else if _, err := mail.ParseAddress(s.smtpFrom); err != nil {
		add(fmt.Errorf("EDUTRACK_SMTP_FROM %q: %w", s.smtpFrom, err))
	}
	if s.smtpPassword != "" && s.smtpUsername == "" {
		add(errors.New("EDUTRACK_SMTP_PASSWORD(_FILE) without EDUTRACK_SMTP_USERNAME(_FILE)"))
	}
	if u, err := url.Parse(s.publicURL); s.publicURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add(fmt.Errorf("EDUTRACK_PUBLIC_URL %q: required with EDUTRACK_SMTP_URL, an http(s) URL where learners reach EduTrack, such as https://learn.school.example", s.publicURL))
	}
	return problems
}

// anchorProblems are the problems of the anchor settings. KurrentDB keeps its own log, which
// the anchors do not cover, so there they are not checked.
func (s settings) anchorProblems() []error {
	var problems []error
	add := func(err error) { problems = append(problems, err) }
	if d, err := time.ParseDuration(s.anchorInterval); err != nil || d < 10*time.Millisecond {
		add(fmt.Errorf("EDUTRACK_ANCHOR_INTERVAL %q: want a duration of at least 10ms, such as 1s", s.anchorInterval))
	}
	if s.esdbURL != "" {
		return problems
	}
	switch {
	case s.anchorKey != "" && s.anchorKeyFile != "":
		add(errors.New("EDUTRACK_ANCHOR_KEY and EDUTRACK_ANCHOR_KEY_FILE: set one of them"))
	case s.anchorKey != "" && len(s.anchorKey) < sqlitelog.MinAnchorKeyLen:
		add(fmt.Errorf("EDUTRACK_ANCHOR_KEY: %d bytes; want at least %d", len(s.anchorKey), sqlitelog.MinAnchorKeyLen))
	case s.anchorKeyFile != "":
		if _, err := readAnchorKeyFile(s.anchorKeyFile); err != nil {
			add(fmt.Errorf("EDUTRACK_ANCHOR_KEY_FILE: %w", err))
		}
		if within(s.dataDir, s.anchorKeyFile) {
			add(fmt.Errorf("EDUTRACK_ANCHOR_KEY_FILE %s is inside the data dir %s: keep it elsewhere, or whoever has a copy of the data has the key with it",
				s.anchorKeyFile, s.dataDir))
		}
	case s.anchorKey == "" && s.configDir != "" && within(s.dataDir, defaultAnchorKeyFile(s.configDir)):
		add(fmt.Errorf("EDUTRACK_ANCHOR_KEY_FILE: unset, and its default place %s is inside the data dir %s: set it to a file elsewhere",
			defaultAnchorKeyFile(s.configDir), s.dataDir))
	}
	return problems
}

// roles are the parts of EduTrack one process runs.
type roles struct{ write, project, react, work, read bool }

func parseRoles(list string) (roles, error) {
	var r roles
	for _, name := range strings.Split(list, ",") {
		switch strings.TrimSpace(name) {
		case "write":
			r.write = true
		case "project":
			r.project = true
		case "react":
			r.react = true
		case "work":
			r.work = true
		case "read":
			r.read = true
		default:
			return r, fmt.Errorf("EDUTRACK_ROLES %q: each role is write, project, react, work or read", list)
		}
	}
	return r, nil
}

func (r roles) String() string {
	var names []string
	for _, x := range []struct {
		on   bool
		name string
	}{{r.write, "write"}, {r.project, "project"}, {r.react, "react"}, {r.work, "work"}, {r.read, "read"}} {
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

// splitList reads a comma-separated list, leaving out empty items.
func splitList(s string) []string {
	var items []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
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
