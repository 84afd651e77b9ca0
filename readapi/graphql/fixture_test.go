package graphql_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/metered"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
	"github.com/edutrack/edutrack/readapi"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/graphql"
)

// fixture serves the REST read routes and the GraphQL endpoint side by side, over one real
// SQLite read store whose reads are counted (metered), with documents the test writes by hand.
// The caller of each request is the one the test names (the authenticator's part).
type fixture struct {
	t         testing.TB
	store     *sqlitestore.Store
	cache     *cache.Memory
	positions *projections.Positions
	reg       *prometheus.Registry
	server    *httptest.Server
	disclosed *disclosures
}

type disclosures struct {
	mu  sync.Mutex
	got []access.Disclosure
}

func (d *disclosures) RecordDisclosure(_ context.Context, x access.Disclosure) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, x)
	return nil
}

func (d *disclosures) recorded() []access.Disclosure {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

var (
	admin    = domain.Actor{UserID: "root", Role: domain.Admin}
	auditor  = domain.Actor{UserID: "audit", Role: domain.Auditor}
	teacher1 = domain.Actor{UserID: "i1", Role: domain.Instructor} // teaches every published course
	teacher2 = domain.Actor{UserID: "i2", Role: domain.Instructor} // teaches the draft
	learner1 = domain.Actor{UserID: "l1", Role: domain.Learner}    // enrolled in c01
	learner2 = domain.Actor{UserID: "l2", Role: domain.Learner}
)

func newFixture(t testing.TB, opts graphql.Options) *fixture {
	t.Helper()
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{t: t, store: store, cache: cache.NewMemory(4096), positions: projections.NewPositions(),
		reg: prometheus.NewRegistry(), disclosed: &disclosures{}}
	f.positions.RaiseCacheFence(documents.CoursesProjection, 0)
	f.positions.RaiseCacheFence(documents.LearnersProjection, 0)
	reads, err := metered.New(store, f.reg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	api, err := readapi.New(reads, f.cache, f.positions, f.reg, log, readapi.Options{Disclosures: f.disclosed, ConsistencyWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Disclosures == nil {
		opts.Disclosures = f.disclosed
	}
	gql, err := graphql.New(api, f.reg, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/graphql/schema.graphql", graphql.ServeSchema)
	r.Group(func(r chi.Router) {
		r.Use(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				var a domain.Actor
				if err := json.Unmarshal([]byte(req.Header.Get("X-Test-Caller")), &a); err != nil {
					http.Error(w, "no caller", http.StatusUnauthorized)
					return
				}
				next.ServeHTTP(w, req.WithContext(auth.NewContext(req.Context(), a)))
			})
		})
		api.Routes(r)
		gql.Routes(r)
	})
	f.server = httptest.NewServer(r)
	t.Cleanup(f.server.Close)
	return f
}

func (f *fixture) put(projection, coll string, docs ...readstore.Doc) {
	f.t.Helper()
	var writes []readstore.Write
	var top uint64
	for _, d := range docs {
		writes = append(writes, readstore.Write{Coll: coll, Doc: d})
		top = max(top, d.Position)
	}
	if err := f.store.Commit(context.Background(), projection, top, writes); err != nil {
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

// seed writes n published courses c01.. taught by i1 with their stats, a draft taught by i2,
// and learner l1 enrolled in c01 (on its dashboard and its roster), and l2 with no courses.
func (f *fixture) seed(n int) {
	f.t.Helper()
	var catalog, details, stats []readstore.Doc
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("c%02d", i)
		at := time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)
		item := documents.CatalogItem{ID: id, Title: "Course " + id, Category: "math", Level: "beginner",
			Instructor: documents.Instructor{ID: "i1", Name: "Ada"}, ModuleCount: 1, EnrollmentCount: i, PublishedAt: &at}
		catalog = append(catalog, doc(id, uint64(i), documents.CatalogEntry{CatalogItem: item, Status: "published", InstructorID: "i1",
			TitleWords: documents.Words(item.Title), TitleKey: strings.ToLower(item.Title), PublishedN: at.UnixNano()}))
		details = append(details, doc(id, uint64(i), documents.CourseDetail{CatalogItem: item, Status: "published", Description: "About " + id,
			Modules: []documents.Module{{ID: "m1", Title: "Intro"}}, UpdatedAt: at}))
		stats = append(stats, doc(id, uint64(i), documents.CourseStats{CourseID: id, Enrolled: i, Active: i,
			ModuleCompletions: []documents.ModuleCompletions{{ModuleID: "m1", Completions: 0}}}))
	}
	draft := documents.CatalogItem{ID: "draft", Title: "Draft", Category: "math", Level: "beginner", Instructor: documents.Instructor{ID: "i2", Name: "Bo"}}
	catalog = append(catalog, doc("draft", 100, documents.CatalogEntry{CatalogItem: draft, Status: "draft", InstructorID: "i2"}))
	details = append(details, doc("draft", 100, documents.CourseDetail{CatalogItem: draft, Status: "draft", Modules: []documents.Module{}}))
	stats = append(stats, doc("draft", 100, documents.CourseStats{CourseID: "draft", ModuleCompletions: []documents.ModuleCompletions{}}))
	f.put(documents.CoursesProjection, documents.Catalog, catalog...)
	f.put(documents.CoursesProjection, documents.CourseDetails, details...)
	f.put(documents.CoursesProjection, documents.Stats, stats...)
	enrolled := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	f.put(documents.LearnersProjection, documents.Dashboards,
		doc("l1", 200, documents.Dashboard{LearnerID: "l1", Name: "Lin", Enrollments: []documents.Enrollment{{CourseID: "c01", Title: "Course c01",
			Status: "active", CompletedModules: []string{}, ModuleCount: 1, EnrolledAt: enrolled, LastActivityAt: enrolled}}}),
		doc("l2", 201, documents.Dashboard{LearnerID: "l2", Name: "Lou", Enrollments: []documents.Enrollment{}}))
	f.put(documents.LearnersProjection, documents.Rosters,
		doc(documents.RosterID("c01", "l1"), 200, documents.RosterEntry{RosterItem: documents.RosterItem{LearnerID: "l1", Name: "Lin",
			Status: "active", EnrolledAt: enrolled}, CourseID: "c01", EnrolledAtN: enrolled.UnixNano()}))
}

// roundTrips is how many reads of the read store the fixture's API has made so far.
func (f *fixture) roundTrips() int {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() == "edutrack_readstore_round_trips_total" {
			for _, m := range mf.GetMetric() {
				n += int(m.GetCounter().GetValue())
			}
		}
	}
	return n
}

// gqlResponse is a GraphQL answer.
type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (e gqlError) code() string { s, _ := e.Extensions["code"].(string); return s }

// codes are the extensions.code of each error.
func (r gqlResponse) codes() []string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.code())
	}
	return out
}

// post sends a GraphQL request as a, answering its status and body.
func (f *fixture) post(a domain.Actor, body any) (int, gqlResponse) {
	f.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.send(a, http.MethodPost, "/graphql", b)
}

func (f *fixture) send(a domain.Actor, method, path string, body []byte) (int, gqlResponse) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.server.URL+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	caller, _ := json.Marshal(a)
	req.Header.Set("X-Test-Caller", string(caller))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	// Every answer, of every request any test sends, is kept by no cache on the way.
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		f.t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, cc)
	}
	var out gqlResponse
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		f.t.Fatalf("%s %s: %d, not a GraphQL answer: %v", method, path, res.StatusCode, err)
	}
	return res.StatusCode, out
}

// query sends query with variables as a.
func (f *fixture) query(a domain.Actor, query string, vars map[string]any) gqlResponse {
	f.t.Helper()
	_, r := f.post(a, map[string]any{"query": query, "variables": vars})
	return r
}

// rest answers the status of a REST GET of path as a.
func (f *fixture) rest(a domain.Actor, path string) int {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.server.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	caller, _ := json.Marshal(a)
	req.Header.Set("X-Test-Caller", string(caller))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// metricOf is the counter of operations of name with outcome.
func metricOf(t *testing.T, f *fixture, name, outcome string) prometheus.Collector {
	t.Helper()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "edutrack_graphql_operations_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["operation"] == name && labels["outcome"] == outcome {
				c.Add(m.GetCounter().GetValue())
			}
		}
	}
	return c
}
