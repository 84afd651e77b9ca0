package graphql_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/graphql"
)

// Every field of the schema is decided: shared by every reader, or not. A new field fails here
// until it is.
func TestEveryFieldOfTheSchemaIsDecidedSharedOrNot(t *testing.T) {
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphql", Input: string(graphql.Schema())})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range s.Types {
		if typ.Kind != ast.Object || typ.BuiltIn || len(typ.Name) > 1 && typ.Name[:2] == "__" {
			continue
		}
		for _, f := range typ.Fields {
			if f.Name[:2] == "__" {
				continue
			}
			if _, ok := graphql.SharedField(typ.Name, f.Name); !ok {
				t.Errorf("%s.%s is neither shared nor not: decide it in sharedFields", typ.Name, f.Name)
			}
		}
	}
}

const catalogQuery = `query Catalog($first: Int) { courses(first: $first) { nodes { id title enrollmentCount instructor { id name } } } }`

// sharedOutcome is the counter of queries answered with outcome.
func (f *fixture) sharedOutcome(outcome string) int {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "edutrack_graphql_shared_answers_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == outcome {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

// sharedHits counts the queries answered from kept answers, parsed or by their bytes.
func (f *fixture) sharedHits() int { return f.sharedOutcome("hit") + f.sharedOutcome("hit_bytes") }

// retitle rewrites the catalog entry of c01 with a new title at pos, and moves the courses
// projection there, as a projector would.
func (f *fixture) retitle(title string, pos uint64) {
	f.t.Helper()
	at := time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	item := documents.CatalogItem{ID: "c01", Title: title, Category: "math", Level: "beginner",
		Instructor: documents.Instructor{ID: "i1", Name: "Ada"}, ModuleCount: 1, EnrollmentCount: 1, PublishedAt: &at}
	f.put(documents.CoursesProjection, documents.Catalog, doc("c01", pos, documents.CatalogEntry{CatalogItem: item, Status: "published",
		InstructorID: "i1", TitleWords: documents.Words(title), TitleKey: title, PublishedN: at.UnixNano()}))
	f.positions.Advance(documents.CoursesProjection, pos)
}

// titles are the titles of the courses an answer lists, by id.
func titles(t *testing.T, r gqlResponse) map[string]string {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", r.Errors)
	}
	var data struct {
		Courses struct {
			Nodes []struct{ ID, Title string }
		}
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range data.Courses.Nodes {
		out[n.ID] = n.Title
	}
	return out
}

// A catalog query asked again is answered without executing it or reading the store, while the
// catalog has not changed; once it has, the kept answer is served only until it is MaxAge old,
// and never to a query that passes minPosition.
func TestACatalogQueryIsAnsweredAgainWithoutExecutingIt(t *testing.T) {
	f := newFixture(t, graphql.Options{SharedMaxAge: time.Hour})
	f.seed(30)
	f.positions.Advance(documents.CoursesProjection, 100)
	vars := map[string]any{"first": 30}
	first := f.query(learner1, catalogQuery, vars)
	if len(first.Errors) > 0 {
		t.Fatalf("first answer: %v", first.Errors)
	}
	before := f.roundTrips()
	again := f.query(learner2, catalogQuery, vars)
	if !bytes.Equal(first.Data, again.Data) || f.roundTrips() != before || f.sharedHits() != 1 {
		t.Fatalf("asked again: %d round trips, %d hits, same answer %v; want 0 round trips and one hit with the same answer",
			f.roundTrips()-before, f.sharedHits(), bytes.Equal(first.Data, again.Data))
	}
	if n := testutil.ToFloat64(metricOf(t, f, "Catalog", "ok")); n != 2 {
		t.Errorf("%v Catalog operations counted; want both, the kept answer too", n)
	}

	f.retitle("Renamed", 101)
	t.Run("within_max_age_the_kept_answer_is_served", func(t *testing.T) {
		if got := titles(t, f.query(learner1, catalogQuery, vars))["c01"]; got != "Course c01" {
			t.Errorf("c01 is %q within max age; want the kept answer's %q", got, "Course c01")
		}
	})
	t.Run("a_query_with_minPosition_sees_the_change", func(t *testing.T) {
		r := f.query(learner1, `query($p: Uint64) { courses(first: 30, minPosition: $p) { nodes { id title enrollmentCount instructor { id name } } } }`,
			map[string]any{"p": 101})
		if got := titles(t, r)["c01"]; got != "Renamed" {
			t.Errorf("c01 is %q with minPosition 101; want %q", got, "Renamed")
		}
	})
	t.Run("another_query_text_is_its_own_answer", func(t *testing.T) {
		if got := titles(t, f.query(learner1, catalogQuery, map[string]any{"first": 31}))["c01"]; got != "Renamed" {
			t.Errorf("first 31: c01 is %q; want a fresh answer's %q", got, "Renamed")
		}
	})
}

// With no max age, an answer is served again only while the catalog has not moved.
func TestWithoutMaxAgeAChangedCatalogIsExecutedAgain(t *testing.T) {
	f := newFixture(t, graphql.Options{})
	f.seed(5)
	f.positions.Advance(documents.CoursesProjection, 100)
	f.query(learner1, catalogQuery, nil)
	f.query(learner1, catalogQuery, nil)
	if f.sharedHits() != 1 {
		t.Fatalf("%d hits before the change, want 1", f.sharedHits())
	}
	f.retitle("Renamed", 101)
	if got := titles(t, f.query(learner1, catalogQuery, nil))["c01"]; got != "Renamed" {
		t.Errorf("c01 is %q after the change; want %q", got, "Renamed")
	}
}

// An answer is kept per role, and only for queries whose every field is the same for every
// reader: a role that may not read the catalog is refused as before, and stats, a learner's
// records or the caller's identity are executed for each caller.
func TestOnlyAnswersTheSameForEveryReaderOfARoleAreKept(t *testing.T) {
	f := newFixture(t, graphql.Options{SharedMaxAge: time.Hour})
	f.seed(3)
	if r := f.query(admin, catalogQuery, nil); len(r.Errors) > 0 {
		t.Fatal(r.Errors)
	}
	if r := f.query(auditor, catalogQuery, nil); len(r.codes()) != 1 || r.codes()[0] != graphql.CodeForbidden {
		t.Errorf("an auditor after an admin: %v; want FORBIDDEN, as before any answer was kept", r.Errors)
	}
	for _, c := range []struct {
		name  string
		as    []domain.Actor
		query string
	}{
		{"stats", []domain.Actor{teacher1, teacher2}, `{ courses(first: 3) { nodes { id stats { enrolled } } } }`},
		{"me", []domain.Actor{learner1, learner2}, `{ me { id } courses(first: 1) { nodes { id } } }`},
		{"a course by id", []domain.Actor{teacher2, learner1}, `{ course(id: "draft") { id } }`},
	} {
		a, b := f.query(c.as[0], c.query, nil), f.query(c.as[1], c.query, nil)
		if bytes.Equal(a.Data, b.Data) && len(a.Errors) == len(b.Errors) {
			t.Errorf("%s: %s and %s got the same answer %s; want each their own", c.name, c.as[0].UserID, c.as[1].UserID, a.Data)
		}
	}
	// A module's files carry a download link signed for the caller: never shared, even when the
	// answers happen to be equal.
	notShared := f.sharedOutcome("not_shared")
	for range 2 {
		f.query(learner1, `{ courses(first: 3) { nodes { id modules { id files { id } } } } }`, nil)
	}
	if got := f.sharedOutcome("not_shared") - notShared; got != 2 {
		t.Errorf("a catalog query with module files: %d of 2 counted not shared", got)
	}
	if f.sharedHits() != 0 {
		t.Errorf("%d hits; want none", f.sharedHits())
	}
}

// The same request's bytes are answered with the bytes kept, as long as the answer is fresh;
// the same query in other bytes is answered from the kept answer, parsed; a role that may not
// read the catalog is refused whatever bytes it sends.
func TestTheSameRequestIsAnsweredWithTheBytesKept(t *testing.T) {
	f := newFixture(t, graphql.Options{})
	f.seed(5)
	f.positions.Advance(documents.CoursesProjection, 100)
	body := []byte(`{"query":"` + catalogQuery + `","variables":{"first":5}}`)
	post := func(a domain.Actor, b []byte) (string, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, f.server.URL+"/graphql", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		caller, _ := json.Marshal(a)
		req.Header.Set("X-Test-Caller", string(caller))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(res.Body)
		return res.Header.Get("Content-Type"), out
	}
	type1, first := post(learner1, body)
	type2, again := post(learner2, body)
	if f.sharedOutcome("hit_bytes") != 1 || !bytes.Equal(first, again) || type1 != type2 {
		t.Fatalf("the same bytes again: %d kept bytes served, same answer %v, types %q %q",
			f.sharedOutcome("hit_bytes"), bytes.Equal(first, again), type1, type2)
	}
	spaced := []byte(`{ "variables": {"first": 5}, "query": "` + catalogQuery + `" }`)
	if _, b := post(learner1, spaced); f.sharedOutcome("hit") != 1 || !bytes.Equal(b, first) {
		t.Errorf("the same query in other bytes: %d parsed hits, same answer %v; want 1, true", f.sharedOutcome("hit"), bytes.Equal(b, first))
	}
	if _, b := post(auditor, body); !bytes.Contains(b, []byte(graphql.CodeForbidden)) {
		t.Errorf("an auditor sending the kept bytes: %s; want FORBIDDEN", b)
	}
	f.retitle("Renamed", 101)
	if _, b := post(learner1, body); !bytes.Contains(b, []byte("Renamed")) {
		t.Errorf("after the catalog changed, the kept bytes were served: %s", b)
	}
}
