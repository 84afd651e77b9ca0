package history_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
	"github.com/edutrack/edutrack/readapi/history"
)

// BenchmarkAsOf answers asOf for a learner with 10,000 events: 20 courses of 499 modules, each
// enrolled in and completed.
func BenchmarkAsOf(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	log, err := sqlitelog.Open(filepath.Join(dir, "events.db"), sqlitelog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	codec, _ := eventstore.NewCodec(append(append(user.Events(), course.Events()...), learner.Events()...)...)
	at := time.Date(2026, 9, 1, 9, 0, 0, 0, time.UTC)
	put := func(stream string, expected uint64, evs ...domain.Event) {
		data := make([]eventstore.EventData, len(evs))
		for i, e := range evs {
			typ, body, _ := codec.Encode(e)
			data[i] = eventstore.EventData{ID: uuid.New(), Type: typ, Data: body}
		}
		if _, err := log.Append(ctx, stream, eventstore.Exact(expected), data); err != nil {
			b.Fatal(err)
		}
	}
	var learnerEvents []domain.Event
	for c := range 20 {
		id := fmt.Sprintf("c%02d", c)
		evs := []domain.Event{course.Created{CourseID: id, Title: "Course " + id, Category: "x", Level: course.LevelBeginner, InstructorID: "t", At: at}}
		for m := range 499 {
			evs = append(evs, course.ModuleAdded{CourseID: id, ModuleID: fmt.Sprintf("m%03d", m), Title: "M", At: at})
		}
		put(course.StreamPrefix+id, 0, append(evs, course.Published{CourseID: id, At: at})...)
		learnerEvents = append(learnerEvents, learner.Enrolled{LearnerID: "bob", CourseID: id, At: at})
		for m := range 499 {
			learnerEvents = append(learnerEvents, learner.ModuleCompleted{LearnerID: "bob", CourseID: id, ModuleID: fmt.Sprintf("m%03d", m), At: at})
		}
		learnerEvents = append(learnerEvents, learner.CourseCompleted{LearnerID: "bob", CourseID: id, At: at})
	}
	for i := 0; i < len(learnerEvents); i += 500 {
		put(learner.StreamPrefix+"bob", uint64(i), learnerEvents[i:min(i+500, len(learnerEvents))]...)
	}
	store, err := sqlitestore.Open(filepath.Join(dir, "read.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if err := store.Commit(ctx, "learners", 0, []readstore.Write{{Coll: documents.Dashboards,
		Doc: readstore.Doc{ID: "bob", Position: 1, Body: []byte(`{"learnerId":"bob","name":"Bob","enrollments":[]}`)}}}); err != nil {
		b.Fatal(err)
	}
	api, err := history.New(log, store, projections.NewPositions(), slog.New(slog.NewTextHandler(io.Discard, nil)), history.Options{})
	if err != nil {
		b.Fatal(err)
	}
	routes := func() chi.Router {
		r := chi.NewRouter()
		api.Routes(r)
		return r
	}
	url := "/v1/learners/bob/history?asOf=" + time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	ask := func(r chi.Router) {
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, url, nil)
		// bob reads his own history: a read by anyone else would also record a disclosure.
		r.ServeHTTP(w, req.WithContext(auth.NewContext(req.Context(), domain.Actor{UserID: "bob", Role: domain.Learner})))
		if w.Code != http.StatusOK {
			b.Fatalf("asOf: %d %s", w.Code, w.Body)
		}
	}
	// cold: a fresh process, nothing of the streams decoded yet.
	b.Run("cold", func(b *testing.B) {
		for range b.N {
			ask(routes())
		}
	})
	// warm: the streams were replayed before (an auditor stepping through dates); only what
	// follows is read.
	b.Run("warm", func(b *testing.B) {
		r := routes()
		ask(r)
		b.ResetTimer()
		for range b.N {
			ask(r)
		}
	})
}
