package cors_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edutrack/edutrack/internal/auth/cors"
)

var ok = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

func preflight(h http.Handler, origin, method, headers string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodOptions, "/v1/courses", nil)
	r.Header.Set("Origin", origin)
	r.Header.Set("Access-Control-Request-Method", method)
	if headers != "" {
		r.Header.Set("Access-Control-Request-Headers", headers)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func get(h http.Handler, origin string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/v1/courses", nil)
	r.Header.Set("Origin", origin)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestNew(t *testing.T) {
	t.Run("adds_nothing_when_no_origin_is_configured", func(t *testing.T) {
		mw, err := cors.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		h := mw(ok)
		if w := get(h, "https://school.example"); w.Header().Get("Access-Control-Allow-Origin") != "" || w.Code != http.StatusNoContent {
			t.Fatalf("status %d, headers %v; want the request passed on untouched", w.Code, w.Header())
		}
		if w := preflight(h, "https://school.example", "POST", "authorization"); w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("a preflight was allowed with CORS off: %v", w.Header())
		}
	})

	mw, err := cors.New([]string{"https://school.example", "http://localhost:5173"})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(ok)

	t.Run("allows_a_configured_origin_to_send_a_token", func(t *testing.T) {
		w := preflight(h, "https://school.example", "PATCH", "authorization, content-type, idempotency-key")
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != "https://school.example" {
			t.Fatalf("Access-Control-Allow-Origin = %q; want the origin", got)
		}
		if got := w.Header().Get("Access-Control-Allow-Methods"); got != "PATCH" {
			t.Errorf("Access-Control-Allow-Methods = %q; want PATCH", got)
		}
		if got := w.Header().Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("Access-Control-Allow-Credentials = %q; want none: tokens are not cookies", got)
		}
		if got := w.Header().Get("Access-Control-Max-Age"); got != "600" {
			t.Errorf("Access-Control-Max-Age = %q; want 600", got)
		}
	})

	t.Run("lets_a_client_resume_a_live_stream", func(t *testing.T) {
		w := preflight(h, "https://school.example", "GET", "authorization, last-event-id")
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != "https://school.example" {
			t.Fatalf("Access-Control-Allow-Origin = %q; want the origin", got)
		}
	})

	t.Run("exposes_the_headers_clients_read", func(t *testing.T) {
		w := get(h, "http://localhost:5173")
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != "http://localhost:5173" {
			t.Fatalf("Access-Control-Allow-Origin = %q", got)
		}
		if got := w.Header().Get("Access-Control-Expose-Headers"); got != "Etag, Location, Retry-After, Www-Authenticate, X-Request-Id" {
			t.Errorf("Access-Control-Expose-Headers = %q", got)
		}
		if w.Code != http.StatusNoContent {
			t.Errorf("status %d; want the handler's 204", w.Code)
		}
	})

	t.Run("ignores_other_origins", func(t *testing.T) {
		for _, origin := range []string{"https://evil.example", "https://school.example.evil.example", "http://school.example", "null"} {
			if w := preflight(h, origin, "POST", "authorization"); w.Header().Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("preflight from %s allowed", origin)
			}
			if w := get(h, origin); w.Header().Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("request from %s allowed", origin)
			}
		}
	})

	t.Run("refuses_headers_and_methods_the_api_does_not_use", func(t *testing.T) {
		if w := preflight(h, "https://school.example", "PUT", ""); w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Error("PUT allowed")
		}
		if w := preflight(h, "https://school.example", "GET", "x-user-id"); w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Error("X-User-Id allowed")
		}
	})

	t.Run("refuses_origins_that_are_not_one_origin", func(t *testing.T) {
		for _, o := range []string{"*", "https://*.school.example", "school.example", "https://school.example/", "https://school.example/app", "ftp://school.example", "https://user@school.example", "https://school.example?x=1", ""} {
			if _, err := cors.New([]string{"https://ok.example", o}); err == nil {
				t.Errorf("New accepted origin %q", o)
			}
		}
	})
}
