package main

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/modulefiles"
	"github.com/edutrack/edutrack/readapi/live"
)

// settings are the configuration as written: each one is its EDUTRACK_ variable, else its
// default, and the flag of the same name overrides it. They stay text until Validate has seen
// them all, so that one start names every mistake, those in flags included.
type settings struct {
	httpAddr        string
	dataDir         string
	shutdownTimeout string
	consistencyWait string
	cacheEntries    string
	catalogMaxAge   string
	esdbURL         string
	mongoURI        string
	redisURL        string
	postgresURL     string
	xapiHomePage    string
	roles           string
	leaseTTL        string
	logLevel        string
	logFormat       string
	auth            string
	// jwtKey has no flag: a command line is visible to every user of the machine.
	jwtKey         string
	jwtKeyFile     string
	oidcIssuer     string
	jwtIssuer      string
	jwtAudience    string
	jwtRoleClaim   string
	trustedProxies string
	corsOrigins    string
	rateLimitIP    string
	rateLimitUser  string
	requestTimeout string
	// The caps on live streams (EDUTRACK_LIVE_*).
	liveMaxTopics, liveMaxPerUser, liveMaxPerAddress, liveBuffer string
	// anchorKey has no flag, as jwtKey.
	anchorKey      string
	anchorKeyFile  string
	anchorInterval string
	// The SMTP server of the emails, and where learners reach EduTrack (the emails' links).
	smtpURL, smtpFrom, publicURL string
	// blobURL is the bucket of the certificates' PDFs; empty: blobs under the data dir.
	blobURL string
	// The keys to an s3:// bucket, when not the AWS SDK's own; no flags, as jwtKey.
	s3AccessKeyID, s3SecretAccessKey string
	// certificates is on or off: whether completed courses get a certificate.
	certificates string
	// graphqlIntrospection is on or off: whether every caller may introspect the GraphQL schema.
	graphqlIntrospection string
	// imageMaxBytes caps an uploaded course image; mediaBaseURL is where the read models'
	// media URLs point instead of GET /media (media.go).
	imageMaxBytes, mediaBaseURL string
	// smtpUsername and smtpPassword have no flags, as jwtKey.
	smtpUsername, smtpPassword string
	// The module files (modulefiles.go); fileURLKey has no flag, as jwtKey.
	fileMaxSize, fileTypes, fileUploadExpiry, fileDownloadExpiry, fileURLKey, fileURLKeyFile string
	// configDir is the user's config dir, as the environment names it; empty if it names none.
	configDir string

	// unreadable are the _FILE variables whose files could not be read.
	unreadable []error
}

// readSettings reads the EDUTRACK_ variables; an empty one is unset, and gets its default.
func readSettings(getenv func(string) string) settings {
	var s settings
	env := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		// A secret can come from a file instead, as container platforms mount them.
		if path := getenv(name + "_FILE"); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				s.unreadable = append(s.unreadable, fmt.Errorf("%s_FILE: %w", name, err))
				return ""
			}
			return strings.TrimSpace(string(b))
		}
		return ""
	}
	s.httpAddr = env("EDUTRACK_HTTP_ADDR")
	s.dataDir = env("EDUTRACK_DATA_DIR")
	s.shutdownTimeout = env("EDUTRACK_SHUTDOWN_TIMEOUT")
	s.consistencyWait = env("EDUTRACK_CONSISTENCY_WAIT")
	s.catalogMaxAge = env("EDUTRACK_CATALOG_MAX_AGE")
	s.esdbURL = env("EDUTRACK_ESDB_URL")
	s.mongoURI = env("EDUTRACK_MONGO_URI")
	s.redisURL = env("EDUTRACK_REDIS_URL")
	s.postgresURL = env("EDUTRACK_POSTGRES_URL")
	s.xapiHomePage = env("EDUTRACK_XAPI_HOMEPAGE")
	s.roles = env("EDUTRACK_ROLES")
	s.leaseTTL = env("EDUTRACK_LEASE_TTL")
	s.logLevel = env("EDUTRACK_LOG_LEVEL")
	s.logFormat = env("EDUTRACK_LOG_FORMAT")
	s.auth = env("EDUTRACK_AUTH")
	// Not through env: EDUTRACK_JWT_KEY_FILE is a setting of its own, whose file Validate
	// reads and checks as a key.
	s.jwtKey = getenv("EDUTRACK_JWT_KEY")
	s.jwtKeyFile = getenv("EDUTRACK_JWT_KEY_FILE")
	s.oidcIssuer = env("EDUTRACK_OIDC_ISSUER")
	s.jwtIssuer = env("EDUTRACK_JWT_ISSUER")
	s.jwtAudience = env("EDUTRACK_JWT_AUDIENCE")
	s.jwtRoleClaim = env("EDUTRACK_JWT_ROLE_CLAIM")
	s.trustedProxies = env("EDUTRACK_TRUSTED_PROXIES")
	s.corsOrigins = env("EDUTRACK_CORS_ORIGINS")
	s.rateLimitIP = env("EDUTRACK_RATE_LIMIT_IP")
	s.rateLimitUser = env("EDUTRACK_RATE_LIMIT_USER")
	s.requestTimeout = env("EDUTRACK_REQUEST_TIMEOUT")
	s.cacheEntries = env("EDUTRACK_CACHE_ENTRIES")
	s.liveMaxTopics = env("EDUTRACK_LIVE_MAX_TOPICS")
	s.liveMaxPerUser = env("EDUTRACK_LIVE_MAX_PER_USER")
	s.liveMaxPerAddress = env("EDUTRACK_LIVE_MAX_PER_ADDRESS")
	s.liveBuffer = env("EDUTRACK_LIVE_BUFFER")
	// As with the JWT key, EDUTRACK_ANCHOR_KEY_FILE is a setting whose file Validate checks.
	s.anchorKey = getenv("EDUTRACK_ANCHOR_KEY")
	s.anchorKeyFile = getenv("EDUTRACK_ANCHOR_KEY_FILE")
	s.anchorInterval = env("EDUTRACK_ANCHOR_INTERVAL")
	s.smtpURL = env("EDUTRACK_SMTP_URL")
	s.smtpFrom = env("EDUTRACK_SMTP_FROM")
	s.smtpUsername = env("EDUTRACK_SMTP_USERNAME")
	s.smtpPassword = env("EDUTRACK_SMTP_PASSWORD")
	s.publicURL = env("EDUTRACK_PUBLIC_URL")
	s.blobURL = env("EDUTRACK_BLOB_URL")
	s.s3AccessKeyID = env("EDUTRACK_S3_ACCESS_KEY_ID")
	s.s3SecretAccessKey = env("EDUTRACK_S3_SECRET_ACCESS_KEY")
	s.certificates = env("EDUTRACK_CERTIFICATES")
	s.fileMaxSize = env("EDUTRACK_FILE_MAX_SIZE")
	s.fileTypes = env("EDUTRACK_FILE_TYPES")
	s.fileUploadExpiry = env("EDUTRACK_FILE_UPLOAD_EXPIRY")
	s.fileDownloadExpiry = env("EDUTRACK_FILE_DOWNLOAD_EXPIRY")
	// As with the JWT key, EDUTRACK_FILE_URL_KEY_FILE is a setting whose file Validate checks.
	s.fileURLKey = getenv("EDUTRACK_FILE_URL_KEY")
	s.fileURLKeyFile = getenv("EDUTRACK_FILE_URL_KEY_FILE")
	s.graphqlIntrospection = env("EDUTRACK_GRAPHQL_INTROSPECTION")
	s.imageMaxBytes = env("EDUTRACK_IMAGE_MAX_BYTES")
	s.mediaBaseURL = env("EDUTRACK_MEDIA_BASE_URL")
	s.configDir = userConfigDir(getenv)
	s.setDefaults()
	return s
}

// setDefaults gives every unset setting its default: the embedded mode, with data under ./data.
// It runs before the flags are parsed, so that -h shows the values in force.
func (s *settings) setDefaults() {
	for _, d := range []struct {
		setting *string
		value   string
	}{
		{&s.httpAddr, ":8080"},
		{&s.dataDir, "./data"},
		{&s.shutdownTimeout, "20s"},
		{&s.consistencyWait, "3s"},
		{&s.cacheEntries, "100000"},
		{&s.catalogMaxAge, "1s"},
		{&s.xapiHomePage, "https://edutrack.invalid"},
		{&s.roles, "write,project,react,work,read"},
		{&s.leaseTTL, "10s"},
		{&s.logLevel, "info"},
		{&s.logFormat, "text"},
		{&s.auth, "jwt"},
		{&s.jwtIssuer, auth.DefaultIssuer},
		{&s.jwtAudience, auth.DefaultAudience},
		{&s.jwtRoleClaim, auth.DefaultRoleClaim},
		{&s.rateLimitIP, defaultPerIP},
		{&s.rateLimitUser, defaultPerUser},
		{&s.requestTimeout, "10s"},
		{&s.liveMaxTopics, strconv.Itoa(live.DefaultMaxTopics)},
		{&s.liveMaxPerUser, strconv.Itoa(live.DefaultMaxPerUser)},
		{&s.liveMaxPerAddress, strconv.Itoa(live.DefaultMaxPerAddress)},
		{&s.liveBuffer, strconv.Itoa(live.DefaultBuffer)},
		{&s.anchorInterval, "1s"},
		{&s.certificates, "on"},
		{&s.fileMaxSize, strconv.FormatInt(defaultFileMaxSize, 10)},
		{&s.fileTypes, strings.Join(defaultFileTypes, ",")},
		{&s.fileUploadExpiry, modulefiles.DefaultUploadExpiry.String()},
		{&s.fileDownloadExpiry, modulefiles.DefaultDownloadExpiry.String()},
		{&s.graphqlIntrospection, "off"},
		{&s.imageMaxBytes, strconv.Itoa(defaultImageMaxBytes)},
	} {
		if *d.setting == "" {
			*d.setting = d.value
		}
	}
}

// addFlags adds to fs the flags of the settings named, or of all of them, each defaulting to
// the setting as the environment left it.
func (s *settings) addFlags(fs *pflag.FlagSet, names ...string) {
	for _, f := range []struct {
		name    string
		setting *string
		usage   string
	}{
		{"http-addr", &s.httpAddr, "HTTP listen address (EDUTRACK_HTTP_ADDR)"},
		{"data-dir", &s.dataDir, "directory of the embedded stores (EDUTRACK_DATA_DIR)"},
		{"shutdown-timeout", &s.shutdownTimeout, "time to finish in-flight requests on stop (EDUTRACK_SHUTDOWN_TIMEOUT)"},
		{"consistency-wait", &s.consistencyWait, "longest wait of a read for its minPosition (EDUTRACK_CONSISTENCY_WAIT)"},
		{"cache-entries", &s.cacheEntries, "documents the in-process cache holds (EDUTRACK_CACHE_ENTRIES)"},
		{"catalog-max-age", &s.catalogMaxAge, "how old a catalog page may be when served to a reader without a later minPosition; 0s: only until the catalog changes (EDUTRACK_CATALOG_MAX_AGE)"},
		{"esdb-url", &s.esdbURL, "KurrentDB/EventStoreDB connection string of the event log; empty keeps the embedded log (EDUTRACK_ESDB_URL, or _FILE)"},
		{"mongo-uri", &s.mongoURI, "MongoDB URI of the read store; empty keeps the embedded store (EDUTRACK_MONGO_URI, or _FILE)"},
		{"redis-url", &s.redisURL, "Redis URL of the document cache; empty keeps the in-process cache (EDUTRACK_REDIS_URL, or _FILE)"},
		{"postgres-url", &s.postgresURL, "PostgreSQL URL of the job queue; empty keeps jobs.db in the data dir (EDUTRACK_POSTGRES_URL, or _FILE)"},
		{"xapi-homepage", &s.xapiHomePage, "homePage of learner accounts and base of activity ids in xAPI exports (EDUTRACK_XAPI_HOMEPAGE)"},
		{"roles", &s.roles, "roles this process runs: write, project, react, work, read (EDUTRACK_ROLES)"},
		{"lease-ttl", &s.leaseTTL, "how long the projector lease outlives a dead holder; a waiting projector takes over within 4/3 of it (EDUTRACK_LEASE_TTL)"},
		{"log-level", &s.logLevel, "debug, info, warn or error (EDUTRACK_LOG_LEVEL)"},
		{"log-format", &s.logFormat, "text (key=value) or json, one object per line (EDUTRACK_LOG_FORMAT)"},
		{"auth", &s.auth, "jwt, or disabled to let every request act as an admin (EDUTRACK_AUTH)"},
		{"jwt-key-file", &s.jwtKeyFile, "file holding the HMAC key of the bearer tokens (EDUTRACK_JWT_KEY_FILE, or the key itself in EDUTRACK_JWT_KEY); default: " + auth.KeyFileName + " in the data dir, generated on first start"},
		{"oidc-issuer", &s.oidcIssuer, "https URL of an OpenID Connect provider whose tokens to accept instead of HMAC ones (EDUTRACK_OIDC_ISSUER)"},
		{"jwt-issuer", &s.jwtIssuer, "iss of HMAC tokens (EDUTRACK_JWT_ISSUER)"},
		{"jwt-audience", &s.jwtAudience, "aud every token must carry (EDUTRACK_JWT_AUDIENCE)"},
		{"jwt-role-claim", &s.jwtRoleClaim, "claim holding the caller's role (EDUTRACK_JWT_ROLE_CLAIM)"},
		{"trusted-proxies", &s.trustedProxies, "CIDRs or addresses of proxies whose X-Forwarded-For names the client (EDUTRACK_TRUSTED_PROXIES)"},
		{"cors-origins", &s.corsOrigins, "origins whose pages may call the API, such as https://school.example; empty: none (EDUTRACK_CORS_ORIGINS)"},
		{"rate-limit-ip", &s.rateLimitIP, "requests per client address, as N/period, or off (EDUTRACK_RATE_LIMIT_IP)"},
		{"rate-limit-user", &s.rateLimitUser, "requests per user, as N/period, or off (EDUTRACK_RATE_LIMIT_USER)"},
		{"request-timeout", &s.requestTimeout, "longest time the server spends on one /v1 request (EDUTRACK_REQUEST_TIMEOUT)"},
		{"live-max-topics", &s.liveMaxTopics, "topics one live stream may follow (EDUTRACK_LIVE_MAX_TOPICS)"},
		{"live-max-per-user", &s.liveMaxPerUser, "live streams one user may have open in this process (EDUTRACK_LIVE_MAX_PER_USER)"},
		{"live-max-per-address", &s.liveMaxPerAddress, "live streams one client address may have open in this process (EDUTRACK_LIVE_MAX_PER_ADDRESS)"},
		{"live-buffer", &s.liveBuffer, "messages a live stream may fall behind before it is told to resync (EDUTRACK_LIVE_BUFFER)"},
		{"anchor-key-file", &s.anchorKeyFile, "file holding the HMAC key that anchors the event log, outside the data dir (EDUTRACK_ANCHOR_KEY_FILE, or the key itself in EDUTRACK_ANCHOR_KEY); default: edutrack/anchor.key in the user's config dir, generated on first start"},
		{"smtp-url", &s.smtpURL, "SMTP server of the emails, smtp://host:port[?tls=required] or smtps://host:port; empty sends none (EDUTRACK_SMTP_URL, or _FILE)"},
		{"smtp-from", &s.smtpFrom, "sender of the emails, such as 'EduTrack <noreply@school.example>' (EDUTRACK_SMTP_FROM)"},
		{"public-url", &s.publicURL, "where learners reach EduTrack, the base of the emails' and certificates' links (EDUTRACK_PUBLIC_URL)"},
		{"certificates", &s.certificates, "on issues a certificate for each completed course; off passes completions by (EDUTRACK_CERTIFICATES)"},
		{"graphql-introspection", &s.graphqlIntrospection, "on lets every caller introspect the GraphQL schema; off, admins only (EDUTRACK_GRAPHQL_INTROSPECTION)"},
		{"blob-url", &s.blobURL, "bucket of the certificates' PDFs, file:///path or s3://bucket?region=...; default: blobs under the data dir (EDUTRACK_BLOB_URL)"},
		{"image-max-bytes", &s.imageMaxBytes, "largest course image an upload may send, in bytes; larger ones are refused with 413 (EDUTRACK_IMAGE_MAX_BYTES)"},
		{"media-base-url", &s.mediaBaseURL, "URL the read models' image URLs start with instead of this server's /media/, such as a CDN's; empty: /media/ (EDUTRACK_MEDIA_BASE_URL)"},
		{"anchor-interval", &s.anchorInterval, "how often the event log is anchored while events arrive (EDUTRACK_ANCHOR_INTERVAL)"},
		{"file-max-size", &s.fileMaxSize, "largest module file in bytes (EDUTRACK_FILE_MAX_SIZE)"},
		{"file-types", &s.fileTypes, "media types a module file may be, comma-separated (EDUTRACK_FILE_TYPES)"},
		{"file-upload-expiry", &s.fileUploadExpiry, "how long a module file's upload URL lasts (EDUTRACK_FILE_UPLOAD_EXPIRY)"},
		{"file-download-expiry", &s.fileDownloadExpiry, "how long a module file's download link lasts (EDUTRACK_FILE_DOWNLOAD_EXPIRY)"},
		{"file-url-key-file", &s.fileURLKeyFile, "file holding the HMAC key of the module files' links on a file:// blob store, outside the data dir (EDUTRACK_FILE_URL_KEY_FILE, or the key itself in EDUTRACK_FILE_URL_KEY); default: edutrack/file-url.key in the user's config dir, generated on first start"},
	} {
		if len(names) == 0 || slices.Contains(names, f.name) {
			fs.StringVar(f.setting, f.name, *f.setting, f.usage)
			// Help shows each default as the environment set it: never a connection string's
			// password.
			fs.Lookup(f.name).DefValue = redacted(*f.setting)
		}
	}
}

// redacted is s with the password of a URL in it replaced by xxxxx.
func redacted(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return s
}
