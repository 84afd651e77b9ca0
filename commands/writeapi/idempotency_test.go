package writeapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/commands/writeapi"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/internal/auth"
)

// server is a write API over a log in a temp dir; restart gives a new API over the same log,
// as after a restart of the process.
type server struct {
	t     *testing.T
	store *sqlitelog.Log
	r     chi.Router
}

func newServer(t *testing.T) *server {
	t.Helper()
	store, err := sqlitelog.Open(filepath.Join(t.TempDir(), "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s := &server{t: t, store: store}
	s.restart()
	return s
}

func (s *server) restart() {
	s.t.Helper()
	h, err := commands.New(s.store, time.Now, commands.Options{})
	if err != nil {
		s.t.Fatal(err)
	}
	api, err := writeapi.New(h, slog.New(slog.DiscardHandler))
	if err != nil {
		s.t.Fatal(err)
	}
	s.r = chi.NewRouter()
	api.Routes(s.r)
}

func (s *server) head() uint64 {
	s.t.Helper()
	h, err := s.store.Head(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return h
}

// send answers method path with body as an admin, with the Idempotency-Key key if not empty.
func (s *server) send(method, path, body, key string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	w := httptest.NewRecorder()
	s.r.ServeHTTP(w, req.WithContext(auth.NewContext(req.Context(), domain.Actor{UserID: "root", Role: domain.Admin})))
	return w
}

func (s *server) must(method, path, body, key string) commands.Result {
	s.t.Helper()
	w := s.send(method, path, body, key)
	var res commands.Result
	if w.Code >= 300 || json.Unmarshal(w.Body.Bytes(), &res) != nil {
		s.t.Fatalf("%s %s %s: %d %s", method, path, body, w.Code, w.Body)
	}
	return res
}

func TestIdempotencyKeyBindsTheRequest(t *testing.T) {
	s := newServer(t)
	s.must("POST", "/v1/users", `{"id":"ins","name":"Ins","email":"ins@example.com","role":"instructor"}`, "")
	s.must("POST", "/v1/courses", `{"id":"go","title":"Go","category":"programming","level":"beginner","instructorId":"ins"}`, "")
	first := s.must("POST", "/v1/courses/go/modules", `{"title":"Intro"}`, "k-module")
	retitled := s.must("PATCH", "/v1/courses/go", `{"title":"Go 2","level":"advanced"}`, "k-title")

	wantReused := func(t *testing.T, method, path, body, key string) {
		t.Helper()
		head := s.head()
		w := s.send(method, path, body, key)
		var p struct {
			Status int
			Field  string
		}
		json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != http.StatusUnprocessableEntity || p.Field != "Idempotency-Key" || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s %s with key %s: %d %s; want a 422 problem naming Idempotency-Key", method, path, body, key, w.Code, w.Body)
		}
		if s.head() != head {
			t.Errorf("%s %s with a reused key appended: head %d -> %d", method, path, head, s.head())
		}
	}
	for _, when := range []string{"in the process that answered it", "after a restart"} {
		if when == "after a restart" {
			s.restart()
		}
		t.Run("the_same_request_answers_the_first_result_"+when, func(t *testing.T) {
			if again := s.must("POST", "/v1/courses/go/modules", `{"title":"Intro"}`, "k-module"); again != first {
				t.Errorf("retry = %+v; want %+v", again, first)
			}
			// The same JSON value, spaced and ordered otherwise, is the same request.
			if again := s.must("PATCH", "/v1/courses/go", `{ "level" : "advanced", "title": "Go 2" }`, "k-title"); again != retitled {
				t.Errorf("retry = %+v; want %+v", again, retitled)
			}
		})
		t.Run("another_body_answers_422_"+when, func(t *testing.T) {
			wantReused(t, "POST", "/v1/courses/go/modules", `{"title":"Other"}`, "k-module")
			wantReused(t, "PATCH", "/v1/courses/go", `{"title":"Go 3"}`, "k-title")
		})
	}
	t.Run("another_route_or_method_answers_422", func(t *testing.T) {
		s.must("POST", "/v1/users", `{"id":"ada","name":"Ada","email":"ada@example.com","role":"learner"}`, "k-user")
		wantReused(t, "POST", "/v1/courses/go/modules", `{"title":"Intro"}`, "k-user")
		wantReused(t, "PATCH", "/v1/users/ada", `{"name":"Ada"}`, "k-user")
	})
	t.Run("a_key_is_the_user's_own", func(t *testing.T) {
		req := httptest.NewRequest("PATCH", "/v1/courses/go", bytes.NewReader([]byte(`{"title":"Go 4"}`)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k-title")
		w := httptest.NewRecorder()
		s.r.ServeHTTP(w, req.WithContext(auth.NewContext(req.Context(), domain.Actor{UserID: "ins", Role: domain.Instructor})))
		if w.Code != http.StatusOK {
			t.Errorf("another user's request with the same key: %d %s; want 200", w.Code, w.Body)
		}
	})
}

// A route that takes no body refuses one: the client means something the route would ignore.
func TestRoutesWithoutABodyRefuseOne(t *testing.T) {
	s := newServer(t)
	s.must("POST", "/v1/users", `{"id":"ins","name":"Ins","email":"ins@example.com","role":"instructor"}`, "")
	s.must("POST", "/v1/users", `{"id":"ada","name":"Ada","email":"ada@example.com","role":"learner"}`, "")
	s.must("POST", "/v1/courses", `{"id":"go","title":"Go","category":"programming","level":"beginner","instructorId":"ins"}`, "")
	s.must("POST", "/v1/courses/go/modules", `{"id":"m1","title":"Intro"}`, "")
	for _, route := range []struct{ method, path string }{
		{"POST", "/v1/courses/go/publish"},
		{"POST", "/v1/courses/go/archive"},
		{"DELETE", "/v1/courses/go/enrollments/ada"},
		{"POST", "/v1/learners/ada/courses/go/modules/m1/complete"},
	} {
		head := s.head()
		w := s.send(route.method, route.path, `{"force":true}`, "")
		if w.Code != http.StatusBadRequest || s.head() != head {
			t.Errorf("%s %s with a body: %d %s, head %d -> %d; want 400 and nothing appended", route.method, route.path, w.Code, w.Body, head, s.head())
		}
	}
	if w := s.send("POST", "/v1/courses/go/publish", "", ""); w.Code != http.StatusOK {
		t.Errorf("publish without a body: %d %s", w.Code, w.Body)
	}
}
