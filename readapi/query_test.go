package readapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi"
)

func TestCatalogSearchIsBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, readapi.Options{})
	f.put(documents.CoursesProjection, documents.Catalog, doc("go", 1,
		entry("go", "Go for beginners", "programming", "beginner", "ins", 0, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))))
	words := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "w%d ", i)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name string
		q    string
	}{
		{"too_many_words", words(935)},
		{"one_word_too_many", words(17)},
		{"too_long", strings.Repeat("g", 201)},
	} {
		t.Run("refuses_"+tc.name, func(t *testing.T) {
			path := "/v1/courses?q=" + url.QueryEscape(tc.q)
			wantProblem(t, path, f.get(path), http.StatusBadRequest, "q")
		})
	}
	t.Run("answers_the_longest_search_it_takes", func(t *testing.T) {
		path := "/v1/courses?q=" + url.QueryEscape("go "+words(15))
		wantOK(t, path, f.get(path))
	})
}

// FuzzQueryParameters sends arbitrary query strings to every read route. No query may make the
// server fail: the answer is a page, or a problem that names the parameter at fault.
func FuzzQueryParameters(f *testing.F) {
	routes := []string{"/v1/courses", "/v1/courses/go", "/v1/courses/go/stats", "/v1/courses/go/roster",
		"/v1/learners/ada/dashboard", "/v1/learners/ada/history", "/v1/learners/ada/disclosures"}
	for i := range routes {
		for _, q := range []string{"", "limit=5", "limit=0", "limit=-1", "limit=101", "cursor=abc", "cursor=eyJzIjoibmV3ZXN0IiwidiI6WzFdLCJpZCI6ImdvIn0",
			"sort=popular", "sort=x", "q=go+beginners", "level=expert", "minPosition=1", "minPosition=-1", "minPosition=99999999999999999999",
			"asOf=2025-03-01T00:00:00Z", "asOf=2025-03-01T00:00:00+01:00", "asOf=yesterday", "format=xapi", "format=csv", "reason=" + strings.Repeat("r", 600),
			"category=programming&instructorId=ins", "unknown=1", "q=%ff%fe", "limit=5&limit=6", "cursor=" + strings.Repeat("A", 4000)} {
			f.Add(uint8(i), q)
		}
	}
	// A read that names a position the fixture never reaches answers 503 at once.
	fx, _ := accessFixtureWith(f, readapi.Options{ConsistencyWait: time.Millisecond})
	fx.put(documents.CoursesProjection, documents.Catalog, doc("go", 1,
		entry("go", "Go for beginners", "programming", "beginner", "ins", 3, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))))
	fx.put(documents.LearnersProjection, documents.Rosters, doc("go:ada", 5, `{"courseId":"go","learnerId":"ada","name":"Ada","enrolledAtN":1}`))
	callers := []domain.Actor{admin, auditor, ins, ada}
	f.Fuzz(func(t *testing.T, route uint8, query string) {
		path := routes[int(route)%len(routes)]
		u := &url.URL{Path: path, RawQuery: query}
		for _, caller := range callers {
			// Built by hand: a query a client sends raw may hold what a request line may not.
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.URL, req.RequestURI = u, u.String()
			rec := httptest.NewRecorder()
			fx.router.ServeHTTP(rec, req.WithContext(auth.NewContext(req.Context(), caller)))
			resp := rec.Result()
			b := body(t, resp)
			switch {
			case resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable:
				t.Fatalf("GET %s as %s: %d %s", u, caller.Role, resp.StatusCode, b)
			case resp.StatusCode >= 400:
				var d problem.Details
				if resp.Header.Get("Content-Type") != problem.ContentType || json.Unmarshal(b, &d) != nil || d.Status != resp.StatusCode {
					t.Fatalf("GET %s as %s: %d %q %s, want a problem", u, caller.Role, resp.StatusCode, resp.Header.Get("Content-Type"), b)
				}
			}
		}
	})
}

// Every listing names its next page, null on the last one, so a client never has to tell an
// absent field from the end.
func TestNextCursorIsAlwaysPresent(t *testing.T) {
	t.Parallel()
	f, _ := accessFixture(t)
	f.put(documents.CoursesProjection, documents.Catalog, doc("go", 1,
		entry("go", "Go for beginners", "programming", "beginner", "ins", 0, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))))
	for _, path := range []string{"/v1/courses", "/v1/courses/go/roster", "/v1/learners/ada/history", "/v1/learners/ada/disclosures"} {
		var page map[string]json.RawMessage
		b := wantOK(t, path, f.getAs(admin, path))
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		if next, ok := page["nextCursor"]; !ok || string(next) != "null" {
			t.Errorf("GET %s: %s; want nextCursor null on the last page", path, b)
		}
	}
}

// A + in a query string is a space: an asOf with a +02:00 offset sent as it is arrives broken,
// and the answer says how to send it.
func TestAsOfSaysHowToSendAnOffset(t *testing.T) {
	t.Parallel()
	f, _ := accessFixture(t)
	bad := "/v1/learners/ada/history?asOf=2025-03-01T10:00:00+02:00"
	resp := f.getAs(ada, bad)
	b := body(t, resp)
	var d problem.Details
	if err := json.Unmarshal(b, &d); err != nil || resp.StatusCode != http.StatusBadRequest || d.Field != "asOf" || !strings.Contains(d.Detail, "%2B") {
		t.Errorf("GET %s: %d %s; want 400 on asOf saying to send + as %%2B", bad, resp.StatusCode, b)
	}
	good := "/v1/learners/ada/history?asOf=2025-03-01T10:00:00%2B02:00"
	wantOK(t, good, f.getAs(ada, good))
}
