package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edutrack/edutrack/internal/auth/clientip"
)

func TestAddressBudget(t *testing.T) {
	// A stand-in authenticator: the token "good" is admitted, any other refused with 401.
	authenticate := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "Bearer unchecked" { // as a ticket store that is down
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			if r.Header.Get("Authorization") != "Bearer good" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	offers := func(r *http.Request) bool { return r.Header.Get("Authorization") != "" }
	setup := func(t *testing.T, c *clock) http.Handler {
		t.Helper()
		b, err := NewAddressBudget(memoryAt(c), threePerHour, ByIP(clientip.New()), offers, discard)
		if err != nil {
			t.Fatal(err)
		}
		b.now = c.Now
		return b.Before(authenticate(b.Admitted(ok)))
	}
	do := func(h http.Handler, token string) int {
		r := httptest.NewRequest(http.MethodGet, "/v1/courses", nil)
		r.RemoteAddr = "203.0.113.5:4711" // one NAT address for every request
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}

	t.Run("authenticated_callers_do_not_spend_it", func(t *testing.T) {
		h := setup(t, &clock{now: t0})
		for i := range 50 {
			if code := do(h, "good"); code != http.StatusNoContent {
				t.Fatalf("authenticated request %d from one address: %d, want 204", i+1, code)
			}
		}
		for i := range 3 {
			if code := do(h, ""); code != http.StatusUnauthorized {
				t.Fatalf("anonymous request %d of the budget: %d, want 401 from the authenticator", i+1, code)
			}
		}
		if code := do(h, ""); code != http.StatusTooManyRequests {
			t.Fatalf("anonymous request past the budget: %d, want 429", code)
		}
		if code := do(h, "good"); code != http.StatusNoContent {
			t.Fatalf("authenticated request once anonymous ones spent the address: %d, want 204", code)
		}
	})

	t.Run("refused_tokens_spend_it_and_then_are_not_checked", func(t *testing.T) {
		c := &clock{now: t0}
		h := setup(t, c)
		// Three refusals spend the budget; the fourth finds it spent and locks the address.
		for i := range 4 {
			if code := do(h, "guess"); code != http.StatusUnauthorized {
				t.Fatalf("guess %d: %d, want 401", i+1, code)
			}
		}
		for _, token := range []string{"guess", "good"} {
			if code := do(h, token); code != http.StatusTooManyRequests {
				t.Fatalf("token %q from a locked address: %d, want 429 before it is checked", token, code)
			}
		}
		if code := do(h, ""); code != http.StatusTooManyRequests {
			t.Fatalf("anonymous request from an address refusals spent: %d, want 429", code)
		}
		// Once the budget allows a request again, the lock is gone.
		c.advance(20 * time.Minute)
		if code := do(h, "good"); code != http.StatusNoContent {
			t.Fatalf("authenticated request once the budget refilled: %d, want 204", code)
		}
	})

	t.Run("credentials_that_could_not_be_checked_do_not_spend_it", func(t *testing.T) {
		h := setup(t, &clock{now: t0})
		for i := range 10 {
			if code := do(h, "unchecked"); code != http.StatusServiceUnavailable {
				t.Fatalf("request %d whose credentials could not be checked: %d, want 503", i+1, code)
			}
		}
		for i := range 3 {
			if code := do(h, ""); code != http.StatusUnauthorized {
				t.Fatalf("anonymous request %d after the 503s: %d, want the budget whole", i+1, code)
			}
		}
	})

	t.Run("refuses_missing_dependencies", func(t *testing.T) {
		if _, err := NewAddressBudget(NewMemory(), threePerHour, ByIP(clientip.New()), nil, discard); err == nil {
			t.Error("no credentials test: no error")
		}
		if _, err := NewAddressBudget(NewMemory(), Limit{}, ByIP(clientip.New()), offers, discard); err == nil {
			t.Error("a zero limit: no error")
		}
	})
}
