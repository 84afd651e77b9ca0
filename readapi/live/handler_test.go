package live_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/internal/auth/ticket"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/live"
)

// A caller who may not read a topic gets the answer the GET route gives, before any stream.
func TestStreamRefusesBeforeItOpens(t *testing.T) {
	f := newFixture(t, live.Options{MaxTopics: 3, ConsistencyWait: 50 * time.Millisecond})
	f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)), doc("bob", 2, dashboard("bob", 0)))
	f.put(documents.CourseDetails, doc("go", 3, details("go", "published", "ines")), doc("draft", 4, details("draft", "draft", "ines")))
	cases := []struct {
		name, as, path string
		headers        []string
		status         int
		field          string
	}{
		{"another_learners_dashboard", asAda, "/v1/live?topics=learner:bob", nil, http.StatusNotFound, ""},
		{"a_learner_who_does_not_exist", "admin:root", "/v1/live?topics=learner:nobody", nil, http.StatusNotFound, ""},
		{"a_dashboard_to_an_instructor", "instructor:ines", "/v1/live?topics=learner:ada", nil, http.StatusForbidden, ""},
		{"a_draft_to_a_learner", asAda, "/v1/live?topics=course:draft", nil, http.StatusNotFound, ""},
		{"a_draft_to_another_instructor", "instructor:ivan", "/v1/live?topics=course:draft", nil, http.StatusNotFound, ""},
		{"a_course_that_does_not_exist", asAda, "/v1/live?topics=course:nope", nil, http.StatusNotFound, ""},
		{"a_course_to_an_auditor", "auditor:audrey", "/v1/live?topics=course:go", nil, http.StatusForbidden, ""},
		{"the_catalog_to_an_auditor", "auditor:audrey", "/v1/live?topics=catalog", nil, http.StatusForbidden, ""},
		{"one_hidden_topic_among_others", asAda, "/v1/live?topics=learner:ada,catalog,learner:bob", nil, http.StatusNotFound, ""},
		{"no_topic", asAda, "/v1/live", nil, http.StatusBadRequest, "topics"},
		{"an_unknown_topic", asAda, "/v1/live?topics=roster:go", nil, http.StatusBadRequest, "topics"},
		{"a_topic_without_an_id", asAda, "/v1/live?topics=learner:", nil, http.StatusBadRequest, "topics"},
		{"too_many_topics", asAda, "/v1/live?topics=catalog,course:go,learner:ada,course:x", nil, http.StatusBadRequest, "topics"},
		{"a_token_in_the_query", asAda, "/v1/live?topics=catalog&access_token=abc", nil, http.StatusBadRequest, "access_token"},
		{"an_unknown_parameter", asAda, "/v1/live?topics=catalog&limit=3", nil, http.StatusBadRequest, "limit"},
		{"a_position_not_reached", asAda, "/v1/live?topics=catalog&minPosition=3", nil, http.StatusServiceUnavailable, "minPosition"},
		{"a_bad_since", asAda, "/v1/live?topics=catalog&since=-1", nil, http.StatusBadRequest, "since"},
		{"a_bad_last_event_id", asAda, "/v1/live?topics=catalog", []string{"Last-Event-ID", "x"}, http.StatusBadRequest, "Last-Event-ID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, p := f.problemOf(f.request(tc.path, append([]string{asHeader, tc.as}, tc.headers...)...))
			if status != tc.status || p["status"] != float64(tc.status) || (p["field"] != nil && p["field"] != tc.field) || (tc.field != "" && p["field"] != tc.field) {
				t.Errorf("%d %v, want %d on field %q", status, p, tc.status, tc.field)
			}
		})
	}
	if n := f.metric("edutrack_live_connections"); n != 0 {
		t.Errorf("connections after refusals: %v, want 0", n)
	}
	if got := f.disclosed.recorded(); len(got) != 0 {
		t.Errorf("refused streams disclosed %+v", got)
	}
}

// Like every read, a stream waits for the read models to reach the client's own write.
func TestAStreamWaitsForItsMinPosition(t *testing.T) {
	f := newFixture(t, live.Options{})
	f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)))
	opened := make(chan *client)
	go func() { opened <- f.open("/v1/live?topics=learner:ada&minPosition=5", asHeader, asAda) }()
	select {
	case <-opened:
		t.Fatal("the stream opened before the learners' projection reached 5")
	case <-time.After(100 * time.Millisecond):
	}
	f.positions.Advance(documents.LearnersProjection, 5)
	select {
	case <-opened:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not open once the projection reached 5")
	}
}

// A repeated topic counts once; both ways of listing topics work.
func TestTopicsAreListedByCommasOrRepeated(t *testing.T) {
	f := newFixture(t, live.Options{MaxTopics: 2})
	f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)))
	s := f.open("/v1/live?topics=learner:ada,catalog&topics=learner:ada", asHeader, asAda)
	f.commit(documents.Catalog, doc("go", 5, catalogEntry("go", "published", 0)))
	if e := s.next(); e.Event != "catalog" {
		t.Errorf("got %+v, want the catalog entry", e)
	}
}

// An admin's or auditor's stream of a learner's dashboard is a read of the learner's records:
// recorded once when it opens, or refused.
func TestAStreamOfAnotherLearnersDashboardIsADisclosure(t *testing.T) {
	t.Run("recorded_once_at_subscription", func(t *testing.T) {
		f := newFixture(t, live.Options{})
		f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)))
		s := f.open("/v1/live?topics=learner:ada&reason=tutoring+review", asHeader, "auditor:audrey", "X-Request-Id", "req-1")
		f.commit(documents.Dashboards, doc("ada", 5, dashboard("ada", 0.5)))
		s.next()
		f.commit(documents.Dashboards, doc("ada", 6, dashboard("ada", 0.75)))
		s.next()
		got := f.disclosed.recorded()
		if len(got) != 1 || got[0].LearnerID != "ada" || got[0].Recipient.UserID != "audrey" || got[0].Record != learner.RecordDashboard ||
			got[0].Reason != "tutoring review" || got[0].RequestID != "req-1" {
			t.Errorf("disclosures %+v, want one of ada's dashboard to audrey, with the reason and request id", got)
		}
		f.open("/v1/live?topics=learner:ada", asHeader, asAda)
		if n := len(f.disclosed.recorded()); n != 1 {
			t.Errorf("ada's own stream recorded a disclosure: %d", n)
		}
	})
	t.Run("refused_where_none_can_be_recorded", func(t *testing.T) {
		f := newFixture(t, live.Options{Disclosures: noDisclosures{}})
		f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)))
		status, header, _ := f.problemOf(f.request("/v1/live?topics=learner:ada", asHeader, "admin:root"))
		if status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" {
			t.Errorf("%d, want 503 with Retry-After", status)
		}
		f.open("/v1/live?topics=learner:ada", asHeader, asAda) // the learner's own still works
	})
	t.Run("refused_when_the_record_fails", func(t *testing.T) {
		f := newFixture(t, live.Options{})
		f.disclosed.fail = errDown
		f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)))
		if status, _, _ := f.problemOf(f.request("/v1/live?topics=learner:ada", asHeader, "admin:root")); status != http.StatusInternalServerError {
			t.Errorf("%d, want 500 as the GET answers, and no stream", status)
		}
	})
}

// A ticket opens one stream as the caller who asked for it.
func TestTickets(t *testing.T) {
	f := newFixture(t, live.Options{})
	f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)))
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/live/tickets", nil)
	req.Header.Set(asHeader, asAda)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tk ticket.Ticket
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	err = dec.Decode(&tk)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("POST tickets: %d %q %+v (%v), want 200 no-store with a ticket", resp.StatusCode, resp.Header.Get("Cache-Control"), tk, err)
	}
	if until := time.Until(tk.ExpiresAt); until <= 0 || until > 31*time.Second {
		t.Errorf("expiresAt in %s, want within 30 s", until)
	}
	s := f.open("/v1/live?topics=learner:ada&ticket=" + tk.Value) // no other credential
	f.commit(documents.Dashboards, doc("ada", 5, dashboard("ada", 0.5)))
	if e := s.next(); e.ID != "5" {
		t.Errorf("got %+v, want ada's dashboard", e)
	}
	if status, _, p := f.problemOf(f.request("/v1/live?topics=learner:ada&ticket=" + tk.Value)); status != http.StatusUnauthorized || p["field"] != "ticket" {
		t.Errorf("the ticket again: %d %v, want 401", status, p)
	}
	// Bound to ada: another learner's ticket does not open ada's dashboard.
	req.Header.Set(asHeader, "learner:bob")
	resp, _ = http.DefaultClient.Do(req)
	json.NewDecoder(resp.Body).Decode(&tk)
	resp.Body.Close()
	if status, _, _ := f.problemOf(f.request("/v1/live?topics=learner:ada&ticket=" + tk.Value)); status != http.StatusNotFound {
		t.Errorf("bob's ticket for ada's dashboard: %d, want 404", status)
	}
	for _, param := range []string{"access_token", "token", "Authorization"} {
		status, _, p := f.problemOf(f.request("/v1/live?topics=catalog&"+param+"=abc", asHeader, asAda))
		if status != http.StatusBadRequest || p["field"] != param || !strings.Contains(p["detail"].(string), "URL") {
			t.Errorf("a token in %s: %d %v, want 400 saying tokens do not go in URLs", param, status, p)
		}
	}
}

// A client that comes back gets, first, the current document of each topic that changed after
// its position, once, and then what changes.
func TestAClientThatComesBackGetsWhatChanged(t *testing.T) {
	f := newFixture(t, live.Options{MaxCatchUp: 3})
	f.put(documents.Dashboards, doc("ada", 4, dashboard("ada", 0.5)))
	f.put(documents.CourseDetails, doc("go", 2, details("go", "published", "ines")))
	f.put(documents.Catalog, doc("go", 2, catalogEntry("go", "published", 1)), doc("old", 3, catalogEntry("old", "archived", 1)),
		doc("new", 6, catalogEntry("new", "published", 0)), doc("draft", 7, catalogEntry("draft", "draft", 0)))
	topics := "/v1/live?topics=learner:ada,course:go,catalog"

	// Since 3: the dashboard (4) and the new course (6); not the course (2), the course that left
	// before (3), nor the draft.
	s := f.open(topics+"&since=3", asHeader, asAda)
	var got []string
	for range 2 {
		e := s.next()
		if e.HasID {
			t.Errorf("a catch-up message has an id: %+v", e)
		}
		got = append(got, e.Event+":"+id(e))
	}
	if diff := cmp.Diff([]string{"dashboards:", "catalog:new"}, got); diff != "" {
		t.Errorf("catch-up since 3 (-want +got):\n%s", diff)
	}
	s.quiet(100 * time.Millisecond)
	s.close()

	// Last-Event-ID wins over since: a browser reconnects to the URL it opened first.
	s = f.open(topics+"&since=3", asHeader, asAda, "Last-Event-ID", "6")
	s.quiet(100 * time.Millisecond)
	f.commit(documents.Dashboards, doc("ada", 8, dashboard("ada", 0.75)))
	// Its id is 6, not 8: the stream follows the courses' projection too, which has shown
	// nothing past 6.
	if e := s.next(); e.Event != "dashboards" || !strings.Contains(e.Data, `"progress":0.75`) || e.ID != "6" {
		t.Errorf("after an empty catch-up: %+v, want the next change, with id 6", e)
	}
	s.close()

	// Since 0: more catalog entries changed than a catch-up sends, so the client is told to
	// read the catalog again; the other topics catch up.
	s = f.open(topics+"&since=0", asHeader, asAda)
	got = nil
	for range 3 {
		e := s.next()
		got = append(got, e.Event+":"+e.Data)
	}
	want := []string{"dashboards:", "course_details:", "resync:" + `{"reason":"catch-up"}`}
	for i := range got {
		if i < 2 {
			got[i] = strings.SplitN(got[i], ":", 2)[0] + ":"
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("catch-up since 0 (-want +got):\n%s", diff)
	}
}

// A message the catch-up made old is not sent: the stream joins the hub before it reads, and
// a change that was committed before the read reaches it after.
func TestAChangeOlderThanTheCatchUpIsNotSent(t *testing.T) {
	f := newFixture(t, live.Options{})
	f.put(documents.Dashboards, doc("ada", 9, dashboard("ada", 0.9)))
	s := f.open("/v1/live?topics=learner:ada&since=1", asHeader, asAda)
	if e := s.next(); e.Event != "dashboards" || !strings.Contains(e.Data, `"progress":0.9`) {
		t.Fatalf("catch-up %+v, want the dashboard at 9", e)
	}
	// The feed now brings the change of 7, which the store has long passed: the hub sends
	// the document as it is (9), which a stream that never caught up takes.
	plain := f.open("/v1/live?topics=learner:ada", asHeader, asAda)
	f.commit(documents.Dashboards, doc("ada", 7, dashboard("ada", 0.7)))
	if e := plain.next(); e.ID != "7" || !strings.Contains(e.Data, `"progress":0.9`) {
		t.Fatalf("the stream without catch-up got %+v, want the document at 9 as the change of 7", e)
	}
	f.commit(documents.Dashboards, doc("ada", 10, dashboard("ada", 1)))
	if e := s.next(); e.ID != "10" || !strings.Contains(e.Data, `"progress":1`) {
		t.Errorf("got %+v, want the change of 10 and nothing the catch-up sent already", e)
	}
}

func TestLimits(t *testing.T) {
	f := newFixture(t, live.Options{MaxPerUser: 2, MaxPerAddress: 3})
	first := f.open("/v1/live?topics=catalog", asHeader, asAda)
	f.open("/v1/live?topics=catalog", asHeader, asAda)
	status, header, p := f.problemOf(f.request("/v1/live?topics=catalog", asHeader, asAda))
	if status != http.StatusTooManyRequests || header.Get("Retry-After") == "" || !strings.Contains(p["detail"].(string), "EDUTRACK_LIVE_MAX_PER_USER") {
		t.Errorf("a third stream of one user: %d %v, want 429 with Retry-After naming the setting", status, p)
	}
	f.open("/v1/live?topics=catalog", asHeader, "learner:bob")
	status, _, p = f.problemOf(f.request("/v1/live?topics=catalog", asHeader, "learner:cy"))
	if status != http.StatusTooManyRequests || !strings.Contains(p["detail"].(string), "EDUTRACK_LIVE_MAX_PER_ADDRESS") {
		t.Errorf("a fourth stream of one address: %d %v, want 429 naming the setting", status, p)
	}
	first.close()
	deadline := time.Now().Add(5 * time.Second)
	for f.metric("edutrack_live_connections") != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	f.open("/v1/live?topics=catalog", asHeader, asAda) // a closed stream frees its place
	if n := f.metric("edutrack_live_refused_total", "cap", "per_user"); n != 1 {
		t.Errorf("refused per user: %v, want 1", n)
	}
}

// HEAD answers a stream's headers and opens none, discloses nothing.
func TestHeadOpensNoStream(t *testing.T) {
	f := newFixture(t, live.Options{})
	f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)))
	req := f.request("/v1/live?topics=learner:ada", asHeader, "admin:root")
	req.Method = http.MethodHead
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || len(b) != 0 {
		t.Errorf("HEAD: %d %q %q, want 200 text/event-stream and no body", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if got := f.disclosed.recorded(); len(got) != 0 {
		t.Errorf("HEAD disclosed %+v", got)
	}
}

// A change the client has (at or before since) can come late, carrying its document as a later
// change left it; the hub reads each document once, so that document must not be dropped
// with the change.
func TestALateChangeBringsTheNewerDocumentItCarries(t *testing.T) {
	f := newFixture(t, live.Options{})
	f.put(documents.Dashboards, doc("ada", 5, dashboard("ada", 0.5)))
	s := f.open("/v1/live?topics=learner:ada&since=6", asHeader, asAda)
	s.quiet(50 * time.Millisecond) // nothing changed after 6
	// The store already holds the change of 8 when the change of 6 comes through the feed.
	f.put(documents.Dashboards, doc("ada", 8, dashboard("ada", 0.8)))
	for _, pos := range []uint64{6, 8} {
		f.feed.Publish(context.Background(), changes.Batch{Projection: documents.LearnersProjection,
			Changes: []changes.Change{{Coll: documents.Dashboards, ID: "ada", Position: pos}}})
	}
	e := s.next()
	if !strings.Contains(e.Data, `"progress":0.8`) || e.ID != "6" {
		t.Errorf("got %+v, want the dashboard at 8, with id 6 (since)", e)
	}
	s.quiet(50 * time.Millisecond)
}

// In a read process the projections' positions come from the read store, and can be ahead of
// what the feed has brought the hub (as after an outage of the feed). A stream's catch-up ends
// on the id those positions give; the ids after it must not go back below it.
func TestIdsAfterACatchUpAheadOfTheFeedDoNotGoBack(t *testing.T) {
	f := newFixture(t, live.Options{})
	f.put(documents.Dashboards, doc("ada", 20, dashboard("ada", 0.5)))
	// Reached without the feed: read from the store, as a read process follows it.
	f.positions.Advance(documents.LearnersProjection, 20)
	f.positions.Advance(documents.CoursesProjection, 20)
	s := f.open("/v1/live?topics=learner:ada,catalog&since=5", asHeader, asAda)
	if e := s.next(); e.Event != "dashboards" {
		t.Fatalf("catch-up %+v, want the dashboard at 20", e)
	}
	if e := s.next(); !e.HasID || e.ID != "20" || e.Event != "" {
		t.Fatalf("after the catch-up: %+v, want id 20", e)
	}
	f.commit(documents.Catalog, doc("go", 25, catalogEntry("go", "published", 1)))
	if e := s.next(); e.Event != "catalog" || e.ID != "20" {
		t.Errorf("then %+v, want the catalog entry with id 20: the stream has everything up to 20, and ids never go back", e)
	}
}
