package readapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
	"github.com/edutrack/edutrack/readapi"
	"github.com/edutrack/edutrack/readapi/access"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is the read API over a real SQLite read store in a temp dir, with documents the test
// writes by hand.
type fixture struct {
	t         testing.TB
	store     *sqlitestore.Store
	cache     *cache.Memory
	positions *projections.Positions
	reg       *prometheus.Registry
	router    chi.Router
	// disclosed holds the disclosures the API recorded.
	disclosed *disclosures
	api       *readapi.API
}

// disclosures is a Disclosures that keeps what it records, or fails with err.
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

// admin is the caller of the fixture's requests unless a test names another.
var admin = domain.Actor{UserID: "root", Role: domain.Admin}

func newFixture(t testing.TB, opts readapi.Options) *fixture {
	return newFixtureWith(t, opts, nil)
}

// newFixtureWith builds the API over wrap(positions) when wrap is not nil.
func newFixtureWith(t testing.TB, opts readapi.Options, wrap func(*projections.Positions) readapi.Positions) *fixture {
	t.Helper()
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{t: t, store: store, cache: cache.NewMemory(1024), positions: projections.NewPositions(),
		reg: prometheus.NewRegistry(), router: chi.NewRouter(), disclosed: &disclosures{}}
	// As a process does once it has read them from the store: no cache write has failed.
	f.positions.RaiseCacheFence(documents.CoursesProjection, 0)
	f.positions.RaiseCacheFence(documents.LearnersProjection, 0)
	if opts.Disclosures == nil {
		opts.Disclosures = f.disclosed
	}
	var positions readapi.Positions = f.positions
	if wrap != nil {
		positions = wrap(f.positions)
	}
	api, err := readapi.New(store, f.cache, positions, f.reg, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		t.Fatal(err)
	}
	api.Routes(f.router)
	f.api = api
	return f
}

// put commits documents of coll as projection does, with the checkpoint at the highest position.
// It does not advance the projection's position: the test does, when it means to.
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
	if s, ok := v.(string); ok {
		return readstore.Doc{ID: id, Position: pos, Body: []byte(s)}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return readstore.Doc{ID: id, Position: pos, Body: b}
}

// get answers a GET of path by an admin, with headers given as name, value pairs.
func (f *fixture) get(path string, headers ...string) *http.Response {
	f.t.Helper()
	return f.getAs(admin, path, headers...)
}

// getAs answers a GET of path by p, as the authenticator would pass it on.
func (f *fixture) getAs(p domain.Actor, path string, headers ...string) *http.Response {
	f.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req = req.WithContext(auth.NewContext(req.Context(), p))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	f.router.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// wantOK checks a 200 JSON answer and returns its body.
func wantOK(t *testing.T, path string, resp *http.Response) []byte {
	t.Helper()
	b := body(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %q %s, want 200 application/json", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return b
}

func wantProblem(t *testing.T, path string, resp *http.Response, status int, field string) {
	t.Helper()
	b := body(t, resp)
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != problem.ContentType {
		t.Errorf("GET %s: %d %q %s, want %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), b, status, problem.ContentType)
		return
	}
	var d problem.Details
	if err := json.Unmarshal(b, &d); err != nil || d.Status != status || d.Field != field {
		t.Errorf("GET %s: problem %s (%v), want status %d on field %q", path, b, err, status, field)
	}
}

// counter returns the value of a counter of the registry with label read_model = model.
func (f *fixture) counter(name, model string) float64 {
	f.t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "read_model" && l.GetValue() == model {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestDocumentRoutes(t *testing.T) {
	t.Parallel()
	routes := []struct {
		path, coll, projection, cacheControl string
	}{
		{"/v1/courses/go", documents.CourseDetails, documents.CoursesProjection, "no-cache"},
		{"/v1/courses/go/stats", documents.Stats, documents.CoursesProjection, "no-cache"},
		{"/v1/learners/go/dashboard", documents.Dashboards, documents.LearnersProjection, "private, no-cache"},
	}
	for _, r := range routes {
		t.Run(r.coll, func(t *testing.T) {
			t.Parallel()
			t.Run("serves_the_stored_body_byte_for_byte_with_its_position_as_ETag", func(t *testing.T) {
				f := newFixture(t, readapi.Options{})
				stored := `{"id": "go",   "z":1, "a":[2]}`
				f.put(r.projection, r.coll, doc("go", 7, stored))
				resp := f.get(r.path)
				if b := wantOK(t, r.path, resp); string(b) != stored {
					t.Errorf("GET %s: %s, want the stored %s", r.path, b, stored)
				}
				if etag, cc := resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"); etag != `"7"` || cc != r.cacheControl {
					t.Errorf("GET %s: ETag %s, Cache-Control %q; want \"7\" and %q", r.path, etag, cc, r.cacheControl)
				}
			})
			t.Run("reads_the_store_once_then_the_cache", func(t *testing.T) {
				f := newFixture(t, readapi.Options{})
				f.put(r.projection, r.coll, doc("go", 3, `{"v":3}`))
				for range 3 {
					wantOK(t, r.path, f.get(r.path))
				}
				if hits, misses := f.counter("edutrack_cache_hits_total", r.coll), f.counter("edutrack_cache_misses_total", r.coll); hits != 2 || misses != 1 {
					t.Errorf("%s: %v hits and %v misses, want 2 and 1", r.coll, hits, misses)
				}
			})
			t.Run("serves_what_the_projector_cached", func(t *testing.T) {
				f := newFixture(t, readapi.Options{})
				f.put(r.projection, r.coll, doc("go", 3, `{"v":3}`))
				f.cache.Set(context.Background(), projections.CacheKey(r.coll, "go"), cache.Entry{Position: 4, Body: []byte(`{"v":4}`)})
				resp := f.get(r.path)
				if b := wantOK(t, r.path, resp); string(b) != `{"v":4}` || resp.Header.Get("ETag") != `"4"` {
					t.Errorf("GET %s: %s ETag %s, want the cached {\"v\":4} at \"4\"", r.path, b, resp.Header.Get("ETag"))
				}
			})
			t.Run("reads_the_store_again_for_an_entry_from_before_the_fence", func(t *testing.T) {
				// A cache write failed at 5 and left the entry of 4 behind; the store has 5.
				f := newFixture(t, readapi.Options{})
				f.put(r.projection, r.coll, doc("go", 5, `{"v":5}`))
				f.cache.Set(context.Background(), projections.CacheKey(r.coll, "go"), cache.Entry{Position: 4, AsOf: 4, Body: []byte(`{"v":4}`)})
				f.positions.Advance(r.projection, 5)
				f.positions.RaiseCacheFence(r.projection, 5)
				resp := f.get(r.path)
				if b := wantOK(t, r.path, resp); string(b) != `{"v":5}` || resp.Header.Get("ETag") != `"5"` {
					t.Errorf("GET %s: %s ETag %s, want the stored {\"v\":5} at \"5\"", r.path, b, resp.Header.Get("ETag"))
				}
				if stale := f.counter("edutrack_cache_stale_total", r.coll); stale != 1 {
					t.Errorf("%s: %v stale entries counted, want 1", r.coll, stale)
				}
				// Written back known current as of 5, it serves the next read.
				wantOK(t, r.path, f.get(r.path))
				if hits := f.counter("edutrack_cache_hits_total", r.coll); hits != 1 {
					t.Errorf("%s: %v hits after the store read, want 1", r.coll, hits)
				}
			})
			t.Run("serves_an_unchanged_document_known_current_as_of_the_fence", func(t *testing.T) {
				// Read from the store once the projection had reached 9, a document of 3 is
				// known current as of 9: a fence raised at 9 leaves it trusted.
				f := newFixture(t, readapi.Options{})
				f.put(r.projection, r.coll, doc("go", 3, `{"v":3}`))
				f.positions.Advance(r.projection, 9)
				wantOK(t, r.path, f.get(r.path))
				if e, _ := f.cache.Get(context.Background(), projections.CacheKey(r.coll, "go")); e.Position != 3 || e.ValidAsOf() != 9 {
					t.Fatalf("cached %d as of %d, want 3 as of 9", e.Position, e.ValidAsOf())
				}
				f.positions.RaiseCacheFence(r.projection, 9)
				wantOK(t, r.path, f.get(r.path))
				if hits := f.counter("edutrack_cache_hits_total", r.coll); hits != 1 {
					t.Errorf("%s: %v hits, want 1", r.coll, hits)
				}
			})
			t.Run("trusts_no_entry_before_it_knows_the_fence", func(t *testing.T) {
				// A process that has not read the fences yet (starting) cannot tell a stale entry.
				f := newFixtureWith(t, readapi.Options{}, func(*projections.Positions) readapi.Positions {
					return projections.NewPositions()
				})
				f.put(r.projection, r.coll, doc("go", 5, `{"v":5}`))
				f.cache.Set(context.Background(), projections.CacheKey(r.coll, "go"), cache.Entry{Position: 4, Body: []byte(`{"v":4}`)})
				if b := wantOK(t, r.path, f.get(r.path)); string(b) != `{"v":5}` {
					t.Errorf("GET %s: %s, want the stored {\"v\":5}", r.path, b)
				}
				if hits := f.counter("edutrack_cache_hits_total", r.coll); hits != 0 {
					t.Errorf("%s: %v hits, want none", r.coll, hits)
				}
			})
			t.Run("answers_404_for_an_unknown_id", func(t *testing.T) {
				f := newFixture(t, readapi.Options{})
				// Before the collection exists, and after.
				wantProblem(t, r.path, f.get(r.path), http.StatusNotFound, "")
				f.put(r.projection, r.coll, doc("other", 3, `{}`))
				wantProblem(t, r.path, f.get(r.path), http.StatusNotFound, "")
			})
		})
	}
}

// signalling is Positions that says when a read starts waiting.
type signalling struct {
	*projections.Positions
	waiting chan uint64
}

func (s signalling) Wait(ctx context.Context, pos uint64, names ...string) error {
	s.waiting <- pos
	return s.Positions.Wait(ctx, pos, names...)
}

func TestMinPosition(t *testing.T) {
	t.Parallel()
	t.Run("waits_for_the_projection_then_reads_what_it_wrote", func(t *testing.T) {
		t.Parallel()
		waiting := make(chan uint64, 1)
		f := newFixtureWith(t, readapi.Options{ConsistencyWait: time.Minute}, func(p *projections.Positions) readapi.Positions {
			return signalling{p, waiting}
		})
		f.put(documents.CoursesProjection, documents.CourseDetails, doc("go", 7, `{"v":7}`))
		f.positions.Advance(documents.CoursesProjection, 7)
		done := make(chan *http.Response, 1)
		go func() { done <- f.get("/v1/courses/go?minPosition=8") }()
		if pos := <-waiting; pos != 8 {
			t.Errorf("the read waits for %d, want 8", pos)
		}
		f.put(documents.CoursesProjection, documents.CourseDetails, doc("go", 8, `{"v":8}`))
		f.positions.Advance(documents.CoursesProjection, 8)
		resp := <-done
		if b := wantOK(t, "/v1/courses/go?minPosition=8", resp); string(b) != `{"v":8}` || resp.Header.Get("ETag") != `"8"` {
			t.Errorf("read after waiting: %s ETag %s, want {\"v\":8} at \"8\"", b, resp.Header.Get("ETag"))
		}
	})

	t.Run("waits_only_for_the_projections_behind_the_route", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, readapi.Options{ConsistencyWait: 20 * time.Millisecond})
		f.put(documents.CoursesProjection, documents.CourseDetails, doc("go", 3, `{}`))
		f.put(documents.CoursesProjection, documents.Stats, doc("go", 3, `{}`))
		f.put(documents.LearnersProjection, documents.Dashboards, doc("ada", 5, `{}`))
		f.positions.Advance(documents.CoursesProjection, 3)
		f.positions.Advance(documents.LearnersProjection, 5)
		for _, tc := range []struct {
			path string
			want int
		}{
			{"/v1/learners/ada/dashboard?minPosition=5", http.StatusOK},
			{"/v1/courses/go?minPosition=3", http.StatusOK},
			{"/v1/courses/go/roster?minPosition=3", http.StatusOK},
			{"/v1/courses?minPosition=3", http.StatusOK},
			{"/v1/courses/go?minPosition=4", http.StatusServiceUnavailable},
			{"/v1/courses/go/stats?minPosition=4", http.StatusServiceUnavailable},
			{"/v1/courses?minPosition=4", http.StatusServiceUnavailable},
			{"/v1/courses/go/roster?minPosition=4", http.StatusServiceUnavailable}, // the roster needs both
			{"/v1/learners/ada/dashboard?minPosition=6", http.StatusServiceUnavailable},
		} {
			resp := f.get(tc.path)
			if tc.want == http.StatusOK {
				wantOK(t, tc.path, resp)
				continue
			}
			wantProblem(t, tc.path, resp, tc.want, "minPosition")
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("GET %s: 503 without Retry-After", tc.path)
			}
		}
	})
}

func TestETag(t *testing.T) {
	t.Parallel()
	f := newFixture(t, readapi.Options{})
	f.put(documents.CoursesProjection, documents.CourseDetails, doc("go", 7, `{}`))
	for _, tc := range []struct {
		ifNoneMatch string
		want        int
	}{
		{`"7"`, http.StatusNotModified},
		{`"1", "7"`, http.StatusNotModified},
		{`"1","7"`, http.StatusNotModified},
		{`*`, http.StatusNotModified},
		// If-None-Match compares weakly (RFC 9110, 13.1.2): an intermediary may have weakened the tag.
		{`W/"7"`, http.StatusNotModified},
		{`"70"`, http.StatusOK},
		{`7`, http.StatusOK},
		{`"6"`, http.StatusOK},
	} {
		resp := f.get("/v1/courses/go", "If-None-Match", tc.ifNoneMatch)
		b := body(t, resp)
		if resp.StatusCode != tc.want || (tc.want == http.StatusNotModified && len(b) != 0) {
			t.Errorf("If-None-Match %s: %d with body %q, want %d", tc.ifNoneMatch, resp.StatusCode, b, tc.want)
		}
	}
}

// entry is a catalog document as the courses projector writes it.
func entry(id, title, category, level, instructorID string, enrollments int, published time.Time) documents.CatalogEntry {
	at := published.UTC()
	return documents.CatalogEntry{
		CatalogItem: documents.CatalogItem{ID: id, Title: title, Category: category, Level: level,
			Instructor: documents.Instructor{ID: instructorID, Name: "Name of " + instructorID}, ModuleCount: 1,
			EnrollmentCount: enrollments, PublishedAt: &at},
		Status: "published", InstructorID: instructorID, TitleWords: documents.Words(title),
		TitleKey: title, PublishedN: at.UnixNano(),
	}
}

type catalogPage struct {
	Items      []documents.CatalogItem `json:"items"`
	NextCursor string                  `json:"nextCursor"`
}

func decodeStrict[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s as %T: %v", b, v, err)
	}
	return v
}

// follow reads a listing page by page and returns its pages.
func follow[T any](t *testing.T, f *fixture, path string) [][]T {
	t.Helper()
	var out [][]T
	for cursor := ""; len(out) < 100; {
		p := path
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		page := decodeStrict[struct {
			Items      []T    `json:"items"`
			NextCursor string `json:"nextCursor"`
		}](t, wantOK(t, p, f.get(p)))
		out = append(out, page.Items)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
	t.Fatalf("%s: the cursor does not advance", path)
	return nil
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	base := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	f := newFixture(t, readapi.Options{})
	entries := []documents.CatalogEntry{
		entry("c1", "go basics", "programming", "beginner", "i1", 5, base.Add(1*time.Hour)),
		entry("c2", "rust basics", "programming", "advanced", "i2", 5, base.Add(2*time.Hour)),
		entry("c3", "sql basics", "data", "beginner", "i1", 5, base.Add(3*time.Hour)),
		entry("c4", "art", "design", "beginner", "i2", 5, base.Add(4*time.Hour)),
		entry("c5", "zen", "design", "intermediate", "i1", 2, base.Add(5*time.Hour)),
	}
	draft := entry("c6", "draft basics", "programming", "beginner", "i1", 0, base)
	draft.Status, draft.PublishedAt, draft.PublishedN = "draft", nil, 0
	var docs []readstore.Doc
	for i, e := range entries {
		docs = append(docs, doc(e.ID, uint64(i+1), e))
	}
	docs = append(docs, doc(draft.ID, 9, draft))
	f.put(documents.CoursesProjection, documents.Catalog, docs...)

	t.Run("lists_each_item_with_its_own_publishedAt", func(t *testing.T) {
		page := decodeStrict[catalogPage](t, wantOK(t, "/v1/courses?sort=title", f.get("/v1/courses?sort=title")))
		var want []documents.CatalogItem
		for _, e := range entries {
			want = append(want, e.CatalogItem)
		}
		slices.SortFunc(want, func(a, b documents.CatalogItem) int { return strings.Compare(a.Title, b.Title) })
		if diff := cmp.Diff(want, page.Items); diff != "" {
			t.Errorf("catalog items (-want +got):\n%s", diff)
		}
	})

	t.Run("pages_through_ties_in_id_order", func(t *testing.T) {
		// Four courses share 5 enrollments: the cursor must go on inside the tie.
		got := follow[documents.CatalogItem](t, f, "/v1/courses?sort=popular&limit=2")
		var ids [][]string
		for _, p := range got {
			var page []string
			for _, it := range p {
				page = append(page, it.ID)
			}
			ids = append(ids, page)
		}
		if want := [][]string{{"c1", "c2"}, {"c3", "c4"}, {"c5"}}; !cmp.Equal(ids, want) {
			t.Errorf("pages by popularity: %v, want %v", ids, want)
		}
	})

	t.Run("refuses_a_cursor_from_another_sort", func(t *testing.T) {
		// A title cursor given to the newest sort would start the listing over.
		page := decodeStrict[catalogPage](t, wantOK(t, "", f.get("/v1/courses?sort=title&limit=2")))
		p := "/v1/courses?sort=newest&limit=2&cursor=" + page.NextCursor
		wantProblem(t, p, f.get(p), http.StatusBadRequest, "cursor")
	})

	t.Run("refuses_a_cursor_that_is_not_one", func(t *testing.T) {
		for _, c := range []string{"not*base64", "e30", base64.RawURLEncoding.EncodeToString([]byte(`{"v":[true],"id":"c1"}`)),
			base64.RawURLEncoding.EncodeToString([]byte(`{"v":[],"id":"c1"}`))} {
			p := "/v1/courses?cursor=" + c
			wantProblem(t, p, f.get(p), http.StatusBadRequest, "cursor")
		}
	})

	t.Run("changes_the_listing's_ETag_only_with_its_documents", func(t *testing.T) {
		g := newFixture(t, readapi.Options{})
		g.put(documents.CoursesProjection, documents.Catalog, docs...)
		const first = "/v1/courses?sort=newest&limit=2" // c5, c4
		etag := g.get(first).Header.Get("ETag")
		if etag == "" || g.get(first).Header.Get("ETag") != etag {
			t.Fatalf("ETag %q, want one, stable across reads", etag)
		}
		if resp := g.get(first, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
			t.Errorf("listing with its ETag: %d, want 304", resp.StatusCode)
		}
		moved := entries[0] // c1, on the last page
		moved.Title = "go basics, again"
		g.put(documents.CoursesProjection, documents.Catalog, doc(moved.ID, 20, moved))
		g.positions.Advance(documents.CoursesProjection, 20) // as the projector does: the kept pages are no longer current
		if got := g.get(first).Header.Get("ETag"); got != etag {
			t.Errorf("a change on another page changed the first page's ETag from %s to %s", etag, got)
		}
		changed := entries[4] // c5, on the first page
		changed.EnrollmentCount = 3
		g.put(documents.CoursesProjection, documents.Catalog, doc(changed.ID, 21, changed))
		g.positions.Advance(documents.CoursesProjection, 21)
		if got := g.get(first).Header.Get("ETag"); got == etag {
			t.Errorf("the first page kept ETag %s after one of its documents changed", etag)
		}
	})

	t.Run("answers_an_empty_list_on_an_empty_store", func(t *testing.T) {
		g := newFixture(t, readapi.Options{})
		if b := wantOK(t, "/v1/courses", g.get("/v1/courses")); string(b) != `{"items":[],"nextCursor":null}` {
			t.Errorf("empty catalog: %s, want {\"items\":[],\"nextCursor\":null}", b)
		}
	})
}

func TestRoster(t *testing.T) {
	t.Parallel()
	f := newFixture(t, readapi.Options{})
	base := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	f.put(documents.CoursesProjection, documents.CourseDetails, doc("go", 1, `{}`), doc("empty", 2, `{}`))
	var want []documents.RosterItem
	var docs []readstore.Doc
	for i, l := range []string{"ada", "bob", "cyd", "dan", "eve"} {
		enrolled := base.Add(time.Duration(i/2) * time.Hour) // ada and bob, cyd and dan share a time
		done := enrolled.Add(time.Duration(i+1) * time.Minute)
		item := documents.RosterItem{LearnerID: l, Name: "Learner " + l, Status: "completed", Progress: 1, EnrolledAt: enrolled, CompletedAt: &done}
		if l == "cyd" { // ada and bob, then dan and eve, completed one after the other
			item.Status, item.Progress, item.CompletedAt = "active", 0.5, nil
		}
		want = append(want, item)
		docs = append(docs, doc(documents.RosterID("go", l), uint64(10+i),
			documents.RosterEntry{RosterItem: item, CourseID: "go", EnrolledAtN: enrolled.UnixNano()}))
	}
	other := documents.RosterEntry{RosterItem: documents.RosterItem{LearnerID: "zed", Name: "Zed", Status: "active", EnrolledAt: base},
		CourseID: "rust", EnrolledAtN: base.UnixNano()}
	docs = append(docs, doc(documents.RosterID("rust", "zed"), 20, other))
	f.put(documents.LearnersProjection, documents.Rosters, docs...)

	t.Run("lists_each_learner_with_their_own_completedAt", func(t *testing.T) {
		page := decodeStrict[struct {
			Items      []documents.RosterItem `json:"items"`
			NextCursor *string                `json:"nextCursor"`
		}](t, wantOK(t, "/v1/courses/go/roster", f.get("/v1/courses/go/roster")))
		if page.NextCursor != nil {
			t.Errorf("the only page of go's roster names a next one: %q", *page.NextCursor)
		}
		if diff := cmp.Diff(want, page.Items); diff != "" {
			t.Errorf("roster of go (-want +got):\n%s", diff)
		}
	})

	t.Run("pages_in_enrollment_order_through_ties", func(t *testing.T) {
		for limit := 1; limit <= 6; limit++ {
			var got []string
			pages := follow[documents.RosterItem](t, f, "/v1/courses/go/roster?limit="+strconv.Itoa(limit))
			for _, p := range pages {
				for _, it := range p {
					got = append(got, it.LearnerID)
				}
			}
			if wantPages := (5 + limit - 1) / limit; !slices.Equal(got, []string{"ada", "bob", "cyd", "dan", "eve"}) || len(pages) != wantPages {
				t.Errorf("roster by pages of %d: %v in %d pages, want ada to eve in %d", limit, got, len(pages), wantPages)
			}
		}
	})

	t.Run("answers_an_empty_list_for_a_course_without_learners", func(t *testing.T) {
		if b := wantOK(t, "/v1/courses/empty/roster", f.get("/v1/courses/empty/roster")); string(b) != `{"items":[],"nextCursor":null}` {
			t.Errorf("roster of a course without learners: %s, want {\"items\":[],\"nextCursor\":null}", b)
		}
	})

	t.Run("answers_404_for_a_course_it_does_not_know", func(t *testing.T) {
		// rust has a roster entry but no course document.
		for _, p := range []string{"/v1/courses/nope/roster", "/v1/courses/rust/roster"} {
			wantProblem(t, p, f.get(p), http.StatusNotFound, "")
		}
	})
}

func TestNewRefusesMissingDependencies(t *testing.T) {
	t.Parallel()
	store, err := sqlitestore.Open(filepath.Join(t.TempDir(), "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := slog.New(slog.DiscardHandler)
	c, p, reg := cache.NewMemory(64), projections.NewPositions(), prometheus.NewRegistry()
	for i, build := range []func() (*readapi.API, error){
		func() (*readapi.API, error) { return readapi.New(nil, c, p, reg, log, readapi.Options{}) },
		func() (*readapi.API, error) { return readapi.New(store, nil, p, reg, log, readapi.Options{}) },
		func() (*readapi.API, error) { return readapi.New(store, c, nil, reg, log, readapi.Options{}) },
		func() (*readapi.API, error) { return readapi.New(store, c, p, nil, log, readapi.Options{}) },
		func() (*readapi.API, error) { return readapi.New(store, c, p, reg, nil, readapi.Options{}) },
	} {
		if api, err := build(); err == nil || api != nil {
			t.Errorf("dependency %d missing: %v, %v; want an error", i, api, err)
		}
	}
}
