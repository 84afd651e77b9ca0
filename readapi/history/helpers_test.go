package history_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
	"github.com/edutrack/edutrack/readapi/history"
)

func newCodec(tb testing.TB) *eventstore.Codec {
	tb.Helper()
	codec, err := eventstore.NewCodec(append(append(user.Events(), course.Events()...), learner.Events()...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return codec
}

// appender appends domain events to a log.
func appender(tb testing.TB, log *sqlitelog.Log) func(stream string, expected uint64, evs ...domain.Event) {
	codec := newCodec(tb)
	return func(stream string, expected uint64, evs ...domain.Event) {
		tb.Helper()
		data := make([]eventstore.EventData, len(evs))
		for i, e := range evs {
			typ, body, err := codec.Encode(e)
			if err != nil {
				tb.Fatal(err)
			}
			data[i] = eventstore.EventData{ID: uuid.New(), Type: typ, Data: body}
		}
		if _, err := log.Append(context.Background(), stream, eventstore.Exact(expected), data); err != nil {
			tb.Fatal(err)
		}
	}
}

// openStore opens a read store holding bob's dashboard, which makes him a known learner.
func openStore(tb testing.TB, path string) *sqlitestore.Store {
	tb.Helper()
	store, err := sqlitestore.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := store.Commit(context.Background(), "learners", 0, []readstore.Write{{Coll: documents.Dashboards,
		Doc: readstore.Doc{ID: "bob", Position: 1, Body: []byte(`{"learnerId":"bob","name":"Bob","enrollments":[]}`)}}}); err != nil {
		tb.Fatal(err)
	}
	return store
}

// projectSnapshots runs the snapshots projector over the whole log into store, then stops.
func projectSnapshots(tb testing.TB, log *sqlitelog.Log, store readstore.Store, p projections.Snapshots) {
	tb.Helper()
	positions := projections.NewPositions()
	r, err := projections.NewRunner(log, newCodec(tb), store, cache.NewMemory(10), positions, prometheus.NewRegistry(),
		slog.New(slog.NewTextHandler(io.Discard, nil)), projections.Options{}, p)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	head, _ := log.Head(ctx)
	wait, stop := context.WithTimeout(ctx, time.Minute)
	werr := positions.Wait(wait, head, p.Name())
	stop()
	cancel()
	r.Close()
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	if werr != nil {
		tb.Fatalf("the snapshots projection did not reach the head %d: %v", head, werr)
	}
}

// newAPI returns a fresh history API, with nothing decoded yet, as a new process has.
func newAPI(tb testing.TB, log history.Log, store history.Learners) chi.Router {
	tb.Helper()
	api, err := history.New(log, store, projections.NewPositions(), slog.New(slog.NewTextHandler(io.Discard, nil)), history.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	r := chi.NewRouter()
	api.Routes(r)
	return r
}

// askAsOf asks r for bob's state as of at, as bob, and returns the answer's body and ETag.
func askAsOf(tb testing.TB, r chi.Router, at time.Time) (string, string) {
	tb.Helper()
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v1/learners/bob/history?asOf="+at.UTC().Format(time.RFC3339Nano), nil)
	// bob reads his own history: a read by anyone else would also record a disclosure.
	r.ServeHTTP(w, req.WithContext(auth.NewContext(req.Context(), domain.Actor{UserID: "bob", Role: domain.Learner})))
	if w.Code != http.StatusOK {
		tb.Fatalf("asOf %s: %d %s", at, w.Code, w.Body)
	}
	return w.Body.String(), w.Header().Get("ETag")
}
