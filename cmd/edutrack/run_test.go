package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/auth/ratelimit"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantErr    string // empty: run returns nil
		wantStdout string
		wantStderr string
	}{
		{name: "prints usage and fails without a command", args: nil, wantErr: "no command given", wantStderr: "usage: edutrack"},
		{name: "prints usage on help", args: []string{"help"}, wantStdout: "usage: edutrack"},
		{name: "refuses an unknown command", args: []string{"migrate"}, wantErr: `unknown command "migrate"`, wantStderr: "usage: edutrack"},
		{name: "refuses stray arguments to serve", args: []string{"serve", "now"}, wantErr: "unexpected arguments: now"},
		{name: "refuses an invalid address before serving", args: []string{"serve", "-http-addr", "localhost"}, wantErr: "EDUTRACK_HTTP_ADDR"},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			dir := t.TempDir()
			getenv := func(k string) string {
				if k == "EDUTRACK_DATA_DIR" {
					return dir
				}
				return ""
			}
			err := run(t.Context(), tc.args, getenv, &stdout, &stderr, func(string) { t.Error("the server started") })
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("run: %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("run: %v, want an error containing %q", err, tc.wantErr)
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) || (tc.wantStdout == "" && stdout.Len() > 0) {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, path := range []string{"serve", "projections", "projections list", "projections rebuild", "projections dead-letters",
		"projections skip", "projections retry", "jobs", "jobs list", "jobs retry", "jobs cancel", "audit", "audit verify", "audit accept", "healthcheck", "token", "version", "completion", "completion bash"} {
		for _, flag := range []string{"-h", "--help", "-help"} {
			t.Run(strings.ReplaceAll(path+" "+flag, " ", "_"), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				args := append(strings.Fields(path), flag)
				if err := run(t.Context(), args, envOf(nil), &stdout, &stderr, func(string) { t.Error("the server started") }); err != nil {
					t.Errorf("run %q: %v, want nil", args, err)
				}
				if want := "usage: edutrack " + path; !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout %q, want it to contain %q", stdout.String(), want)
				}
				if stderr.Len() > 0 {
					t.Errorf("stderr %q, want nothing", stderr.String())
				}
			})
		}
	}

	t.Run("shows_a_command's_own_flags_only", func(t *testing.T) {
		for _, tc := range []struct {
			args          []string
			want, notWant []string
		}{
			{[]string{"token", "-h"}, []string{"--sub", "--role", "--ttl", "--data-dir", "--jwt-key-file"}, []string{"--http-addr", "--roles", "--redis-url", "--server"}},
			{[]string{"healthcheck", "-h"}, []string{"--url"}, []string{"--http-addr", "--sub"}},
			{[]string{"projections", "skip", "-h"}, []string{"--reason", "--server"}, []string{"--json", "--detach"}},
			{[]string{"serve", "-h"}, []string{"--http-addr", "--roles", "--cache-entries", "--rate-limit-ip"}, []string{"--sub", "--url", "--server"}},
		} {
			var stdout bytes.Buffer
			if err := run(t.Context(), tc.args, envOf(nil), &stdout, io.Discard, nil); err != nil {
				t.Fatalf("run %q: %v", tc.args, err)
			}
			for _, f := range tc.want {
				if !strings.Contains(stdout.String(), f) {
					t.Errorf("%q does not show %s:\n%s", tc.args, f, stdout.String())
				}
			}
			for _, f := range tc.notWant {
				if strings.Contains(stdout.String(), f) {
					t.Errorf("%q shows %s, a flag of another command:\n%s", tc.args, f, stdout.String())
				}
			}
		}
	})

	t.Run("shows_the_environment_as_the_flags'_defaults", func(t *testing.T) {
		var stdout bytes.Buffer
		if err := run(t.Context(), []string{"serve", "-h"}, envOf(map[string]string{"EDUTRACK_HTTP_ADDR": ":9999"}), &stdout, io.Discard, nil); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout.String(), `(default ":9999")`) {
			t.Errorf("serve -h does not show EDUTRACK_HTTP_ADDR as the default of --http-addr:\n%s", stdout.String())
		}
	})
	t.Run("never_shows_a_connection_string's_password", func(t *testing.T) {
		var stdout bytes.Buffer
		env := envOf(map[string]string{"EDUTRACK_MONGO_URI": "mongodb://edutrack:s3cret-pw@db:27017/?replicaSet=rs0",
			"EDUTRACK_REDIS_URL": "redis://:an0ther-pw@cache:6379/0"})
		if err := run(t.Context(), []string{"serve", "-h"}, env, &stdout, io.Discard, nil); err != nil {
			t.Fatal(err)
		}
		if out := stdout.String(); strings.Contains(out, "s3cret-pw") || strings.Contains(out, "an0ther-pw") || !strings.Contains(out, "mongodb://edutrack:xxxxx@db:27017") {
			t.Errorf("serve -h shows a password, or no URL at all:\n%s", out)
		}
	})
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		t.Run("prints_a_script_for_"+shell, func(t *testing.T) {
			var stdout bytes.Buffer
			if err := run(t.Context(), []string{"completion", shell}, envOf(nil), &stdout, io.Discard, nil); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stdout.String(), "__complete") || !strings.Contains(stdout.String(), "edutrack") {
				t.Errorf("completion %s printed no completion script for edutrack:\n%.300s", shell, stdout.String())
			}
		})
	}

	t.Run("completes_commands_and_flags", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"__complete", "proj"}, "projections"},
			{[]string{"__complete", "projections", "re"}, "rebuild"},
			{[]string{"__complete", "token", "--r"}, "--role"},
			{[]string{"__complete", "projections", "-server", "http://127.0.0.1:1", "li"}, "list"},
		} {
			var stdout bytes.Buffer
			if err := run(t.Context(), tc.args, envOf(nil), &stdout, io.Discard, nil); err != nil {
				t.Fatalf("run %q: %v", tc.args, err)
			}
			if !strings.Contains(stdout.String(), tc.want) {
				t.Errorf("%q completes to %q, want %s among them", tc.args, stdout.String(), tc.want)
			}
		}
	})

	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"completion"}, "completion: no shell given"},
		{[]string{"completion", "tcsh"}, `completion: unknown shell "tcsh"`},
	} {
		t.Run("refuses_"+strings.Join(tc.args, "_"), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tc.args, envOf(nil), &stdout, &stderr, nil)
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("run %q: %v, want %q", tc.args, err, tc.wantErr)
			}
			if stdout.Len() > 0 || !strings.Contains(stderr.String(), "usage: edutrack completion") {
				t.Errorf("stdout %q, stderr %q; want only the usage on stderr", stdout.String(), stderr.String())
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	root := newRootCmd(envOf(nil), nil)
	for _, tc := range []struct {
		name       string
		args, want []string
	}{
		{"keeps_double_dashes", []string{"serve", "--http-addr", ":1"}, []string{"serve", "--http-addr", ":1"}},
		{"reads_one_dash_as_two", []string{"serve", "-http-addr", ":1", "-roles=read"}, []string{"serve", "--http-addr", ":1", "--roles=read"}},
		{"keeps_a_flag's_value_that_starts_with_a_dash", []string{"serve", "-cache-entries", "-5"}, []string{"serve", "--cache-entries", "-5"}},
		{"keeps_shorthands", []string{"token", "-h"}, []string{"token", "-h"}},
		{"puts_the_command_before_its_flags", []string{"projections", "-json", "list"}, []string{"projections", "list", "--json"}},
		{"skips_the_values_of_flags_before_the_command", []string{"projections", "-server", "http://x", "rebuild", "-detach", "courses"},
			[]string{"projections", "rebuild", "--server", "http://x", "--detach", "courses"}},
		{"finds_no_command_after_an_argument", []string{"audit", "check", "verify"}, []string{"audit", "check", "verify"}},
		{"leaves_what_follows_a_double_dash", []string{"projections", "skip", "--", "-a", "1"}, []string{"projections", "skip", "--", "-a", "1"}},
		{"leaves_the_word_being_completed", []string{"__complete", "token", "-sub", "x", "-ro"}, []string{"__complete", "token", "--sub", "x", "-ro"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, commandLine(root, tc.args)); diff != "" {
				t.Errorf("commandLine(%q) (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

// loadConfig is the configuration `edutrack serve args...` would run with under getenv.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var got config
	root := newRootCmd(getenv, func(_ context.Context, cfg config, _ io.Writer) error {
		got = cfg
		return nil
	})
	root.SetArgs(commandLine(root, append([]string{"serve"}, args...)))
	root.SetOut(io.Discard)
	root.SetErr(stderr)
	err := root.Execute()
	return got, err
}

// defaultAccess is the access of a server with no access settings.
func defaultAccess() access {
	return access{issuer: "edutrack", audience: "edutrack", roleClaim: "role", perIP: ratelimit.Limit{Requests: 100, Period: time.Second},
		perUser: ratelimit.Limit{Requests: 20, Period: time.Second}, requestTimeout: 10 * time.Second,
		live: liveLimits{maxTopics: 20, maxPerUser: 10, maxPerAddress: 1000, buffer: 64}}
}

func withAccess(change func(*access)) access {
	a := defaultAccess()
	change(&a)
	return a
}

// defaults is the default configuration with a.
func defaults(a access) config {
	return config{httpAddr: ":8080", dataDir: "./data", shutdownTimeout: 20 * time.Second, consistencyWait: 3 * time.Second,
		cacheEntries: 100_000, catalogMaxAge: time.Second, logLevel: slog.LevelInfo, logFormat: "text", roles: roles{write: true, project: true, react: true, work: true, read: true}, xapiHomePage: "https://edutrack.invalid",
		leaseTTL: 10 * time.Second, access: a, anchors: anchoring{every: time.Second}, files: defaultFiles, media: defaultMedia}
}

// defaultMedia is the course images' configuration when nothing sets it.
var defaultMedia = mediaConfig{imageMaxBytes: defaultImageMaxBytes}

// defaultFiles is the module files' configuration when nothing sets it.
var defaultFiles = fileConfig{limits: course.FileLimits{MaxSize: defaultFileMaxSize, Types: defaultFileTypes}, uploadExpiry: 15 * time.Minute,
	downloadExpiry: 5 * time.Minute}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	keyFile, shortKeyFile := filepath.Join(dir, "jwt.key"), filepath.Join(dir, "short.key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shortKeyFile, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The anchor key must live outside the data dir; dataDir holds one that is inside.
	keysDir, dataDir := filepath.Join(dir, "keys"), filepath.Join(dir, "data")
	anchorKeyFile, keyInData := filepath.Join(keysDir, "anchor.key"), filepath.Join(dataDir, "anchor.key")
	for _, f := range []string{anchorKeyFile, keyInData} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(testAnchorKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    config
		wantErr []string // every part the error must name
	}{
		{
			name: "defaults to port 8080 and ./data",
			want: config{httpAddr: ":8080", dataDir: "./data", shutdownTimeout: 20 * time.Second, consistencyWait: 3 * time.Second,
				cacheEntries: 100_000, catalogMaxAge: time.Second, logLevel: slog.LevelInfo, logFormat: "text", roles: roles{write: true, project: true, react: true, work: true, read: true}, xapiHomePage: "https://edutrack.invalid",
				leaseTTL: 10 * time.Second, access: defaultAccess(), anchors: anchoring{every: time.Second}, files: defaultFiles, media: defaultMedia},
		},
		{
			name: "reads the environment",
			env: map[string]string{"EDUTRACK_HTTP_ADDR": "127.0.0.1:9000", "EDUTRACK_DATA_DIR": "/srv/edutrack",
				"EDUTRACK_SHUTDOWN_TIMEOUT": "5s", "EDUTRACK_CONSISTENCY_WAIT": "250ms", "EDUTRACK_CACHE_ENTRIES": "64",
				"EDUTRACK_LOG_LEVEL": "debug", "EDUTRACK_ROLES": "read", "EDUTRACK_LEASE_TTL": "3s",
				"EDUTRACK_ESDB_URL": "kurrentdb://127.0.0.1:2113?tls=false", "EDUTRACK_JWT_KEY": testKey},
			want: config{httpAddr: "127.0.0.1:9000", dataDir: "/srv/edutrack", shutdownTimeout: 5 * time.Second,
				consistencyWait: 250 * time.Millisecond, cacheEntries: 64, catalogMaxAge: time.Second, logLevel: slog.LevelDebug, logFormat: "text", roles: roles{read: true}, xapiHomePage: "https://edutrack.invalid",
				leaseTTL: 3 * time.Second, esdbURL: "kurrentdb://127.0.0.1:2113?tls=false", access: withAccess(func(a *access) { a.jwtKey = []byte(testKey) }),
				anchors: anchoring{every: time.Second}, files: defaultFiles, media: defaultMedia},
		},
		{
			name: "reads the blob directory and the public URL",
			env:  map[string]string{"EDUTRACK_BLOB_URL": "file:///srv/blobs", "EDUTRACK_PUBLIC_URL": "https://learn.school.example/"},
			want: config{httpAddr: ":8080", dataDir: "./data", shutdownTimeout: 20 * time.Second, consistencyWait: 3 * time.Second,
				cacheEntries: 100_000, catalogMaxAge: time.Second, logLevel: slog.LevelInfo, logFormat: "text", roles: roles{write: true, project: true, react: true, work: true, read: true}, xapiHomePage: "https://edutrack.invalid",
				leaseTTL: 10 * time.Second, access: defaultAccess(), anchors: anchoring{every: time.Second}, files: defaultFiles, media: defaultMedia, blobDir: "/srv/blobs",
				publicURL: &url.URL{Scheme: "https", Host: "learn.school.example"}},
		},
		{
			name: "reads a bucket of an S3-compatible store and its keys",
			env: map[string]string{"EDUTRACK_BLOB_URL": "s3://certificates?region=eu-west-1&endpoint=http://seaweedfs:8333&use_path_style=true",
				"EDUTRACK_S3_ACCESS_KEY_ID": "id", "EDUTRACK_S3_SECRET_ACCESS_KEY": "secret"},
			want: config{httpAddr: ":8080", dataDir: "./data", shutdownTimeout: 20 * time.Second, consistencyWait: 3 * time.Second,
				cacheEntries: 100_000, catalogMaxAge: time.Second, logLevel: slog.LevelInfo, logFormat: "text", roles: roles{write: true, project: true, react: true, work: true, read: true}, xapiHomePage: "https://edutrack.invalid",
				leaseTTL: 10 * time.Second, access: defaultAccess(), anchors: anchoring{every: time.Second}, files: defaultFiles, media: defaultMedia,
				blobS3: &s3Config{url: &url.URL{Scheme: "s3", Host: "certificates", RawQuery: "region=eu-west-1&endpoint=http://seaweedfs:8333&use_path_style=true"},
					accessKeyID: "id", secretAccessKey: "secret"}},
		},
		{
			name: "lets flags override the environment",
			env:  map[string]string{"EDUTRACK_HTTP_ADDR": "127.0.0.1:9000", "EDUTRACK_DATA_DIR": "/srv/edutrack"},
			args: []string{"-http-addr", ":7000", "-data-dir", "/tmp/x", "-shutdown-timeout", "1m", "-consistency-wait", "1s",
				"-cache-entries", "10", "-log-level", "warn", "-roles", "write,project", "-lease-ttl", "1m"},
			want: config{httpAddr: ":7000", dataDir: "/tmp/x", shutdownTimeout: time.Minute, consistencyWait: time.Second,
				cacheEntries: 10, catalogMaxAge: time.Second, logLevel: slog.LevelWarn, logFormat: "text", roles: roles{write: true, project: true}, xapiHomePage: "https://edutrack.invalid",
				leaseTTL: time.Minute, access: defaultAccess(), anchors: anchoring{every: time.Second}, files: defaultFiles, media: defaultMedia},
		},
		{
			name: "reports every invalid setting at once",
			env: map[string]string{"EDUTRACK_HTTP_ADDR": "nohost", "EDUTRACK_SHUTDOWN_TIMEOUT": "-1s", "EDUTRACK_LOG_LEVEL": "loud",
				"EDUTRACK_CONSISTENCY_WAIT": "0s", "EDUTRACK_CACHE_ENTRIES": "many", "EDUTRACK_ROLES": "write,cook",
				"EDUTRACK_LEASE_TTL": "10ms", "EDUTRACK_ESDB_URL": "http://kurrentdb:2113"},
			args: []string{"-data-dir", " "},
			wantErr: []string{"EDUTRACK_HTTP_ADDR", "EDUTRACK_DATA_DIR", "EDUTRACK_SHUTDOWN_TIMEOUT", "EDUTRACK_LOG_LEVEL",
				"EDUTRACK_CONSISTENCY_WAIT", "EDUTRACK_CACHE_ENTRIES", "EDUTRACK_ROLES", "EDUTRACK_LEASE_TTL", "EDUTRACK_ESDB_URL"},
		},
		{
			name:    "refuses a negative cache size given as a flag",
			args:    []string{"-cache-entries", "-5"},
			wantErr: []string{"EDUTRACK_CACHE_ENTRIES"},
		},
		{
			name: "reads a catalog max age of 0, which serves a catalog page only until the catalog changes",
			env:  map[string]string{"EDUTRACK_CATALOG_MAX_AGE": "0s"},
			want: func() config { c := defaults(defaultAccess()); c.catalogMaxAge = 0; return c }(),
		},
		{
			name:    "refuses a negative catalog max age",
			args:    []string{"-catalog-max-age", "-1s"},
			wantErr: []string{"EDUTRACK_CATALOG_MAX_AGE"},
		},
		{
			name:    "refuses a catalog max age that is not a duration",
			env:     map[string]string{"EDUTRACK_CATALOG_MAX_AGE": "soon"},
			wantErr: []string{"EDUTRACK_CATALOG_MAX_AGE"},
		},
		{
			name:    "refuses a shutdown timeout that is not a duration",
			env:     map[string]string{"EDUTRACK_SHUTDOWN_TIMEOUT": "20"},
			wantErr: []string{"EDUTRACK_SHUTDOWN_TIMEOUT"},
		},
		{
			name: "reads the access settings",
			env: map[string]string{"EDUTRACK_JWT_KEY_FILE": keyFile, "EDUTRACK_JWT_AUDIENCE": "school", "EDUTRACK_JWT_ROLE_CLAIM": "edutrack_role",
				"EDUTRACK_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7", "EDUTRACK_CORS_ORIGINS": "https://school.example, http://localhost:5173",
				"EDUTRACK_RATE_LIMIT_IP": "600/1m", "EDUTRACK_RATE_LIMIT_USER": "off", "EDUTRACK_REQUEST_TIMEOUT": "5s"},
			want: defaults(withAccess(func(a *access) {
				a.jwtKey, a.audience, a.roleClaim = []byte(testKey), "school", "edutrack_role"
				a.trustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}
				a.corsOrigins = []string{"https://school.example", "http://localhost:5173"}
				a.perIP, a.perUser, a.requestTimeout = ratelimit.Limit{Requests: 600, Period: time.Minute}, ratelimit.Limit{}, 5*time.Second
			})),
		},
		{
			name: "turns authentication off only when told to",
			env:  map[string]string{"EDUTRACK_AUTH": "disabled", "EDUTRACK_ESDB_URL": "kurrentdb://127.0.0.1:2113?tls=false"},
			want: func() config {
				c := defaults(withAccess(func(a *access) { a.disabled = true }))
				c.esdbURL = "kurrentdb://127.0.0.1:2113?tls=false"
				return c
			}(),
		},
		{
			name: "reports every invalid access setting at once",
			env: map[string]string{"EDUTRACK_AUTH": "off", "EDUTRACK_JWT_KEY": "short", "EDUTRACK_OIDC_ISSUER": "http://idp.example",
				"EDUTRACK_TRUSTED_PROXIES": "everyone", "EDUTRACK_CORS_ORIGINS": "*", "EDUTRACK_RATE_LIMIT_IP": "fast",
				"EDUTRACK_RATE_LIMIT_USER": "10/0s", "EDUTRACK_REQUEST_TIMEOUT": "1h"},
			wantErr: []string{"EDUTRACK_AUTH", "EDUTRACK_JWT_KEY:", "EDUTRACK_OIDC_ISSUER and EDUTRACK_JWT_KEY", "EDUTRACK_OIDC_ISSUER \"http",
				"EDUTRACK_TRUSTED_PROXIES", "EDUTRACK_CORS_ORIGINS", "EDUTRACK_RATE_LIMIT_IP", "EDUTRACK_RATE_LIMIT_USER", "EDUTRACK_REQUEST_TIMEOUT"},
		},
		{
			name: "reads the caps on live streams",
			env:  map[string]string{"EDUTRACK_LIVE_MAX_TOPICS": "5", "EDUTRACK_LIVE_MAX_PER_USER": "3", "EDUTRACK_LIVE_MAX_PER_ADDRESS": "20000"},
			args: []string{"-live-buffer", "16"},
			want: defaults(withAccess(func(a *access) { a.live = liveLimits{maxTopics: 5, maxPerUser: 3, maxPerAddress: 20000, buffer: 16} })),
		},
		{
			name: "reports every invalid cap on live streams",
			env: map[string]string{"EDUTRACK_LIVE_MAX_TOPICS": "0", "EDUTRACK_LIVE_MAX_PER_USER": "many", "EDUTRACK_LIVE_MAX_PER_ADDRESS": "-1",
				"EDUTRACK_LIVE_BUFFER": "100000"},
			wantErr: []string{"EDUTRACK_LIVE_MAX_TOPICS", "EDUTRACK_LIVE_MAX_PER_USER", "EDUTRACK_LIVE_MAX_PER_ADDRESS", "EDUTRACK_LIVE_BUFFER"},
		},
		{
			name:    "wants a key of the deployment's own on KurrentDB",
			env:     map[string]string{"EDUTRACK_ESDB_URL": "kurrentdb://127.0.0.1:2113?tls=false"},
			wantErr: []string{"must share one key"},
		},
		{
			name:    "refuses a key file too short to be a key",
			env:     map[string]string{"EDUTRACK_JWT_KEY_FILE": shortKeyFile},
			wantErr: []string{"EDUTRACK_JWT_KEY_FILE"},
		},
		{
			name: "reads the anchor settings",
			env:  map[string]string{"EDUTRACK_DATA_DIR": dataDir, "EDUTRACK_ANCHOR_KEY_FILE": anchorKeyFile, "EDUTRACK_ANCHOR_INTERVAL": "250ms"},
			want: func() config {
				c := defaults(defaultAccess())
				c.dataDir, c.anchors = dataDir, anchoring{key: []byte(testAnchorKey), keyFile: anchorKeyFile, every: 250 * time.Millisecond}
				return c
			}(),
		},
		{
			name: "keeps the generated anchor key in the user's config dir",
			env:  map[string]string{"XDG_CONFIG_HOME": "/srv/config", "HOME": "/home/ada"},
			want: func() config {
				c := defaults(defaultAccess())
				c.anchors.defaultFile = "/srv/config/edutrack/anchor.key"
				c.files.defaultKeyFile = "/srv/config/edutrack/file-url.key"
				return c
			}(),
		},
		{
			name: "finds the user's config dir in the home directory",
			env:  map[string]string{"HOME": "/home/ada"},
			want: func() config {
				c := defaults(defaultAccess())
				c.anchors.defaultFile = "/home/ada/.config/edutrack/anchor.key"
				c.files.defaultKeyFile = "/home/ada/.config/edutrack/file-url.key"
				return c
			}(),
		},
		{
			name:    "reports every invalid anchor setting at once",
			env:     map[string]string{"EDUTRACK_ANCHOR_KEY": "short", "EDUTRACK_ANCHOR_INTERVAL": "1ms", "EDUTRACK_HTTP_ADDR": "nohost"},
			wantErr: []string{"EDUTRACK_ANCHOR_KEY: 5 bytes", "EDUTRACK_ANCHOR_INTERVAL", "EDUTRACK_HTTP_ADDR"},
		},
		{
			name:    "refuses an anchor key given twice",
			env:     map[string]string{"EDUTRACK_ANCHOR_KEY": testAnchorKey, "EDUTRACK_ANCHOR_KEY_FILE": anchorKeyFile},
			wantErr: []string{"EDUTRACK_ANCHOR_KEY and EDUTRACK_ANCHOR_KEY_FILE"},
		},
		{
			name:    "refuses an anchor key file inside the data dir",
			env:     map[string]string{"EDUTRACK_DATA_DIR": dataDir, "EDUTRACK_ANCHOR_KEY_FILE": keyInData, "EDUTRACK_JWT_KEY": "short"},
			wantErr: []string{"is inside the data dir", "EDUTRACK_JWT_KEY:"},
		},
		{
			name:    "refuses a blob URL that is no directory nor bucket, and a public URL that is no web address",
			env:     map[string]string{"EDUTRACK_BLOB_URL": "gs://certificates", "EDUTRACK_PUBLIC_URL": "ftp://school.example"},
			wantErr: []string{"EDUTRACK_BLOB_URL \"gs://certificates\"", "EDUTRACK_PUBLIC_URL \"ftp://school.example\""},
		},
		{
			name: "refuses a bucket URL with keys, a path, a parameter s3blob lacks or a bad value, and half a key pair",
			env: map[string]string{"EDUTRACK_BLOB_URL": "s3://id:secret@certificates/pdfs?region=eu-west-1&use_path_style=yes&acl=public&endpoint=seaweedfs:8333",
				"EDUTRACK_S3_ACCESS_KEY_ID": "id"},
			wantErr: []string{"keys go in EDUTRACK_S3_ACCESS_KEY_ID", "the bucket's name as host and no path", `unknown parameter "acl"`,
				`parameter "use_path_style": want true or false`, `endpoint "seaweedfs:8333"`, "EDUTRACK_S3_ACCESS_KEY_ID and EDUTRACK_S3_SECRET_ACCESS_KEY: set both"},
		},
		{
			name: "takes the module files' limits, expiries and key",
			env: map[string]string{"EDUTRACK_FILE_MAX_SIZE": "1073741824", "EDUTRACK_FILE_TYPES": " application/pdf, Video/MP4 ,application/pdf",
				"EDUTRACK_FILE_UPLOAD_EXPIRY": "1h", "EDUTRACK_FILE_DOWNLOAD_EXPIRY": "30s", "EDUTRACK_FILE_URL_KEY": testAnchorKey},
			want: func() config {
				c := defaults(defaultAccess())
				c.files = fileConfig{limits: course.FileLimits{MaxSize: 1 << 30, Types: []string{"application/pdf", "video/mp4"}},
					uploadExpiry: time.Hour, downloadExpiry: 30 * time.Second, urlKey: []byte(testAnchorKey)}
				return c
			}(),
		},
		{
			name: "reports every invalid module file setting at once",
			env: map[string]string{"EDUTRACK_FILE_MAX_SIZE": "100MB", "EDUTRACK_FILE_TYPES": "application/pdf,pdf", "EDUTRACK_FILE_UPLOAD_EXPIRY": "0s",
				"EDUTRACK_FILE_DOWNLOAD_EXPIRY": "200h", "EDUTRACK_FILE_URL_KEY": "short"},
			wantErr: []string{"EDUTRACK_FILE_MAX_SIZE \"100MB\"", `EDUTRACK_FILE_TYPES: "pdf" is not a media type`, "EDUTRACK_FILE_UPLOAD_EXPIRY", "EDUTRACK_FILE_DOWNLOAD_EXPIRY",
				"EDUTRACK_FILE_URL_KEY: 5 bytes"},
		},
		{
			name:    "refuses a file URL key file inside the data dir",
			env:     map[string]string{"EDUTRACK_DATA_DIR": dataDir, "EDUTRACK_FILE_URL_KEY_FILE": keyInData},
			wantErr: []string{"EDUTRACK_FILE_URL_KEY_FILE " + keyInData + " is inside the data dir"},
		},
		{
			name:    "refuses S3 keys without a bucket to use them on",
			env:     map[string]string{"EDUTRACK_S3_ACCESS_KEY_ID": "id", "EDUTRACK_S3_SECRET_ACCESS_KEY": "secret"},
			wantErr: []string{"EDUTRACK_S3_ACCESS_KEY_ID: set, but EDUTRACK_BLOB_URL is not an s3:// bucket"},
		},
		{
			name:    "refuses a data dir that holds the anchor key's default place",
			env:     map[string]string{"HOME": dir, "EDUTRACK_DATA_DIR": dir},
			wantErr: []string{"its default place " + filepath.Join(dir, ".config", "edutrack", "anchor.key") + " is inside the data dir"},
		},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			got, err := loadConfig(tc.args, func(k string) string { return tc.env[k] }, &bytes.Buffer{})
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("loadConfig = %+v, want an error", got)
				}
				for _, part := range tc.wantErr {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not name %s", err, part)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(config{}, roles{}, access{}, anchoring{}, liveLimits{}, s3Config{}, fileConfig{}, mediaConfig{}), cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
