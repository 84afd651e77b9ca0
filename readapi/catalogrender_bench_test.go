package readapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/edutrack/edutrack/projections/documents"
)

// BenchmarkCatalogPageRender is what the catalog cache saves by keeping a page's REST body
// besides its decoded listing: rendering 20 courses again on every hit.
func BenchmarkCatalogPageRender(b *testing.B) {
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	var l Listing[documents.CatalogEntry]
	for i := range 20 {
		l.Items = append(l.Items, documents.CatalogEntry{CatalogItem: documents.CatalogItem{ID: fmt.Sprintf("c%03d", i),
			Title: fmt.Sprintf("Course %d of the school", i), Category: "programming", Level: "beginner",
			Instructor: documents.Instructor{ID: "i1", Name: "Ada"}, ModuleCount: 5, EnrollmentCount: i * 7, CompletionRate: 0.25, PublishedAt: &at}})
	}
	for b.Loop() {
		p := &catalogPage{listing: l}
		if _, err := p.reply(""); err != nil {
			b.Fatal(err)
		}
	}
}
