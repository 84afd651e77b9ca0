package graphql_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/graphql"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const catalogWithStats = `query($n: Int) { courses(first: $n) { nodes { id title instructor { id name } stats { enrolled } } pageInfo { hasNextPage endCursor } } }`

func TestFiftyCoursesWithInstructorAndStatsCostAtMostThreeRoundTrips(t *testing.T) {
	f := newFixture(t, graphql.Options{})
	f.seed(50)
	before := f.roundTrips()
	r := f.query(admin, catalogWithStats, map[string]any{"n": 50})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}
	if n := f.roundTrips() - before; n > 3 {
		t.Errorf("50 courses with instructor and stats took %d round trips to the read store, want at most 3", n)
	}
	var data struct {
		Courses struct {
			Nodes []struct {
				ID         string
				Instructor struct{ ID, Name string }
				Stats      struct{ Enrolled int }
			}
			PageInfo struct{ HasNextPage bool }
		}
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		t.Fatal(err)
	}
	if len(data.Courses.Nodes) != 50 || data.Courses.PageInfo.HasNextPage {
		t.Fatalf("got %d courses (next page %v), want the 50", len(data.Courses.Nodes), data.Courses.PageInfo.HasNextPage)
	}
	for i, c := range data.Courses.Nodes { // newest first: c50 first
		want := 50 - i
		if c.ID != fmt.Sprintf("c%02d", want) || c.Stats.Enrolled != want || c.Instructor.Name != "Ada" {
			t.Errorf("course %d = %+v, want c%02d with %d enrolled, taught by Ada", i, c, want, want)
		}
	}

	t.Run("the stats then come from the cache", func(t *testing.T) {
		before := f.roundTrips()
		if r := f.query(admin, catalogWithStats, map[string]any{"n": 50}); len(r.Errors) > 0 {
			t.Fatalf("errors: %+v", r.Errors)
		}
		if n := f.roundTrips() - before; n != 0 {
			t.Errorf("the same page again took %d round trips, want 0 (the listing a kept catalog page; the stats cached)", n)
		}
	})
	t.Run("without batching it would be one a course", func(t *testing.T) {
		// The course detail of each listed course through the loader: one read for all.
		before := f.roundTrips()
		r := f.query(admin, `{ courses(first: 50) { nodes { description modules { id } } } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("errors: %+v", r.Errors)
		}
		if n := f.roundTrips() - before; n != 1 {
			t.Errorf("the details of 50 courses took %d round trips, want 1 (the listing a kept catalog page, one read of the details)", n)
		}
	})
}

func TestQueriesAnswerWhatRESTServes(t *testing.T) {
	f := newFixture(t, graphql.Options{})
	f.seed(3)
	t.Run("course with modules, instructor, stats and roster", func(t *testing.T) {
		r := f.query(teacher1, `{ course(id: "c01") { id title status description modules { id title } instructor { id name }
			stats { enrolled moduleCompletions { moduleId completions } } roster(first: 10) { nodes { learnerId name status } pageInfo { hasNextPage } } } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("errors: %+v", r.Errors)
		}
		want := `{"course":{"id":"c01","title":"Course c01","status":"published","description":"About c01","modules":[{"id":"m1","title":"Intro"}],` +
			`"instructor":{"id":"i1","name":"Ada"},"stats":{"enrolled":1,"moduleCompletions":[{"moduleId":"m1","completions":0}]},` +
			`"roster":{"nodes":[{"learnerId":"l1","name":"Lin","status":"active"}],"pageInfo":{"hasNextPage":false}}}}`
		if diff := cmp.Diff(want, string(r.Data)); diff != "" {
			t.Errorf("course (-want +got):\n%s", diff)
		}
	})
	t.Run("courses page through with cursors, filtered and sorted", func(t *testing.T) {
		r := f.query(learner1, `{ courses(first: 2, sort: TITLE, filter: {category: "math"}) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }`, nil)
		var page struct {
			Courses struct {
				Edges    []struct{ Node struct{ ID string } }
				PageInfo struct {
					HasNextPage bool
					EndCursor   string
				}
			}
		}
		if err := json.Unmarshal(r.Data, &page); err != nil || len(r.Errors) > 0 {
			t.Fatalf("%v %+v", err, r.Errors)
		}
		if len(page.Courses.Edges) != 2 || page.Courses.Edges[0].Node.ID != "c01" || !page.Courses.PageInfo.HasNextPage {
			t.Fatalf("first page = %+v", page.Courses)
		}
		r = f.query(learner1, `query($after: String) { courses(first: 2, sort: TITLE, after: $after) { nodes { id } pageInfo { hasNextPage } } }`,
			map[string]any{"after": page.Courses.PageInfo.EndCursor})
		if diff := cmp.Diff(`{"courses":{"nodes":[{"id":"c03"}],"pageInfo":{"hasNextPage":false}}}`, string(r.Data)); diff != "" {
			t.Errorf("second page (-want +got):\n%s", diff)
		}
	})
	t.Run("a bad argument names the field, as REST does", func(t *testing.T) {
		r := f.query(learner1, `{ courses(filter: {level: "expert"}) { nodes { id } } }`, nil)
		if len(r.Errors) != 1 || r.Errors[0].code() != graphql.CodeBadInput || r.Errors[0].Extensions["field"] != "level" {
			t.Errorf("errors = %+v, want BAD_USER_INPUT naming level", r.Errors)
		}
		r = f.query(learner1, `{ courses(first: 101) { nodes { id } } }`, nil)
		if len(r.Errors) != 1 || r.Errors[0].Extensions["field"] != "first" {
			t.Errorf("errors = %+v, want BAD_USER_INPUT naming first", r.Errors)
		}
	})
	t.Run("me and learner: dashboard and enrollments with their course and its instructor", func(t *testing.T) {
		q := `{ me { id role learner { id name dashboard { learnerId } enrollments { courseId status course { id instructor { name } } } } } }`
		r := f.query(learner1, q, nil)
		want := `{"me":{"id":"l1","role":"LEARNER","learner":{"id":"l1","name":"Lin","dashboard":{"learnerId":"l1"},` +
			`"enrollments":[{"courseId":"c01","status":"active","course":{"id":"c01","instructor":{"name":"Ada"}}}]}}}`
		if diff := cmp.Diff(want, string(r.Data)); diff != "" || len(r.Errors) > 0 {
			t.Errorf("me (-want +got):\n%s %+v", diff, r.Errors)
		}
		r = f.query(teacher1, `{ me { id role learner { id } } }`, nil)
		if diff := cmp.Diff(`{"me":{"id":"i1","role":"INSTRUCTOR","learner":null}}`, string(r.Data)); diff != "" || len(r.Errors) > 0 {
			t.Errorf("an instructor's me (-want +got):\n%s %+v", diff, r.Errors)
		}
		before := len(f.disclosed.recorded())
		r = f.query(auditor, `{ learner(id: "l1", reason: "audit 7") { name enrollments { courseId } } }`, nil)
		if diff := cmp.Diff(`{"learner":{"name":"Lin","enrollments":[{"courseId":"c01"}]}}`, string(r.Data)); diff != "" || len(r.Errors) > 0 {
			t.Errorf("an auditor's read (-want +got):\n%s %+v", diff, r.Errors)
		}
		got := f.disclosed.recorded()
		if len(got) != before+1 || got[len(got)-1].LearnerID != "l1" || got[len(got)-1].Reason != "audit 7" || got[len(got)-1].Recipient != auditor {
			t.Errorf("disclosures = %+v, want the auditor's read of l1 recorded with its reason", got[before:])
		}
	})
}

func TestMinPositionWaitsAndAnswersUnavailableAsREST(t *testing.T) {
	f := newFixture(t, graphql.Options{})
	f.seed(1)
	r := f.query(learner1, `{ course(id: "c01", minPosition: 500) { id } }`, nil)
	if diff := cmp.Diff([]string{graphql.CodeUnavailable}, r.codes()); diff != "" || string(r.Data) != `{"course":null}` {
		t.Errorf("codes (-want +got):\n%s data %s", diff, r.Data)
	}
	if s := f.rest(learner1, "/v1/courses/c01?minPosition=500"); s != http.StatusServiceUnavailable {
		t.Errorf("REST answered %d", s)
	}
	f.positions.Advance(documents.CoursesProjection, 500)
	r = f.query(learner1, `{ course(id: "c01", minPosition: 500) { id } }`, nil)
	if string(r.Data) != `{"course":{"id":"c01"}}` || len(r.Errors) > 0 {
		t.Errorf("once reached: %s %+v", r.Data, r.Errors)
	}
	// A nested field waits for its own read model at the query's position: the roster is the
	// learners projection's, which has not reached it.
	r = f.query(teacher1, `{ course(id: "c01", minPosition: 500) { id roster { nodes { learnerId } } } }`, nil)
	if diff := cmp.Diff([]string{graphql.CodeUnavailable}, r.codes()); diff != "" || r.Errors[0].Path[1] != "roster" {
		t.Errorf("nested roster: codes (-want +got):\n%s %+v", diff, r.Errors)
	}
}

// TestAuthorizationMatchesREST sends each read as REST and as GraphQL by the same caller: where
// REST answers 404 the field is null with NOT_FOUND, 403 FORBIDDEN, 200 no error at all.
func TestAuthorizationMatchesREST(t *testing.T) {
	f := newFixture(t, graphql.Options{})
	f.seed(2)
	codeOf := map[int]string{http.StatusOK: "", http.StatusNotFound: graphql.CodeNotFound, http.StatusForbidden: graphql.CodeForbidden,
		http.StatusServiceUnavailable: graphql.CodeUnavailable}
	type check struct {
		caller domain.Actor
		// rest are the routes a client reads in turn for what query asks: the first that
		// does not answer 200 is the answer.
		rest  []string
		query string
	}
	var cases []check
	for _, a := range []domain.Actor{admin, auditor, teacher1, teacher2, learner1, learner2} {
		for _, id := range []string{"c01", "draft", "nope"} {
			course := "/v1/courses/" + id
			// GraphQL reaches stats and roster through the course, which answers first for
			// itself: a caller who may not see the course gets its NOT_FOUND, as REST's 404 of
			// the course; one who sees it gets the stats' and roster's own answer.
			cases = append(cases,
				check{a, []string{course}, `{ course(id: "` + id + `") { id } }`},
				check{a, []string{course, course + "/stats"}, `{ course(id: "` + id + `") { stats { enrolled } } }`},
				check{a, []string{course, course + "/roster"}, `{ course(id: "` + id + `") { roster { nodes { learnerId } } } }`})
		}
		for _, id := range []string{"l1", "l2", "nobody"} {
			cases = append(cases, check{a, []string{"/v1/learners/" + id + "/dashboard"}, `{ learner(id: "` + id + `") { id } }`})
		}
		cases = append(cases, check{a, []string{"/v1/courses"}, `{ courses { nodes { id } } }`})
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %s", c.caller.UserID, c.rest[len(c.rest)-1]), func(t *testing.T) {
			status := http.StatusOK
			for _, path := range c.rest {
				if status = f.rest(c.caller, path); status != http.StatusOK {
					break
				}
			}
			want, ok := codeOf[status]
			if !ok {
				t.Fatalf("REST answered %d", status)
			}
			r := f.query(c.caller, c.query, nil)
			var got string
			if len(r.Errors) > 0 {
				got = r.Errors[0].code()
			}
			if got != want || len(r.Errors) > 1 {
				t.Errorf("REST answered %d, GraphQL %s (errors %+v), want %q", status, r.Data, r.Errors, want)
			}
		})
	}
	if n := len(f.disclosed.recorded()); n == 0 {
		t.Error("no disclosure recorded")
	}
}

func TestMutationsWithoutACommandSideAnswerUnavailable(t *testing.T) {
	f := newFixture(t, graphql.Options{})
	r := f.query(admin, `mutation { publishCourse(input: {id: "c01"}) { position } }`, nil)
	if diff := cmp.Diff([]string{graphql.CodeUnavailable}, r.codes()); diff != "" {
		t.Errorf("codes (-want +got):\n%s", diff)
	}
}
