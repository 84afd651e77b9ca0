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

// bodyRoutes are the routes that take a JSON body, over the world FuzzCommandBodies sets up.
var bodyRoutes = []struct{ method, path string }{
	{http.MethodPost, "/v1/users"},
	{http.MethodPatch, "/v1/users/ada"},
	{http.MethodPost, "/v1/courses"},
	{http.MethodPatch, "/v1/courses/go"},
	{http.MethodPost, "/v1/courses/go/modules"},
	{http.MethodPost, "/v1/courses/go/enrollments"},
}

// FuzzCommandBodies sends arbitrary bodies to every route that takes one, as an admin. A body
// must never make the server fail (5xx), a refused command must append nothing, and an
// accepted one answers where its events, or its stream, stand. The seed corpus is in testdata/fuzz/FuzzCommandBodies; run
// it with go test -fuzz=FuzzCommandBodies ./commands/writeapi.
func FuzzCommandBodies(f *testing.F) {
	for i := range bodyRoutes {
		for _, s := range []string{`{}`, `{"id":"x","name":"X","email":"x@example.com","role":"learner"}`, `{"title":"T","level":"expert"}`,
			`{"learnerId":"ada"}`, `{"instructorId":"ins","title":"Go","category":"c","level":"beginner"}`, `{"name":null}`,
			`{"id":"Not An Id"}`, `{"role":"admin","name":"x","email":"x@example.com"}`} {
			f.Add(uint8(i), []byte(s))
		}
	}
	store, err := sqlitelog.Open(filepath.Join(f.TempDir(), "events.db"), sqlitelog.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	h, err := commands.New(store, time.Now, commands.Options{})
	if err != nil {
		f.Fatal(err)
	}
	api, err := writeapi.New(h, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	r := chi.NewRouter()
	api.Routes(r)
	admin := domain.Actor{UserID: "root", Role: domain.Admin}
	send := func(method, path string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req.WithContext(auth.NewContext(req.Context(), admin)))
		return w
	}
	for _, step := range []struct{ method, path, body string }{
		{"POST", "/v1/users", `{"id":"ada","name":"Ada","email":"ada@example.com","role":"learner"}`},
		{"POST", "/v1/users", `{"id":"ins","name":"Ins","email":"ins@example.com","role":"instructor"}`},
		{"POST", "/v1/courses", `{"id":"go","title":"Go","category":"programming","level":"beginner","instructorId":"ins"}`},
		{"POST", "/v1/courses/go/modules", `{"id":"m1","title":"Intro"}`},
		{"POST", "/v1/courses/go/publish", ``},
	} {
		if w := send(step.method, step.path, []byte(step.body)); w.Code >= 300 {
			f.Fatalf("%s %s: %d %s", step.method, step.path, w.Code, w.Body)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := bodyRoutes[int(route)%len(bodyRoutes)]
		before, err := store.Head(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		w := send(rt.method, rt.path, body)
		after, err := store.Head(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case w.Code >= 500:
			t.Fatalf("%s %s with %q: %d %s", rt.method, rt.path, body, w.Code, w.Body)
		case w.Code >= 400 && after != before:
			t.Fatalf("%s %s with %q refused with %d but appended %d events", rt.method, rt.path, body, w.Code, after-before)
		case w.Code < 300:
			// A command that appended answers the head; a no-op, the position its stream had.
			var res commands.Result
			err := json.Unmarshal(w.Body.Bytes(), &res)
			if err != nil || res.ID == "" || (after != before && res.Position != after) || res.Position > after {
				t.Fatalf("%s %s with %q answered %d %s, want a result at or, when it appended, at the head %d", rt.method, rt.path, body, w.Code, w.Body, after)
			}
		}
	})
}
