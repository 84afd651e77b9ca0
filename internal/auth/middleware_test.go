package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/problem"
)

// echoPrincipal answers 200 with the caller it finds in the context.
var echoPrincipal = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, ok := FromContext(r.Context())
	if !ok {
		http.Error(w, "no principal", http.StatusTeapot)
		return
	}
	json.NewEncoder(w).Encode(p)
})

func serve(h http.Handler, authorization ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/v1/courses", nil)
	for _, a := range authorization {
		r.Header.Add("Authorization", a)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAuthenticator(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := NewAuthenticator(newTestVerifier(t), log)
	if err != nil {
		t.Fatal(err)
	}
	h := a.Middleware(echoPrincipal)
	valid := sign(t, jwt.SigningMethodHS256, testKey, claimsAt(t0), nil)
	expiredClaims := claimsAt(t0)
	expiredClaims["exp"] = t0.Add(-time.Hour).Unix()
	expired := sign(t, jwt.SigningMethodHS256, testKey, expiredClaims, nil)
	forged := sign(t, jwt.SigningMethodHS256, otherKey, claimsAt(t0), nil)

	t.Run("passes_a_valid_token's_principal_on", func(t *testing.T) {
		for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
			w := serve(h, scheme+" "+valid)
			if w.Code != http.StatusOK {
				t.Fatalf("%s: status %d; want 200: %s", scheme, w.Code, w.Body)
			}
			var got domain.Actor
			json.Unmarshal(w.Body.Bytes(), &got)
			if diff := cmp.Diff(domain.Actor{UserID: "u-ada", Role: domain.Learner}, got); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
		}
	})

	tests := []struct {
		name          string
		authorization []string
		challenge     string
		detail        string
	}{
		{"answers_a_request_without_a_token_with_a_bare_challenge", nil,
			`Bearer realm="edutrack"`, "a bearer token is required"},
		{"answers_another_scheme_with_a_bare_challenge", []string{"Basic dXNlcjpwYXNz"},
			`Bearer realm="edutrack"`, "a bearer token is required"},
		{"answers_an_empty_bearer_token_as_invalid", []string{"Bearer "},
			`Bearer realm="edutrack", error="invalid_token", error_description="the token is not valid"`, "the token is not valid"},
		{"answers_a_forged_token_as_invalid", []string{"Bearer " + forged},
			`Bearer realm="edutrack", error="invalid_token", error_description="the token is not valid"`, "the token is not valid"},
		{"says_when_the_token_expired", []string{"Bearer " + expired},
			`Bearer realm="edutrack", error="invalid_token", error_description="the token has expired"`, "the token has expired"},
		{"refuses_two_authorization_headers", []string{"Bearer " + valid, "Bearer " + valid},
			`Bearer realm="edutrack", error="invalid_token", error_description="the token is not valid"`, "the token is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(h, tt.authorization...)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d; want 401", w.Code)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %s; want %s", got, tt.challenge)
			}
			if got := w.Header().Get("Content-Type"); got != problem.ContentType {
				t.Errorf("Content-Type = %s; want %s", got, problem.ContentType)
			}
			var d problem.Details
			if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
				t.Fatal(err)
			}
			want := problem.Details{Type: "about:blank", Title: "Unauthorized", Status: 401, Detail: tt.detail, Instance: "/v1/courses", Field: "Authorization"}
			if diff := cmp.Diff(want, d); diff != "" {
				t.Errorf("problem (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("never_logs_a_token", func(t *testing.T) {
		for _, tok := range []string{valid, expired, forged} {
			if strings.Contains(logs.String(), tok) || strings.Contains(logs.String(), strings.Split(tok, ".")[1]) {
				t.Fatalf("the log holds a token: %s", logs.String())
			}
		}
		if !strings.Contains(logs.String(), "token refused") {
			t.Fatalf("refusals are not logged at debug level: %q", logs.String())
		}
	})

	t.Run("needs_a_verifier_and_a_logger", func(t *testing.T) {
		if _, err := NewAuthenticator(nil, log); err == nil {
			t.Error("accepted a nil verifier")
		}
		if _, err := NewAuthenticator(newTestVerifier(t), nil); err == nil {
			t.Error("accepted a nil logger")
		}
		if _, err := NewDisabledAuthenticator(nil); err == nil {
			t.Error("NewDisabledAuthenticator accepted a nil logger")
		}
	})
}

func TestDisabledAuthenticator(t *testing.T) {
	var logs bytes.Buffer
	a, err := NewDisabledAuthenticator(slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "authentication is disabled") {
		t.Errorf("no warning that authentication is off: %q", logs.String())
	}
	for _, authz := range [][]string{nil, {"Bearer not-a-token"}} {
		w := serve(a.Middleware(echoPrincipal), authz...)
		var got domain.Actor
		json.Unmarshal(w.Body.Bytes(), &got)
		if w.Code != http.StatusOK || got != (domain.Actor{UserID: DisabledSubject, Role: domain.Admin}) {
			t.Errorf("Authorization %q: status %d, principal %+v; want 200 as the disabled admin", authz, w.Code, got)
		}
	}
}

func TestRequire(t *testing.T) {
	ctx := func(r domain.Role) context.Context {
		return NewContext(context.Background(), domain.Actor{UserID: "u-ada", Role: r})
	}
	t.Run("lets_a_listed_role_through", func(t *testing.T) {
		if err := Require(ctx(domain.Instructor), domain.Admin, domain.Instructor); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("answers_another_role_403", func(t *testing.T) {
		err := Require(ctx(domain.Learner), domain.Admin, domain.Instructor)
		var pe *problem.Error
		if !errors.As(err, &pe) || pe.Status != http.StatusForbidden {
			t.Fatalf("Require = %v; want a 403 problem", err)
		}
	})
	t.Run("fails_closed_without_a_principal", func(t *testing.T) {
		err := Require(context.Background(), domain.Admin)
		if err == nil {
			t.Fatal("Require let a request without principal through")
		}
		if d := problem.From(err); d.Status != http.StatusInternalServerError {
			t.Fatalf("status %d; want 500: a route without the authenticator is a wiring bug", d.Status)
		}
	})
	t.Run("restrict_answers_403_as_a_problem", func(t *testing.T) {
		h := Restrict(slog.New(slog.DiscardHandler), domain.Admin)(echoPrincipal)
		r := httptest.NewRequest(http.MethodPost, "/v1/courses", nil).WithContext(ctx(domain.Auditor))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden || w.Header().Get("Content-Type") != problem.ContentType {
			t.Fatalf("status %d, Content-Type %s; want 403 problem", w.Code, w.Header().Get("Content-Type"))
		}
		if !strings.Contains(w.Body.String(), "the auditor role may not do this") {
			t.Errorf("body %s does not say which role was refused", w.Body)
		}
		r = httptest.NewRequest(http.MethodPost, "/v1/courses", nil).WithContext(ctx(domain.Admin))
		w = httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("admin: status %d; want 200", w.Code)
		}
	})
}
