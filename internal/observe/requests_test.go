package observe_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/edutrack/edutrack/internal/observe"
)

func TestRequestsGiveEachRequestAnIDAndOneAccessLine(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	bad := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) })
	r := chi.NewRouter()
	r.Use(observe.Requests(log, bad))
	var seen string
	r.Get("/v1/learners/{id}/dashboard", func(w http.ResponseWriter, req *http.Request) {
		seen = req.Header.Get("X-Request-Id")
		observe.SetUser(req.Context(), "aud")
		w.Write([]byte(`{"name":"Ada Lovelace"}`))
	})
	send := func(id string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v1/learners/ada/dashboard?reason=transcript+for+Ada+Lovelace", nil)
		req.Header.Set("Authorization", "Bearer secret-token")
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w
	}
	lines := func() []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			out = append(out, m)
		}
		logs.Reset()
		return out
	}

	t.Run("echoes_the_client's_id_and_passes_it_to_the_handler", func(t *testing.T) {
		w := send("req-42")
		if w.Header().Get("X-Request-Id") != "req-42" || seen != "req-42" {
			t.Errorf("answer's id %q, handler's %q; want req-42 both", w.Header().Get("X-Request-Id"), seen)
		}
		l := lines()
		if len(l) != 1 {
			t.Fatalf("%d access lines, want 1", len(l))
		}
		want := map[string]any{"msg": "request", "method": "GET", "route": "/v1/learners/{id}/dashboard", "status": float64(200),
			"bytes": float64(len(`{"name":"Ada Lovelace"}`)), "request_id": "req-42", "user_id": "aud"}
		for k, v := range want {
			if l[0][k] != v {
				t.Errorf("access line %s = %v, want %v (line %v)", k, l[0][k], v, l[0])
			}
		}
		if _, ok := l[0]["duration_ms"].(float64); !ok {
			t.Errorf("access line has no duration: %v", l[0])
		}
	})
	t.Run("makes_an_id_when_the_client_sent_none", func(t *testing.T) {
		w := send("")
		if id := w.Header().Get("X-Request-Id"); id == "" || id != seen {
			t.Errorf("answer's id %q, handler's %q; want the same new id", id, seen)
		}
		lines()
	})
	t.Run("refuses_an_unusable_id_and_answers_with_a_new_one", func(t *testing.T) {
		for _, id := range []string{strings.Repeat("x", observe.MaxRequestIDLen+1), "with space", "tab\there"} {
			w := send(id)
			if w.Code != http.StatusBadRequest || w.Header().Get("X-Request-Id") == "" || w.Header().Get("X-Request-Id") == id {
				t.Errorf("X-Request-Id %q: %d with id %q; want 400 with a new id", id, w.Code, w.Header().Get("X-Request-Id"))
			}
		}
		lines()
	})
	t.Run("logs_no_path_query_token_or_body", func(t *testing.T) {
		send("req-43")
		out := logs.String()
		for _, secret := range []string{"Ada", "transcript", "secret-token", "/v1/learners/ada"} {
			if strings.Contains(out, secret) {
				t.Errorf("the access line holds %q: %s", secret, out)
			}
		}
	})
}
