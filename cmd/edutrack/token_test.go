package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/problem"
)

func TestTokenCommand(t *testing.T) {
	t.Parallel()
	mintWith := func(t *testing.T, env map[string]string, args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"token"}, args...), func(k string) string { return env[k] }, &out, io.Discard, nil)
		return strings.TrimSpace(out.String()), err
	}
	verify := func(t *testing.T, key []byte, token string, opts auth.Options) (domain.Actor, error) {
		t.Helper()
		v, err := auth.NewVerifier(key, opts)
		if err != nil {
			t.Fatal(err)
		}
		return v.Verify(context.Background(), token)
	}

	t.Run("mints_a_token_the_server_accepts_with_its_key_and_audience", func(t *testing.T) {
		token, err := mintWith(t, map[string]string{"EDUTRACK_JWT_KEY": testKey, "EDUTRACK_JWT_AUDIENCE": "school"},
			"--sub", "ada", "--role", "learner", "--ttl", "10m")
		if err != nil {
			t.Fatal(err)
		}
		p, err := verify(t, []byte(testKey), token, auth.Options{Audience: "school"})
		if err != nil || p != (domain.Actor{UserID: "ada", Role: domain.Learner}) {
			t.Errorf("the minted token verifies as %+v (%v), want ada the learner", p, err)
		}
		if _, err := verify(t, []byte(testKey), token, auth.Options{Audience: "school", Now: func() time.Time { return time.Now().Add(11 * time.Minute) }}); err == nil {
			t.Error("the token is still valid past its 10m TTL")
		}
	})

	t.Run("mints_with_the_key_in_the_data_dir", func(t *testing.T) {
		dir := t.TempDir()
		key, err := auth.LoadOrCreateKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		token, err := mintWith(t, map[string]string{"EDUTRACK_DATA_DIR": dir}, "--sub", "root", "--role", "admin")
		if err != nil {
			t.Fatal(err)
		}
		if p, err := verify(t, key, token, auth.Options{}); err != nil || p.Role != domain.Admin {
			t.Errorf("verifies as %+v (%v), want an admin", p, err)
		}
	})

	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"refuses_without_a_subject", map[string]string{"EDUTRACK_JWT_KEY": testKey}, []string{"--role", "admin"}, "--sub and --role"},
		{"refuses_an_unknown_role", map[string]string{"EDUTRACK_JWT_KEY": testKey}, []string{"--sub", "x", "--role", "root"}, "unknown role"},
		{"refuses_a_subject_that_is_no_user_id", map[string]string{"EDUTRACK_JWT_KEY": testKey}, []string{"--sub", "Ada Lovelace", "--role", "learner"}, "no user id"},
		{"refuses_a_subject_in_capitals", map[string]string{"EDUTRACK_JWT_KEY": testKey}, []string{"--sub", "ADA", "--role", "learner"}, "no user id"},
		{"refuses_to_make_a_key_the_server_does_not_use", map[string]string{"EDUTRACK_DATA_DIR": "/nonexistent/edutrack"},
			[]string{"--sub", "x", "--role", "admin"}, "start the server once"},
		{"refuses_when_tokens_come_from_an_OIDC_provider", map[string]string{"EDUTRACK_OIDC_ISSUER": "https://idp.example"},
			[]string{"--sub", "x", "--role", "admin"}, "OIDC"},
		{"refuses_when_authentication_is_disabled", map[string]string{"EDUTRACK_AUTH": "disabled"},
			[]string{"--sub", "x", "--role", "admin"}, "disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, err := mintWith(t, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || token != "" {
				t.Errorf("token %q, error %v; want no token and an error naming %q", token, err, tc.wantErr)
			}
		})
	}

	t.Run("gives_ops_commands_an_admin_token", func(t *testing.T) {
		token, err := adminToken(func(k string) string { return map[string]string{"EDUTRACK_JWT_KEY": testKey}[k] })
		if err != nil {
			t.Fatal(err)
		}
		if p, err := verify(t, []byte(testKey), token, auth.Options{}); err != nil || p != (domain.Actor{UserID: cliSubject, Role: domain.Admin}) {
			t.Errorf("verifies as %+v (%v), want %s the admin", p, err, cliSubject)
		}
		given, err := adminToken(func(k string) string { return map[string]string{"EDUTRACK_TOKEN": "given"}[k] })
		if err != nil || given != "given" {
			t.Errorf("with EDUTRACK_TOKEN: %q, %v; want it as it is", given, err)
		}
		none, err := adminToken(func(k string) string { return map[string]string{"EDUTRACK_AUTH": "disabled"}[k] })
		if err != nil || none != "" {
			t.Errorf("with authentication disabled: %q, %v; want no token", none, err)
		}
	})
}

func TestKeyFileOfTheEmbeddedDefault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startWith(t, dir, &logTracker{}, map[string]string{"EDUTRACK_JWT_KEY": ""})
	s.early = true // the test's tokens are signed with another key
	fi, err := os.Stat(filepath.Join(dir, auth.KeyFileName))
	if err != nil {
		t.Fatalf("no key in the data dir: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the key file has mode %04o, want 0600: whoever reads it can mint admin tokens", fi.Mode().Perm())
	}
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // a store call that honours its context
		problem.Write(w, r, log, r.Context().Err())
	})
	w := httptest.NewRecorder()
	deadline(10*time.Millisecond)(slow).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/courses", nil))
	var d problem.Details
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil || w.Code != http.StatusServiceUnavailable {
		t.Fatalf("a request past its deadline: %d %s, want 503", w.Code, w.Body)
	}
	if diff := cmp.Diff(problem.Details{Type: "about:blank", Title: "Service Unavailable", Status: 503, Instance: "/v1/courses",
		Detail: "the request took longer than the server allows; retry it"}, d); diff != "" {
		t.Errorf("problem (-want +got):\n%s", diff)
	}
}
