package readapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/readapi"
)

// finds is the fixture's read store with its catalog queries counted, and held while gate is
// not nil until it closes.
type finds struct {
	readapi.Store
	n    atomic.Int64
	gate chan struct{}
}

func (s *finds) Find(ctx context.Context, q readstore.Query) ([]readstore.Doc, error) {
	if q.Coll == documents.Catalog {
		s.n.Add(1)
		if s.gate != nil {
			<-s.gate
		}
	}
	return s.Store.Find(ctx, q)
}

// newCountingFixture is newFixture whose API reads the store through a finds.
func newCountingFixture(t *testing.T, opts readapi.Options, gate chan struct{}) (*fixture, *finds) {
	t.Helper()
	f := newFixture(t, opts)
	store := &finds{Store: f.store, gate: gate}
	f.reg, f.router = prometheus.NewRegistry(), chi.NewRouter()
	opts.Disclosures = f.disclosed
	api, err := readapi.New(store, f.cache, f.positions, f.reg, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		t.Fatal(err)
	}
	api.Routes(f.router)
	f.api = api
	return f, store
}

// school commits a catalog of n courses, each at its own position, and advances the courses
// projection past them, as the projector does.
func (f *fixture) school(n int) []documents.CatalogEntry {
	f.t.Helper()
	base := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	var entries []documents.CatalogEntry
	var docs []readstore.Doc
	for i := range n {
		e := entry(fmt.Sprintf("c%02d", i), fmt.Sprintf("course %d of go", i), "programming", "beginner", "i1", i, base.Add(time.Duration(i)*time.Hour))
		entries = append(entries, e)
		docs = append(docs, doc(e.ID, uint64(i+1), e))
	}
	f.put(documents.CoursesProjection, documents.Catalog, docs...)
	f.positions.Advance(documents.CoursesProjection, uint64(n))
	return entries
}

// enroll commits one more enrollment in e at pos and advances the projection to it.
func (f *fixture) enroll(e *documents.CatalogEntry, pos uint64) {
	f.t.Helper()
	e.EnrollmentCount++
	f.put(documents.CoursesProjection, documents.Catalog, doc(e.ID, pos, *e))
	f.positions.Advance(documents.CoursesProjection, pos)
}

// enrollments answers the enrollment count of course id on the catalog page at path.
func enrollments(t *testing.T, f *fixture, path, id string) int {
	t.Helper()
	for _, it := range decodeStrict[catalogPage](t, wantOK(t, path, f.get(path))).Items {
		if it.ID == id {
			return it.EnrollmentCount
		}
	}
	t.Fatalf("GET %s: no course %s", path, id)
	return 0
}

func TestCatalogCache(t *testing.T) {
	t.Parallel()

	t.Run("answers_a_repeated_page_from_one_store_read", func(t *testing.T) {
		t.Parallel()
		f, store := newCountingFixture(t, readapi.Options{CatalogMaxAge: time.Hour}, nil)
		f.school(5)
		const path = "/v1/courses?category=programming&sort=popular&limit=3"
		first := f.get(path)
		etag := first.Header.Get("ETag")
		want := string(wantOK(t, path, first))
		for range 3 {
			resp := f.get(path)
			if got := string(wantOK(t, path, resp)); got != want || resp.Header.Get("ETag") != etag {
				t.Errorf("repeated page: %s ETag %s, want %s ETag %s", got, resp.Header.Get("ETag"), want, etag)
			}
		}
		if resp := f.get(path, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
			t.Errorf("kept page with its ETag: %d, want 304", resp.StatusCode)
		}
		if n := store.n.Load(); n != 1 {
			t.Errorf("%d catalog reads of the store, want 1", n)
		}
		if hits, misses := f.counter("edutrack_cache_hits_total", "catalog"), f.counter("edutrack_cache_misses_total", "catalog"); hits != 4 || misses != 1 {
			t.Errorf("catalog cache: %v hits, %v misses, want 4 and 1", hits, misses)
		}
	})

	t.Run("keeps_each_page_of_a_listing_apart", func(t *testing.T) {
		t.Parallel()
		f, store := newCountingFixture(t, readapi.Options{CatalogMaxAge: time.Hour}, nil)
		f.school(5)
		pages := follow[documents.CatalogItem](t, f, "/v1/courses?limit=2")
		again := follow[documents.CatalogItem](t, f, "/v1/courses?limit=2")
		if len(pages) != 3 || fmt.Sprint(pages) != fmt.Sprint(again) {
			t.Fatalf("pages %v, then %v; want the same 3", pages, again)
		}
		if n := store.n.Load(); n != 3 {
			t.Errorf("%d catalog reads of the store for 3 pages read twice, want 3", n)
		}
		// Another filter, sort or size is another page; the same words in another order are not.
		for _, p := range []string{"/v1/courses?limit=3", "/v1/courses?limit=2&sort=title", "/v1/courses?limit=2&level=beginner",
			"/v1/courses?q=go+course", "/v1/courses?q=course+go", "/v1/courses?q=COURSE+go+go"} {
			wantOK(t, p, f.get(p))
		}
		if n := store.n.Load(); n != 7 {
			t.Errorf("%d catalog reads of the store, want 7", n)
		}
	})

	t.Run("refuses_bad_parameters_before_looking", func(t *testing.T) {
		t.Parallel()
		f, store := newCountingFixture(t, readapi.Options{CatalogMaxAge: time.Hour}, nil)
		f.school(2)
		for field, path := range map[string]string{
			"sort":        "/v1/courses?sort=cheapest",
			"level":       "/v1/courses?level=expert",
			"cursor":      "/v1/courses?cursor=not*a*cursor",
			"q":           "/v1/courses?q=" + strings.Repeat("g", readapi.MaxSearchLen+1),
			"limit":       "/v1/courses?limit=0",
			"minPosition": "/v1/courses?minPosition=soon",
		} {
			for range 2 {
				wantProblem(t, path, f.get(path), http.StatusBadRequest, field)
			}
		}
		if n, hits, misses := store.n.Load(), f.counter("edutrack_cache_hits_total", "catalog"),
			f.counter("edutrack_cache_misses_total", "catalog"); n != 0 || hits != 0 || misses != 0 {
			t.Errorf("refused pages: %d store reads, %v hits, %v misses; want none", n, hits, misses)
		}
	})

	t.Run("answers_a_page_up_to_the_max_age_old_but_never_older_than_minPosition", func(t *testing.T) {
		t.Parallel()
		f, store := newCountingFixture(t, readapi.Options{CatalogMaxAge: time.Hour, ConsistencyWait: time.Second}, nil)
		entries := f.school(3)
		const path = "/v1/courses?sort=title"
		if n := enrollments(t, f, path, "c00"); n != 0 {
			t.Fatalf("c00 has %d enrollments, want 0", n)
		}
		f.enroll(&entries[0], 10)
		if n := enrollments(t, f, path, "c00"); n != 0 {
			t.Errorf("within the max age, without minPosition: %d enrollments, want the kept page's 0", n)
		}
		// A client that wrote at 10 sees its write.
		if n := enrollments(t, f, path+"&minPosition=10", "c00"); n != 1 {
			t.Errorf("with minPosition=10: %d enrollments, want 1", n)
		}
		// The page read for it is kept: later readers see at least as much.
		if n := enrollments(t, f, path, "c00"); n != 1 {
			t.Errorf("after a read at 10: %d enrollments, want 1", n)
		}
		if n := enrollments(t, f, path+"&minPosition=10", "c00"); n != 1 {
			t.Errorf("again with minPosition=10: %d enrollments, want 1", n)
		}
		if n := store.n.Load(); n != 2 {
			t.Errorf("%d catalog reads of the store, want 2", n)
		}
	})

	t.Run("reads_again_a_page_past_the_max_age_after_a_change", func(t *testing.T) {
		t.Parallel()
		f, store := newCountingFixture(t, readapi.Options{CatalogMaxAge: time.Millisecond}, nil)
		entries := f.school(3)
		const path = "/v1/courses"
		enrollments(t, f, path, "c01")
		time.Sleep(5 * time.Millisecond)
		// Older than the max age, but the projection has not moved: still the catalog.
		enrollments(t, f, path, "c01")
		if n := store.n.Load(); n != 1 {
			t.Errorf("%d catalog reads of the store before any change, want 1", n)
		}
		f.enroll(&entries[1], 10)
		time.Sleep(5 * time.Millisecond)
		if n := enrollments(t, f, path, "c01"); n != 2 {
			t.Errorf("past the max age after a change: %d enrollments, want 2", n)
		}
		if n := store.n.Load(); n != 2 {
			t.Errorf("%d catalog reads of the store, want 2", n)
		}
	})

	t.Run("at_max_age_0_answers_a_page_only_until_the_catalog_changes", func(t *testing.T) {
		t.Parallel()
		f, store := newCountingFixture(t, readapi.Options{}, nil)
		entries := f.school(3)
		const path = "/v1/courses"
		enrollments(t, f, path, "c02")
		enrollments(t, f, path, "c02")
		f.enroll(&entries[2], 10)
		if n := enrollments(t, f, path, "c02"); n != 3 {
			t.Errorf("right after a change: %d enrollments, want 3", n)
		}
		if n := store.n.Load(); n != 2 {
			t.Errorf("%d catalog reads of the store, want 2", n)
		}
	})

	t.Run("reads_again_when_a_new_generation_goes_live_behind_the_page", func(t *testing.T) {
		t.Parallel()
		f, store := newCountingFixture(t, readapi.Options{CatalogMaxAge: time.Hour}, nil)
		f.school(3)
		const path = "/v1/courses"
		wantOK(t, path, f.get(path))
		f.positions.Set(documents.CoursesProjection, 2) // the log went back
		wantOK(t, path, f.get(path))
		if n := store.n.Load(); n != 2 {
			t.Errorf("%d catalog reads of the store, want 2", n)
		}
	})

	t.Run("reads_the_store_once_for_readers_asking_at_once", func(t *testing.T) {
		t.Parallel()
		gate := make(chan struct{})
		f, store := newCountingFixture(t, readapi.Options{CatalogMaxAge: time.Hour}, gate)
		f.school(3)
		const path, readers = "/v1/courses?sort=popular", 8
		bodies := make([]string, readers)
		var wg sync.WaitGroup
		for i := range readers {
			wg.Go(func() { bodies[i] = string(wantOK(t, path, f.get(path))) })
		}
		// Every reader has missed once the misses are counted; each then joins the read at once.
		for f.counter("edutrack_cache_misses_total", "catalog") < readers {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		close(gate)
		wg.Wait()
		if n := store.n.Load(); n != 1 {
			t.Errorf("%d catalog reads of the store for %d readers at once, want 1", n, readers)
		}
		for _, b := range bodies[1:] {
			if b != bodies[0] {
				t.Errorf("readers at once answered %s and %s, want one page", bodies[0], b)
			}
		}
	})

	t.Run("answers_CatalogAt_from_the_cache_and_Catalog_from_the_store", func(t *testing.T) {
		t.Parallel()
		f, store := newCountingFixture(t, readapi.Options{CatalogMaxAge: time.Hour}, nil)
		entries := f.school(3)
		p := readapi.CatalogParams{Sort: "title", Limit: 10}
		for range 2 {
			if _, err := f.api.CatalogAt(t.Context(), p, 0); err != nil {
				t.Fatal(err)
			}
		}
		f.enroll(&entries[0], 10)
		for _, min := range []uint64{0, 10} {
			l, err := f.api.CatalogAt(t.Context(), p, min)
			if err != nil {
				t.Fatal(err)
			}
			if want := int(min / 10); l.Items[0].ID != "c00" || l.Items[0].EnrollmentCount != want {
				t.Errorf("CatalogAt minPosition %d: %+v first, want c00 with %d enrollments", min, l.Items[0].CatalogItem, want)
			}
		}
		if _, err := f.api.Catalog(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		if n := store.n.Load(); n != 3 {
			t.Errorf("%d catalog reads of the store, want 3", n)
		}
	})
}

// TestCatalogCacheServesMediaURLs checks that a kept page carries the media base URL, as a page
// read from the store does.
func TestCatalogCacheServesMediaURLs(t *testing.T) {
	t.Parallel()
	f, _ := newCountingFixture(t, readapi.Options{CatalogMaxAge: time.Hour, MediaBaseURL: "https://cdn.example/m/"}, nil)
	e := entry("art", "art", "design", "beginner", "i1", 0, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	e.Image = &documents.CourseImage{Status: "ready", Formats: map[string][]documents.ImageSource{"image/webp": {{URL: documents.MediaPath + "art/320.webp", Width: 320}}}}
	f.put(documents.CoursesProjection, documents.Catalog, doc("art", 1, e))
	f.positions.Advance(documents.CoursesProjection, 1)
	for range 2 {
		b := string(wantOK(t, "/v1/courses", f.get("/v1/courses")))
		if !strings.Contains(b, `"url":"https://cdn.example/m/art/320.webp"`) {
			t.Errorf("catalog page %s, want the image at the media base URL", b)
		}
	}
}
