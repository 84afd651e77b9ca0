package graphql_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/edutrack/edutrack/readapi/graphql"
)

// BenchmarkCatalogPage reads the catalog's first page of 20 courses as REST does and as one
// GraphQL query of the same fields, over the same documents, side by side.
func BenchmarkCatalogPage(b *testing.B) {
	f := newFixture(b, graphql.Options{})
	f.seed(50)
	caller, _ := json.Marshal(admin)
	query, _ := json.Marshal(map[string]string{"query": `query CatalogPage { courses(first: 20) { nodes { id title category level instructor { id name } ` +
		`moduleCount enrollmentCount completionRate publishedAt } pageInfo { hasNextPage endCursor } } }`})
	run := func(b *testing.B, method, path string, body []byte) {
		for b.Loop() {
			req, _ := http.NewRequest(method, f.server.URL+path, bytes.NewReader(body))
			req.Header.Set("X-Test-Caller", string(caller))
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Fatal(res.Status)
			}
		}
	}
	b.Run("REST", func(b *testing.B) { run(b, http.MethodGet, "/v1/courses?limit=20", nil) })
	b.Run("GraphQL", func(b *testing.B) { run(b, http.MethodPost, "/graphql", query) })
}
