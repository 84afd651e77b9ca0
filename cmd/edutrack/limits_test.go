package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/testredis"
)

// rawGet sends a GET with exactly the headers given, as name, value pairs: no token is added.
func rawGet(t *testing.T, s *server, path string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{Transport: s.client.Transport.(callerTransport).base, Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// wantLimited checks a 429 with a Retry-After of whole seconds, within the period.
func wantLimited(t *testing.T, resp *http.Response, period time.Duration) {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", resp.StatusCode)
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs < 1 || time.Duration(secs)*time.Second > period {
		t.Errorf("Retry-After %q, want whole seconds up to %s", resp.Header.Get("Retry-After"), period)
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()

	t.Run("limits_each_user_to_their_budget", func(t *testing.T) {
		s := startWith(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_RATE_LIMIT_USER": "3/1h"})
		ada := bearer("ada", domain.Learner)
		for i := range 3 {
			if resp := rawGet(t, s, "/v1/courses", "Authorization", ada); resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d of 3: %d", i+1, resp.StatusCode)
			}
		}
		wantLimited(t, rawGet(t, s, "/v1/courses", "Authorization", ada), time.Hour)
		// Another user has a budget of their own, from the same address.
		if resp := rawGet(t, s, "/v1/courses", "Authorization", bearer("bob", domain.Learner)); resp.StatusCode != http.StatusOK {
			t.Errorf("bob after ada spent hers: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("limits_each_client_address_for_anonymous_requests_and_refused_tokens", func(t *testing.T) {
		s := startWith(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_RATE_LIMIT_IP": "3/1h"})
		s.early = true // stop's settling would find the address's budget spent
		// A school behind one NAT address: its authenticated users spend their own budgets.
		for i, u := range []string{"ada", "bob", "cyd", "dee", "eve", "fay"} {
			if resp := rawGet(t, s, "/v1/courses", "Authorization", bearer(u, domain.Learner)); resp.StatusCode != http.StatusOK {
				t.Fatalf("learner %d of one address: %d, want 200", i+1, resp.StatusCode)
			}
		}
		// Three refused tokens spend the address's budget; the next is refused and locks it.
		for i := range 4 {
			if resp := rawGet(t, s, "/v1/courses", "Authorization", "Bearer not-a-token"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("refused token %d: %d, want 401", i+1, resp.StatusCode)
			}
		}
		wantLimited(t, rawGet(t, s, "/v1/courses", "Authorization", "Bearer not-a-token"), time.Hour)
		wantLimited(t, rawGet(t, s, "/v1/courses"), time.Hour)
		// A client cannot buy a fresh budget by naming another address: no proxy is trusted.
		wantLimited(t, rawGet(t, s, "/v1/courses", "X-Forwarded-For", "203.0.113.9"), time.Hour)
		if resp := rawGet(t, s, "/healthz"); resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz with the address's budget spent: %d, want 200: probes are not limited", resp.StatusCode)
		}
	})

	t.Run("believes_X-Forwarded-For_from_trusted_proxies", func(t *testing.T) {
		s := startWith(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_RATE_LIMIT_IP": "2/1h", "EDUTRACK_TRUSTED_PROXIES": "127.0.0.1"})
		s.early = true
		// Anonymous requests spend the address's budget: 401 within it, 429 past it.
		for range 2 {
			if resp := rawGet(t, s, "/v1/courses", "X-Forwarded-For", "203.0.113.9"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("203.0.113.9: %d, want 401", resp.StatusCode)
			}
		}
		wantLimited(t, rawGet(t, s, "/v1/courses", "X-Forwarded-For", "203.0.113.9"), time.Hour)
		// The client's own X-Forwarded-For entries left of the proxy's are not believed.
		wantLimited(t, rawGet(t, s, "/v1/courses", "X-Forwarded-For", "198.51.100.1, 203.0.113.9"), time.Hour)
		if resp := rawGet(t, s, "/v1/courses", "X-Forwarded-For", "203.0.113.10"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("another client behind the proxy: %d, want 401, not 429", resp.StatusCode)
		}
	})

	t.Run("shares_the_budgets_of_every_process_through_Redis", func(t *testing.T) {
		redisURL := "redis://" + testredis.Start(t) + "/0"
		env := map[string]string{"EDUTRACK_RATE_LIMIT_USER": "3/1h", "EDUTRACK_REDIS_URL": redisURL}
		a := startWith(t, t.TempDir(), &logTracker{}, env)
		b := startWith(t, t.TempDir(), &logTracker{}, env)
		ada := bearer("ada", domain.Learner)
		for i, s := range []*server{a, b, a} {
			if resp := rawGet(t, s, "/v1/courses", "Authorization", ada); resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d of 3: %d", i+1, resp.StatusCode)
			}
		}
		wantLimited(t, rawGet(t, b, "/v1/courses", "Authorization", ada), time.Hour)
	})
}

func TestCORS(t *testing.T) {
	t.Parallel()
	preflight := func(t *testing.T, s *server, origin string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodOptions, s.base+"/v1/courses", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		resp, err := (&http.Client{Transport: s.client.Transport.(callerTransport).base}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	t.Run("lets_no_origin_in_by_default", func(t *testing.T) {
		s := start(t, t.TempDir(), &logTracker{})
		if got := preflight(t, s, "https://school.example").Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight without configured origins: Access-Control-Allow-Origin %q, want none", got)
		}
	})

	t.Run("lets_the_configured_origins_in_and_no_other", func(t *testing.T) {
		s := startWith(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_CORS_ORIGINS": "https://school.example"})
		resp := preflight(t, s, "https://school.example")
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://school.example" ||
			!strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization") {
			t.Errorf("preflight from the school: %d %v, want the origin allowed with the Authorization header", resp.StatusCode, resp.Header)
		}
		if got := preflight(t, s, "https://evil.example").Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight from another origin: Access-Control-Allow-Origin %q, want none", got)
		}
		// A 401 carries the CORS headers too, so the page can tell its user to sign in again.
		resp = rawGet(t, s, "/v1/courses", "Origin", "https://school.example")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != "https://school.example" {
			t.Errorf("GET without a token from the school: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})
}
