package readapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
	"github.com/edutrack/edutrack/readapi"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/history"
)

// The callers of the access tests: ins teaches go (published) and draft; ins2 teaches nothing;
// ada and bob learn.
var (
	auditor = domain.Actor{UserID: "aud", Role: domain.Auditor}
	ins     = domain.Actor{UserID: "ins", Role: domain.Instructor}
	ins2    = domain.Actor{UserID: "ins2", Role: domain.Instructor}
	ada     = domain.Actor{UserID: "ada", Role: domain.Learner}
	bob     = domain.Actor{UserID: "bob", Role: domain.Learner}
)

// memLog is the event log of one learner's stream, for the history routes.
type memLog map[string][]eventstore.RecordedEvent

func (l memLog) ReadStream(_ context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	for _, e := range l[stream] {
		if e.Version >= from && (limit <= 0 || len(out) < limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l memLog) append(stream string, at time.Time, events ...domain.Event) {
	for _, ev := range events {
		data, err := json.Marshal(ev)
		if err != nil {
			panic(err)
		}
		n := uint64(len(l[stream]) + 1)
		l[stream] = append(l[stream], eventstore.RecordedEvent{ID: uuid.New(), StreamID: stream, Version: n, Position: 100 + n,
			RecordedAt: at, Type: ev.EventType(), Data: data})
	}
}

// accessFixture serves go, draft and ada's dashboard and history.
func accessFixture(t testing.TB) (*fixture, memLog) {
	t.Helper()
	return accessFixtureWith(t, readapi.Options{})
}

// accessFixtureWith is accessFixture with opts; history waits as long as the read API.
func accessFixtureWith(t testing.TB, opts readapi.Options) (*fixture, memLog) {
	t.Helper()
	f := newFixture(t, opts)
	course := func(id, status, instructor string) string {
		return fmt.Sprintf(`{"id":%q,"status":%q,"instructor":{"id":%q,"name":"Someone"}}`, id, status, instructor)
	}
	f.put(documents.CoursesProjection, documents.CourseDetails, doc("go", 1, course("go", "published", "ins")),
		doc("draft", 2, course("draft", "draft", "ins")))
	f.put(documents.CoursesProjection, documents.Stats, doc("go", 1, `{"courseId":"go"}`), doc("draft", 2, `{"courseId":"draft"}`))
	f.put(documents.LearnersProjection, documents.Dashboards, doc("ada", 3, `{"learnerId":"ada","name":"Ada","enrollments":[]}`),
		doc("bob", 4, `{"learnerId":"bob","name":"Bob","enrollments":[]}`))
	log := memLog{}
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	log.append(learner.StreamPrefix+"ada", at, learner.Enrolled{LearnerID: "ada", CourseID: "go", At: at})
	h, err := history.New(log, f.store, f.positions, slog.New(slog.DiscardHandler), history.Options{Disclosures: f.disclosed,
		ConsistencyWait: opts.ConsistencyWait})
	if err != nil {
		t.Fatal(err)
	}
	h.Routes(f.router)
	return f, log
}

func TestAccess(t *testing.T) {
	t.Parallel()
	f, _ := accessFixture(t)
	tests := []struct {
		path string
		// status by caller; a caller left out gets 403.
		status map[domain.Actor]int
	}{
		{"/v1/courses", map[domain.Actor]int{admin: 200, ins: 200, ins2: 200, ada: 200, bob: 200}},
		{"/v1/courses/go", map[domain.Actor]int{admin: 200, ins: 200, ins2: 200, ada: 200, bob: 200}},
		// A draft is its instructor's: to everyone else it does not exist.
		{"/v1/courses/draft", map[domain.Actor]int{admin: 200, ins: 200, ins2: 404, ada: 404, bob: 404}},
		{"/v1/courses/nope", map[domain.Actor]int{admin: 404, ins: 404, ins2: 404, ada: 404, bob: 404}},
		{"/v1/courses/go/stats", map[domain.Actor]int{admin: 200, ins: 200, ins2: 404}},
		{"/v1/courses/draft/stats", map[domain.Actor]int{admin: 200, ins: 200, ins2: 404}},
		{"/v1/courses/nope/stats", map[domain.Actor]int{admin: 404, ins: 404, ins2: 404}},
		{"/v1/courses/go/roster", map[domain.Actor]int{admin: 200, ins: 200, ins2: 404}},
		{"/v1/courses/nope/roster", map[domain.Actor]int{admin: 404, ins: 404, ins2: 404}},
		{"/v1/learners/ada/dashboard", map[domain.Actor]int{admin: 200, auditor: 200, ada: 200, bob: 404}},
		{"/v1/learners/nope/dashboard", map[domain.Actor]int{admin: 404, auditor: 404, ada: 404, bob: 404}},
		{"/v1/learners/ada/history", map[domain.Actor]int{admin: 200, auditor: 200, ada: 200, bob: 404}},
		{"/v1/learners/ada/history?format=xapi", map[domain.Actor]int{admin: 200, auditor: 200, ada: 200, bob: 404}},
		{"/v1/learners/ada/history?asOf=2026-01-01T00:00:00Z", map[domain.Actor]int{admin: 200, auditor: 200, ada: 200, bob: 404}},
		{"/v1/learners/nope/history", map[domain.Actor]int{admin: 404, auditor: 404, ada: 404, bob: 404}},
		{"/v1/learners/ada/disclosures", map[domain.Actor]int{admin: 200, auditor: 200, ada: 200, bob: 404}},
	}
	for _, tc := range tests {
		for _, p := range []domain.Actor{admin, auditor, ins, ins2, ada, bob} {
			want, ok := tc.status[p]
			if !ok {
				want = http.StatusForbidden
			}
			t.Run(strings.ReplaceAll(tc.path, "/", "_")+"_as_"+p.UserID, func(t *testing.T) {
				resp := f.getAs(p, tc.path)
				if want == http.StatusOK {
					wantOK(t, tc.path, resp)
					return
				}
				wantProblem(t, tc.path, resp, want, "")
			})
		}
	}
}

func TestDisclosures(t *testing.T) {
	t.Parallel()

	t.Run("records_a_read_by_anyone_but_the_learner_with_who_what_and_why", func(t *testing.T) {
		f, _ := accessFixture(t)
		wantOK(t, "own", f.getAs(ada, "/v1/learners/ada/dashboard"))
		wantOK(t, "own", f.getAs(ada, "/v1/learners/ada/history"))
		wantOK(t, "audit", f.getAs(auditor, "/v1/learners/ada/dashboard?reason=annual+review", "X-Request-Id", "req-1", "X-Correlation-Id", "corr-1"))
		wantOK(t, "audit", f.getAs(auditor, "/v1/learners/ada/history?asOf=2026-01-01T00:00:00Z&reason=complaint"))
		wantOK(t, "admin", f.getAs(admin, "/v1/learners/ada/history?format=xapi"))
		wantOK(t, "admin", f.getAs(admin, "/v1/learners/ada/history"))
		want := []access.Disclosure{
			{LearnerID: "ada", Recipient: auditor, Record: learner.RecordDashboard, Reason: "annual review", RequestID: "req-1", CorrelationID: "corr-1"},
			{LearnerID: "ada", Recipient: auditor, Record: learner.RecordStateAsOf, Reason: "complaint"},
			{LearnerID: "ada", Recipient: admin, Record: learner.RecordXAPI},
			{LearnerID: "ada", Recipient: admin, Record: learner.RecordHistory},
		}
		if diff := cmp.Diff(want, f.disclosed.recorded()); diff != "" {
			t.Errorf("disclosures (-want +got):\n%s", diff)
		}
	})

	t.Run("records_nothing_for_a_read_that_finds_nothing_or_is_refused", func(t *testing.T) {
		f, _ := accessFixture(t)
		for _, path := range []string{"/v1/learners/nope/dashboard", "/v1/learners/nope/history", "/v1/learners/ada/history?limit=0",
			"/v1/learners/ada/dashboard?reason=" + strings.Repeat("x", learner.MaxReasonLen+1)} {
			if resp := f.getAs(auditor, path); resp.StatusCode < 400 {
				t.Errorf("GET %s: %d, want it refused", path, resp.StatusCode)
			}
		}
		if got := f.disclosed.recorded(); len(got) != 0 {
			t.Errorf("recorded %+v, want nothing", got)
		}
	})

	t.Run("answers_nothing_of_the_records_when_the_disclosure_cannot_be_recorded", func(t *testing.T) {
		f, _ := accessFixture(t)
		f.disclosed.fail = errors.New("the log is down")
		for _, path := range []string{"/v1/learners/ada/dashboard", "/v1/learners/ada/history"} {
			resp := f.getAs(auditor, path)
			if b := body(t, resp); resp.StatusCode != http.StatusInternalServerError || strings.Contains(string(b), "Ada") || strings.Contains(string(b), "enrolled") {
				t.Errorf("GET %s with the recorder failing: %d %s, want 500 without the records", path, resp.StatusCode, b)
			}
		}
	})

	t.Run("refuses_other_people's_records_where_no_disclosure_can_be_recorded", func(t *testing.T) {
		store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "read.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		api, err := readapi.New(store, cache.NewMemory(8), projections.NewPositions(), prometheus.NewRegistry(), slog.New(slog.DiscardHandler), readapi.Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := chi.NewRouter()
		api.Routes(r)
		req := httptest.NewRequest(http.MethodGet, "/v1/learners/ada/dashboard", nil)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req.WithContext(auth.NewContext(req.Context(), auditor)))
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("an auditor's read without a recorder: %d %s, want 503", w.Code, w.Body)
		}
	})

	t.Run("lists_the_recorded_disclosures_to_the_learner_in_pages", func(t *testing.T) {
		f, log := accessFixture(t)
		at := time.Date(2025, 4, 1, 9, 0, 0, 0, time.UTC)
		var want []history.DisclosureItem
		for i, r := range []learner.Record{learner.RecordDashboard, learner.RecordHistory, learner.RecordXAPI} {
			d := learner.DisclosureRecorded{LearnerID: "ada", RecipientID: "aud", RecipientRole: "auditor", Record: r,
				Reason: fmt.Sprint("reason ", i), At: at.Add(time.Duration(i) * time.Minute)}
			log.append(learner.StreamPrefix+"ada", at, d, learner.ModuleCompleted{LearnerID: "ada", CourseID: "go", ModuleID: "m", At: at})
			want = append(want, history.DisclosureItem{RecipientID: "aud", RecipientRole: "auditor", Record: r, Reason: d.Reason,
				At: d.At, Position: 100 + uint64(2+2*i)})
		}
		type listing struct {
			Items      []history.DisclosureItem `json:"items"`
			NextCursor string                   `json:"nextCursor"`
		}
		all := decodeStrict[listing](t, wantOK(t, "all", f.getAs(ada, "/v1/learners/ada/disclosures")))
		if diff := cmp.Diff(listing{Items: want}, all); diff != "" {
			t.Errorf("disclosures (-want +got):\n%s", diff)
		}
		first := decodeStrict[listing](t, wantOK(t, "first", f.getAs(ada, "/v1/learners/ada/disclosures?limit=2")))
		if first.NextCursor == "" || !cmp.Equal(first.Items, want[:2]) {
			t.Fatalf("first page of 2: %+v, want the first two and a cursor", first)
		}
		second := decodeStrict[listing](t, wantOK(t, "second", f.getAs(ada, "/v1/learners/ada/disclosures?limit=2&cursor="+first.NextCursor)))
		if second.NextCursor != "" || !cmp.Equal(second.Items, want[2:]) {
			t.Errorf("second page: %+v, want the last one and no cursor", second)
		}
		// Listing them discloses nothing new.
		wantOK(t, "audit", f.getAs(auditor, "/v1/learners/ada/disclosures"))
		if got := f.disclosed.recorded(); len(got) != 0 {
			t.Errorf("listing disclosures recorded %+v", got)
		}
		wantProblem(t, "format", f.getAs(ada, "/v1/learners/ada/disclosures?format=xapi"), http.StatusBadRequest, "format")
	})
}

func TestRoutesFailClosedWithoutTheAuthenticator(t *testing.T) {
	t.Parallel()
	f, _ := accessFixture(t)
	for _, path := range []string{"/v1/courses", "/v1/courses/go", "/v1/learners/ada/dashboard", "/v1/learners/ada/history"} {
		w := httptest.NewRecorder()
		f.router.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusInternalServerError {
			t.Errorf("GET %s without a caller: %d, want 500", path, w.Code)
		}
	}
}
