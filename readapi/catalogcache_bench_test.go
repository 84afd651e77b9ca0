package readapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/readapi"
)

// BenchmarkCatalogPage reads a catalog page of 20 courses out of 100 (a category of the school
// scenario's, 21 documents read) through the read API: router, handler, SQLite read store. One
// read at a time, so ns/op is a read's latency.
//
//   - store: every read misses (the courses projection moves before each), reads the store,
//     decodes and renders the page, as every catalog read did before the catalog cache.
//   - cached: the page kept, body rendered once.
//   - cached_listing: CatalogAt, the page kept decoded, as a GraphQL resolver would take it.
//
// Compare the ratios of one run: go test -run '^$' -bench CatalogPage -benchtime 2s -count 3 ./readapi/
func BenchmarkCatalogPage(b *testing.B) {
	const path = "/v1/courses?category=programming&limit=20"
	setup := func(b *testing.B, opts readapi.Options) *fixture {
		f := newFixture(b, opts)
		base := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
		var docs []readstore.Doc
		for i := range 100 {
			e := entry(fmt.Sprintf("c%03d", i), fmt.Sprintf("Course %d of the school", i), []string{"programming", "data", "design"}[i%3],
				"beginner", "i1", i*7, base.Add(time.Duration(i)*time.Hour))
			docs = append(docs, doc(e.ID, uint64(i+1), e))
		}
		f.put(documents.CoursesProjection, documents.Catalog, docs...)
		f.positions.Advance(documents.CoursesProjection, 100)
		if resp := f.get(path); resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return f
	}
	b.Run("store", func(b *testing.B) {
		f := setup(b, readapi.Options{})
		pos := uint64(100)
		for b.Loop() {
			pos++
			f.positions.Advance(documents.CoursesProjection, pos)
			if resp := f.get(path); resp.StatusCode != http.StatusOK {
				b.Fatalf("GET %s: %d", path, resp.StatusCode)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		f := setup(b, readapi.Options{CatalogMaxAge: time.Hour})
		for b.Loop() {
			if resp := f.get(path); resp.StatusCode != http.StatusOK {
				b.Fatalf("GET %s: %d", path, resp.StatusCode)
			}
		}
	})
	b.Run("cached_listing", func(b *testing.B) {
		f := setup(b, readapi.Options{CatalogMaxAge: time.Hour})
		p := readapi.CatalogParams{Category: "programming", Limit: 20}
		for b.Loop() {
			if _, err := f.api.CatalogAt(b.Context(), p, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
