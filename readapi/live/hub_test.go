package live_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/readapi/live"
)

const asAda = "learner:ada"

func TestStreamSendsTheNewDocumentAsItsGETAnswersIt(t *testing.T) {
	f := newFixture(t, live.Options{})
	f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)), doc("bob", 2, dashboard("bob", 0)))
	adas := f.open("/v1/live?topics=learner:ada", asHeader, asAda)
	bobs := f.open("/v1/live?topics=learner:bob", asHeader, "learner:bob")
	moved := doc("ada", 5, dashboard("ada", 0.25))
	f.commit(documents.Dashboards, moved)
	got := adas.next()
	want := event{ID: "5", HasID: true, Event: "dashboards", Data: string(moved.Body)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ada's message (-want +got):\n%s", diff)
	}
	bobs.quiet(100 * time.Millisecond)
	if n := f.metric("edutrack_live_messages_sent_total", "event", "dashboards"); n != 1 {
		t.Errorf("messages sent: %v, want 1", n)
	}
	if n := f.metric("edutrack_live_delivery_seconds"); n != 1 {
		t.Errorf("deliveries measured: %v, want 1", n)
	}
	if n := f.metric("edutrack_live_connections"); n != 2 {
		t.Errorf("connections: %v, want 2", n)
	}
}

// Every stream of a topic gets the document, which the hub reads once.
func TestHubReadsAChangedDocumentOnceForEveryStream(t *testing.T) {
	counted := &countingStore{}
	f := newFixtureWith(t, live.Options{}, func(s live.Store) live.Store { counted.Store = s; return counted })
	var streams []*client
	for i := range 5 {
		streams = append(streams, f.open("/v1/live?topics=catalog", asHeader, "learner:l"+strconv.Itoa(i)))
	}
	entry := doc("go", 7, catalogEntry("go", "published", 3))
	f.commit(documents.Catalog, entry)
	for i, s := range streams {
		e := s.next()
		var item map[string]any
		json.Unmarshal([]byte(e.Data), &item)
		if e.Event != "catalog" || e.ID != "7" || item["id"] != "go" || item["status"] != nil || item["titleWords"] != nil {
			t.Errorf("stream %d got %+v, want the catalog item as the listing answers it", i, e)
		}
	}
	if n := counted.gets.Load(); n != 1 {
		t.Errorf("the hub read the entry %d times for 5 streams, want once", n)
	}
}

// A course's details go to everyone who may read the course; its stats and roster only to
// those who teach it. The catalog shows what is published, and says when a course leaves it.
func TestTopicsShowWhatTheirGETRoutesShow(t *testing.T) {
	f := newFixture(t, live.Options{})
	f.put(documents.CourseDetails, doc("go", 1, details("go", "published", "ines")), doc("draft", 2, details("draft", "draft", "ines")))
	learner := f.open("/v1/live?topics=course:go,catalog", asHeader, asAda)
	teacher := f.open("/v1/live?topics=course:go,course:draft", asHeader, "instructor:ines")
	admin := f.open("/v1/live?topics=course:draft", asHeader, "admin:root")

	f.commit(documents.Stats, doc("go", 10, documents.CourseStats{CourseID: "go", Enrolled: 1, ModuleCompletions: []documents.ModuleCompletions{}}))
	roster := documents.RosterEntry{RosterItem: documents.RosterItem{LearnerID: "ada", Name: "Ada", Status: "active"}, CourseID: "go", EnrolledAtN: 5}
	f.commit(documents.Rosters, doc(documents.RosterID("go", "ada"), 11, roster))
	f.commit(documents.CourseDetails, doc("go", 12, details("go", "published", "ines")))
	f.commit(documents.CourseDetails, doc("draft", 13, details("draft", "draft", "ines")))

	if e := teacher.next(); e.Event != "course_stats" {
		t.Errorf("the teacher's first message: %+v, want course_stats", e)
	}
	e := teacher.next()
	wantRow, _ := json.Marshal(roster.RosterItem)
	if e.Event != "rosters" || e.Data != string(wantRow) {
		t.Errorf("the teacher's roster message: %+v, want the row as the roster lists it: %s", e, wantRow)
	}
	for _, want := range []string{"course_details:go", "course_details:draft"} {
		if e := teacher.next(); e.Event+":"+id(e) != want {
			t.Errorf("the teacher got %s:%s, want %s", e.Event, id(e), want)
		}
	}
	if e := admin.next(); e.Event != "course_details" || id(e) != "draft" {
		t.Errorf("the admin got %+v, want the draft's details", e)
	}
	if e := learner.next(); e.Event != "course_details" || id(e) != "go" {
		t.Errorf("the learner got %+v, want the published course's details and nothing before", e)
	}

	// Access is checked again per message: were a course's details to say draft again, only
	// its instructor and admins would get them.
	f.commit(documents.CourseDetails, doc("go", 14, details("go", "draft", "ines")))
	if e := teacher.next(); e.Event != "course_details" || !strings.Contains(e.Data, `"status":"draft"`) {
		t.Errorf("the teacher got %+v, want the draft details", e)
	}
	f.commit(documents.Catalog, doc("draft", 20, catalogEntry("draft", "draft", 0)))
	f.commit(documents.Catalog, doc("go", 21, catalogEntry("go", "published", 1)))
	if e := learner.next(); e.Event != "catalog" || id(e) != "go" || e.ID != "21" {
		t.Errorf("got %+v, want the published entry at 21 and nothing of the draft", e)
	}
	f.commit(documents.Catalog, doc("go", 22, catalogEntry("go", "archived", 1)))
	if e := learner.next(); e.Event != live.EventCatalogRemoved || e.Data != `{"id":"go"}` || e.ID != "22" {
		t.Errorf("got %+v, want the archived course leaving the catalog", e)
	}
	learner.quiet(100 * time.Millisecond)
}

// id is the id field of a message's document.
func id(e event) string {
	var d struct {
		ID       string `json:"id"`
		CourseID string `json:"courseId"`
	}
	json.Unmarshal([]byte(e.Data), &d)
	return d.ID + d.CourseID
}

// Projections commit on their own: a later change of one can reach the hub before an earlier
// change of the other. A stream that follows both gives ids a client can come back from
// without missing the earlier one.
func TestIdsOfAStreamOfTwoProjectionsMissNothingOnReturn(t *testing.T) {
	f := newFixture(t, live.Options{})
	f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)))
	s := f.open("/v1/live?topics=learner:ada,catalog", asHeader, asAda)
	f.commit(documents.Dashboards, doc("ada", 20, dashboard("ada", 0.5)))
	first := s.next()
	if first.Event != "dashboards" {
		t.Fatalf("got %+v, want the dashboard", first)
	}
	// The catalog's commit of position 15 comes after the dashboard of 20.
	f.commit(documents.Catalog, doc("go", 15, catalogEntry("go", "published", 1)))
	if e := s.next(); e.Event != "catalog" || e.ID != "15" {
		t.Errorf("got %+v, want the catalog entry at 15", e)
	}
	at, _ := strconv.ParseUint(first.ID, 10, 64)
	if at >= 15 {
		t.Fatalf("the dashboard's id is %d: a client that left after it would come back past the catalog's 15", at)
	}
	s.close()
	// A client that left after the dashboard comes back from its id and misses nothing.
	back := f.open("/v1/live?topics=learner:ada,catalog", asHeader, asAda, "Last-Event-ID", first.ID)
	got := map[string]string{}
	for range 2 {
		e := back.next()
		got[e.Event] = id(e)
	}
	if diff := cmp.Diff(map[string]string{"dashboards": "", "catalog": "go"}, got); diff != "" {
		t.Errorf("after coming back from %s (-want +got):\n%s", first.ID, diff)
	}
	// The learners' projection is at 20, the courses' at 15.
	if e := back.next(); !e.HasID || e.ID != "15" || e.Event != "" {
		t.Errorf("after the catch-up: %+v, want the id the stream has everything up to, 15", e)
	}
}

// A feed that lost messages says Resync: every stream that follows the projection is told.
func TestAResyncOfTheFeedReachesTheStreamsOfItsProjection(t *testing.T) {
	f := newFixture(t, live.Options{})
	f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)))
	learners := f.open("/v1/live?topics=learner:ada", asHeader, asAda)
	courses := f.open("/v1/live?topics=catalog", asHeader, asAda)
	f.feed.Publish(context.Background(), changes.Batch{Projection: documents.LearnersProjection, Resync: true})
	if e := learners.next(); e.Event != live.EventResync || e.Data != `{"reason":"feed"}` || e.HasID {
		t.Errorf("got %+v, want a resync without an id", e)
	}
	courses.quiet(100 * time.Millisecond)
	f.commit(documents.Dashboards, doc("ada", 9, dashboard("ada", 1)))
	if e := learners.next(); e.Event != "dashboards" || e.ID != "9" {
		t.Errorf("after the resync: %+v, want the next change", e)
	}
}

// A stream whose client stops reading holds Buffer messages (and the one it is writing), misses the rest, and once the
// client reads again gets them, then one resync, then what comes after. The feed and the other
// streams never wait for it.
func TestASlowClientGetsAResyncAndSlowsNobody(t *testing.T) {
	const buffer = 2
	f := newFixture(t, live.Options{Buffer: buffer})
	f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)))
	slow := f.stall("/v1/live?topics=learner:ada", asAda)
	fast := f.open("/v1/live?topics=learner:ada", asHeader, asAda)
	for pos := uint64(10); pos < 16; pos++ {
		// One at a time: a document the hub reads after a later commit is sent once, as it
		// is then.
		f.commit(documents.Dashboards, doc("ada", pos, dashboard("ada", float64(pos)/100)))
		if e := fast.next(); e.ID != strconv.FormatUint(pos, 10) {
			t.Fatalf("the fast client got %+v, want position %d", e, pos)
		}
	}
	// It holds the message it is writing, and Buffer more.
	if n := f.metric("edutrack_live_dropped_total"); n != 6-buffer-1 {
		t.Errorf("dropped: %v, want %d", n, 6-buffer-1)
	}
	slowClient := slow.read()
	for _, pos := range []string{"10", "11", "12"} {
		if e := slowClient.next(); e.ID != pos {
			t.Errorf("the slow client got %+v, want what its buffer held: %s", e, pos)
		}
	}
	if e := slowClient.next(); e.Event != live.EventResync || e.Data != `{"reason":"behind"}` {
		t.Errorf("then %+v, want a resync", e)
	}
	f.commit(documents.Dashboards, doc("ada", 20, dashboard("ada", 1)))
	if e := slowClient.next(); e.ID != "20" {
		t.Errorf("after the resync: %+v, want the next change", e)
	}
	if n := f.metric("edutrack_live_resyncs_total", "reason", "behind"); n != 1 {
		t.Errorf("resyncs: %v, want 1", n)
	}
}

// stalled is a stream whose client reads nothing until read is called: the hub's writes block
// as on a socket whose client stopped reading.
type stalled struct {
	f      *fixture
	pr     *io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
}

func (f *fixture) stall(path, as string) *stalled {
	pr, pw := io.Pipe()
	role, uid, _ := strings.Cut(as, ":")
	ctx, cancel := context.WithCancel(auth.NewContext(context.Background(), domain.Actor{UserID: uid, Role: domain.Role(role)}))
	req := httptest.NewRequest(http.MethodGet, path, nil).WithContext(ctx)
	s := &stalled{f: f, pr: pr, cancel: cancel, done: make(chan struct{})}
	w := &pipeWriter{header: http.Header{}, pw: pw}
	before := f.metric("edutrack_live_connections")
	go func() {
		defer close(s.done)
		f.hub.Stream(w, req)
		pw.Close()
	}()
	f.t.Cleanup(func() { cancel(); pr.Close(); <-s.done })
	for deadline := time.Now().Add(5 * time.Second); f.metric("edutrack_live_connections") == before; {
		if time.Now().After(deadline) {
			f.t.Fatal("the stalled stream did not join the hub")
		}
		time.Sleep(time.Millisecond)
	}
	return s
}

// read starts reading the stream.
func (s *stalled) read() *client {
	c := &client{t: s.f.t, resp: &http.Response{Body: s.pr}, events: make(chan event, 1024), done: make(chan struct{})}
	go c.read()
	s.f.t.Cleanup(c.close)
	return c
}

// pipeWriter is a ResponseWriter whose writes wait for the client to read them.
type pipeWriter struct {
	header http.Header
	pw     *io.PipeWriter
}

func (w *pipeWriter) Header() http.Header         { return w.header }
func (w *pipeWriter) WriteHeader(int)             {}
func (w *pipeWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }
func (w *pipeWriter) Flush()                      {}

// On shutdown every stream sends what it holds, tells its client when to come back, and ends;
// new streams are refused so that clients go to another process.
func TestShutdownTellsClientsToComeBack(t *testing.T) {
	f := newFixture(t, live.Options{Retry: time.Second})
	f.put(documents.Dashboards, doc("ada", 1, dashboard("ada", 0)))
	s := f.open("/v1/live?topics=learner:ada", asHeader, asAda)
	f.stopHub()
	e := s.next()
	retry, err := strconv.Atoi(e.Retry)
	if err != nil || retry < 1000 || retry >= 2000 {
		t.Errorf("got %+v, want retry: between 1000 and 2000 ms", e)
	}
	select {
	case _, open := <-s.events:
		if open {
			t.Error("the stream went on after retry:")
		}
	case <-time.After(5 * time.Second):
		t.Error("the stream did not end")
	}
	status, header, _ := f.problemOf(f.request("/v1/live?topics=learner:ada", asHeader, asAda))
	if status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" {
		t.Errorf("a stream after shutdown: %d Retry-After %q, want 503 with Retry-After", status, header.Get("Retry-After"))
	}
}

func TestQuietStreamsGetKeepAliveComments(t *testing.T) {
	f := newFixture(t, live.Options{KeepAlive: 20 * time.Millisecond})
	s := f.open("/v1/live?topics=catalog", asHeader, asAda)
	select {
	case e := <-s.events:
		if e.Comment == "" || e.Event != "" || e.HasID {
			t.Errorf("got %+v, want a comment", e)
		}
	case <-time.After(5 * time.Second):
		t.Error("no comment within 5s")
	}
}

// countingStore counts the documents read by id.
type countingStore struct {
	live.Store
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, coll, id string) (readstore.Doc, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, coll, id)
}

// stoppedFeed closes its channel at once, as no feed should before its context ends.
type stoppedFeed struct{ changes.Feed }

func (stoppedFeed) Subscribe(context.Context) (<-chan changes.Batch, error) {
	ch := make(chan changes.Batch)
	close(ch)
	return ch, nil
}

// A hub whose feed stops says so: its process had better stop than serve streams that stay
// quiet for good.
func TestRunFailsWhenTheFeedStops(t *testing.T) {
	f := newFixture(t, live.Options{})
	hub, err := live.NewHub(stoppedFeed{}, f.store, f.cache, f.positions, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), live.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Run(context.Background()); err == nil {
		t.Error("Run returned nil when the feed stopped")
	}
}
