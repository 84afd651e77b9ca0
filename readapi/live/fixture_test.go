package live_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/auth/ticket"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/live"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a hub over a real SQLite read store in a temp dir, fed by an in-process change
// feed, behind a real HTTP server. Tests commit documents as a projector does: to the cache,
// then the store, then the feed.
type fixture struct {
	t         *testing.T
	store     *sqlitestore.Store
	cache     *cache.Memory
	positions *projections.Positions
	feed      *changes.Memory
	reg       *prometheus.Registry
	hub       *live.Hub
	tickets   *ticket.Tickets
	srv       *httptest.Server
	disclosed *disclosures
	stopHub   func()
}

// disclosures keeps what it records, or fails with fail.
type disclosures struct {
	mu   sync.Mutex
	got  []access.Disclosure
	fail error
}

func (d *disclosures) RecordDisclosure(_ context.Context, x access.Disclosure) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	d.got = append(d.got, x)
	return nil
}

func (d *disclosures) recorded() []access.Disclosure {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

// asHeader names the caller of a test request, "role:id"; the test authenticator reads it.
const asHeader = "X-Test-As"

func newFixture(t *testing.T, opts live.Options) *fixture {
	t.Helper()
	return newFixtureWith(t, opts, nil)
}

// noDisclosures asks newFixture for a hub that cannot record disclosures.
type noDisclosures struct{ access.Disclosures }

// newFixtureWith runs the hub over wrap(store) when wrap is not nil.
func newFixtureWith(t *testing.T, opts live.Options, wrap func(live.Store) live.Store) *fixture {
	t.Helper()
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: store, cache: cache.NewMemory(1024), positions: projections.NewPositions(),
		feed: changes.NewMemory(64), reg: prometheus.NewRegistry(), disclosed: &disclosures{}}
	f.positions.RaiseCacheFence(documents.CoursesProjection, 0)
	f.positions.RaiseCacheFence(documents.LearnersProjection, 0)
	switch opts.Disclosures.(type) {
	case nil:
		opts.Disclosures = f.disclosed
	case noDisclosures:
		opts.Disclosures = nil
	}
	var hubStore live.Store = store
	if wrap != nil {
		hubStore = wrap(store)
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = time.Hour // tests that want comments ask for them
	}
	feed := &signalFeed{Memory: f.feed, subscribed: make(chan struct{})}
	f.hub, err = live.NewHub(feed, hubStore, f.cache, f.positions, f.reg, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		t.Fatal(err)
	}
	f.tickets, _ = ticket.New(ticket.NewMemory(), 0)
	r := chi.NewRouter()
	r.Use(headAsGet)
	api := r.With(testAuthenticator)
	streams := r.With(ticket.Authenticate(f.tickets, testAuthenticator, slog.New(slog.DiscardHandler)))
	f.hub.Routes(streams, api, f.tickets)
	f.srv = httptest.NewServer(r)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- f.hub.Run(ctx) }()
	f.stopHub = sync.OnceFunc(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
	t.Cleanup(func() {
		f.stopHub()
		f.srv.Close()
		store.Close()
	})
	// What is published before Run subscribes never reaches it.
	select {
	case <-feed.subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("the hub did not subscribe to the feed")
	}
	return f
}

// signalFeed says when the hub has subscribed.
type signalFeed struct {
	*changes.Memory
	subscribed chan struct{}
}

func (s *signalFeed) Subscribe(ctx context.Context) (<-chan changes.Batch, error) {
	ch, err := s.Memory.Subscribe(ctx)
	close(s.subscribed)
	return ch, err
}

// headAsGet serves HEAD with the GET route, as serve does.
func headAsGet(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rctx := chi.RouteContext(r.Context()); rctx != nil && r.Method == http.MethodHead {
			rctx.RouteMethod = http.MethodGet
		}
		next.ServeHTTP(w, r)
	})
}

// testAuthenticator admits the caller the request names in asHeader.
func testAuthenticator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role, id, ok := strings.Cut(r.Header.Get(asHeader), ":")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), domain.Actor{UserID: id, Role: domain.Role(role)})))
	})
}

// commit writes docs of coll at their positions as the projection that owns coll does: the
// cache (for documents served by id), the store, the projection's position, then the feed.
func (f *fixture) commit(coll string, docs ...readstore.Doc) {
	f.t.Helper()
	proj := documents.LearnersProjection
	if coll == documents.Catalog || coll == documents.CourseDetails || coll == documents.Stats {
		proj = documents.CoursesProjection
	}
	var writes []readstore.Write
	b := changes.Batch{Projection: proj, CommittedAt: time.Now()}
	var top uint64
	for _, d := range docs {
		writes = append(writes, readstore.Write{Coll: coll, Doc: d})
		b.Changes = append(b.Changes, changes.Change{Coll: coll, ID: d.ID, Position: d.Position})
		top = max(top, d.Position)
		if coll == documents.Dashboards || coll == documents.CourseDetails || coll == documents.Stats {
			f.cache.Set(context.Background(), coll+":"+d.ID, cache.Entry{Position: d.Position, AsOf: d.Position, Body: d.Body})
		}
	}
	top = max(top, f.positions.Position(proj))
	if err := f.store.Commit(context.Background(), proj, top, writes); err != nil {
		f.t.Fatal(err)
	}
	f.positions.Advance(proj, top)
	if err := f.feed.Publish(context.Background(), b); err != nil {
		f.t.Fatal(err)
	}
}

// put writes docs to the store alone, as a projector did before the hub ran.
func (f *fixture) put(coll string, docs ...readstore.Doc) {
	f.t.Helper()
	var writes []readstore.Write
	for _, d := range docs {
		writes = append(writes, readstore.Write{Coll: coll, Doc: d})
	}
	if err := f.store.Commit(context.Background(), "seed-"+coll, 0, writes); err != nil {
		f.t.Fatal(err)
	}
}

func doc(id string, pos uint64, v any) readstore.Doc {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return readstore.Doc{ID: id, Position: pos, Body: b}
}

func dashboard(id string, progress float64) documents.Dashboard {
	return documents.Dashboard{LearnerID: id, Name: "Learner " + id, Enrollments: []documents.Enrollment{{CourseID: "go", Title: "Go",
		Status: "active", Progress: progress, CompletedModules: []string{}, ModuleCount: 4,
		EnrolledAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), LastActivityAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}}
}

func details(id, status, instructor string) documents.CourseDetail {
	return documents.CourseDetail{CatalogItem: documents.CatalogItem{ID: id, Title: "Course " + id, Category: "programming", Level: "beginner",
		Instructor: documents.Instructor{ID: instructor, Name: "Instructor " + instructor}}, Status: status, Modules: []documents.Module{}}
}

func catalogEntry(id, status string, enrolled int) documents.CatalogEntry {
	return documents.CatalogEntry{CatalogItem: documents.CatalogItem{ID: id, Title: "Course " + id, Category: "programming", Level: "beginner",
		Instructor: documents.Instructor{ID: "ines", Name: "Ines"}, EnrollmentCount: enrolled}, Status: status, InstructorID: "ines"}
}

// event is one message of a stream as a client parses it.
type event struct {
	ID, Event, Data, Retry string
	HasID                  bool
	Comment                string
}

// client is an open stream and the messages parsed from it.
type client struct {
	t      *testing.T
	resp   *http.Response
	events chan event
	done   chan struct{}
}

// request builds a GET of the stream with headers given as name, value pairs.
func (f *fixture) request(path string, headers ...string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// open opens a stream that must open (200 text/event-stream).
func (f *fixture) open(path string, headers ...string) *client {
	f.t.Helper()
	return f.openWith(http.DefaultClient, path, headers...)
}

func (f *fixture) openWith(hc *http.Client, path string, headers ...string) *client {
	f.t.Helper()
	resp, err := hc.Do(f.request(path, headers...))
	if err != nil {
		f.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		f.t.Fatalf("GET %s: %d %s %s, want a stream", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	c := &client{t: f.t, resp: resp, events: make(chan event, 1024), done: make(chan struct{})}
	go c.read()
	f.t.Cleanup(c.close)
	return c
}

// read parses the stream as the EventSource algorithm does, one message per blank line.
func (c *client) read() {
	defer close(c.done)
	defer close(c.events)
	r := bufio.NewReader(c.resp.Body)
	var e event
	dispatch := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if dispatch {
				c.events <- e
			}
			e, dispatch = event{}, false
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		dispatch = true
		switch name {
		case "":
			e.Comment = value
		case "id":
			e.ID, e.HasID = value, true
		case "event":
			e.Event = value
		case "data":
			if e.Data != "" {
				e.Data += "\n"
			}
			e.Data += value
		case "retry":
			e.Retry = value
		}
	}
}

func (c *client) close() {
	c.resp.Body.Close()
	<-c.done
}

// next returns the next message that is not a comment, or fails after a while.
func (c *client) next() event {
	c.t.Helper()
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				c.t.Fatal("the stream ended")
			}
			if e.Comment != "" && e.Event == "" && !e.HasID {
				continue
			}
			return e
		case <-time.After(10 * time.Second):
			c.t.Fatal("no message within 10s")
		}
	}
}

// quiet checks that no message but comments comes within d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e, ok := <-c.events:
			if ok && e.Comment != "" && e.Event == "" && !e.HasID {
				continue
			}
			c.t.Fatalf("got %+v (open: %v), want nothing", e, ok)
		case <-deadline:
			return
		}
	}
}

// problemOf sends req and returns its status and problem document; it must not open a stream.
func (f *fixture) problemOf(req *http.Request) (int, http.Header, map[string]any) {
	f.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		b, _ := io.ReadAll(resp.Body)
		f.t.Fatalf("GET %s: %d %s %.200s, want a problem", req.URL, resp.StatusCode, ct, b)
	}
	var p map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		f.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, p
}

var errDown = errors.New("down")

// metric is the value of the metric name of the hub's registry whose labels include labels
// (name, value pairs), or 0.
func (f *fixture) metric(name string, labels ...string) float64 {
	f.t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	next:
		for _, m := range fam.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == labels[i] && l.GetValue() == labels[i+1] }) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}
