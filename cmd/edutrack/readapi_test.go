package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"gocloud.dev/blob/fileblob"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/commands/writeapi"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/internal/auth/ticket"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
	"github.com/edutrack/edutrack/reactors/jobsapi"
	"github.com/edutrack/edutrack/readapi"
	"github.com/edutrack/edutrack/readapi/graphql"
	"github.com/edutrack/edutrack/readapi/history"
	streams "github.com/edutrack/edutrack/readapi/live"
)

// The documents as the read API answers them, declared here from the issue rather than taken from
// readmodel, so that a renamed or leaked field fails the strict decoding below.
type (
	instructorView struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	catalogItem struct {
		ID              string         `json:"id"`
		Title           string         `json:"title"`
		Category        string         `json:"category"`
		Level           string         `json:"level"`
		Instructor      instructorView `json:"instructor"`
		ModuleCount     int            `json:"moduleCount"`
		EnrollmentCount int            `json:"enrollmentCount"`
		CompletionRate  float64        `json:"completionRate"`
		PublishedAt     *time.Time     `json:"publishedAt"`
		Image           *courseImage   `json:"image"`
	}
	moduleView struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	courseDetail struct {
		ID              string         `json:"id"`
		Title           string         `json:"title"`
		Category        string         `json:"category"`
		Level           string         `json:"level"`
		Instructor      instructorView `json:"instructor"`
		ModuleCount     int            `json:"moduleCount"`
		EnrollmentCount int            `json:"enrollmentCount"`
		CompletionRate  float64        `json:"completionRate"`
		PublishedAt     *time.Time     `json:"publishedAt"`
		Image           *courseImage   `json:"image"`
		Description     string         `json:"description"`
		Status          string         `json:"status"`
		Modules         []moduleView   `json:"modules"`
		CompletionCount int            `json:"completionCount"`
		UpdatedAt       time.Time      `json:"updatedAt"`
	}
	courseStats struct {
		CourseID          string              `json:"courseId"`
		Enrolled          int                 `json:"enrolled"`
		Active            int                 `json:"active"`
		Completed         int                 `json:"completed"`
		Withdrawn         int                 `json:"withdrawn"`
		CompletionRate    float64             `json:"completionRate"`
		ModuleCompletions []moduleCompletions `json:"moduleCompletions"`
	}
	moduleCompletions struct {
		ModuleID    string `json:"moduleId"`
		Completions int    `json:"completions"`
	}
	rosterItem struct {
		LearnerID   string     `json:"learnerId"`
		Name        string     `json:"name"`
		Status      string     `json:"status"`
		Progress    float64    `json:"progress"`
		EnrolledAt  time.Time  `json:"enrolledAt"`
		CompletedAt *time.Time `json:"completedAt"`
	}
	enrollmentView struct {
		CourseID         string     `json:"courseId"`
		Title            string     `json:"title"`
		Status           string     `json:"status"`
		Progress         float64    `json:"progress"`
		CompletedModules []string   `json:"completedModules"`
		ModuleCount      int        `json:"moduleCount"`
		EnrolledAt       time.Time  `json:"enrolledAt"`
		CompletedAt      *time.Time `json:"completedAt"`
		LastActivityAt   time.Time  `json:"lastActivityAt"`
		// Certificate stays null: the test servers issue none (EDUTRACK_CERTIFICATES=off).
		Certificate *struct {
			ID       string    `json:"id"`
			IssuedAt time.Time `json:"issuedAt"`
			URL      string    `json:"url"`
		} `json:"certificate"`
	}
	dashboardView struct {
		LearnerID   string           `json:"learnerId"`
		Name        string           `json:"name"`
		Enrollments []enrollmentView `json:"enrollments"`
	}
	// listPage is one page of a listing; NextCursor is nil on the last page, which says null.
	listPage[T any] struct {
		Items      []T     `json:"items"`
		NextCursor *string `json:"nextCursor"`
	}
)

// Times are checked apart from the documents: the server takes them from its clock.
var ignoreTimes = cmp.Options{
	cmpopts.IgnoreFields(catalogItem{}, "PublishedAt"),
	cmpopts.IgnoreFields(courseDetail{}, "PublishedAt", "UpdatedAt"),
	cmpopts.IgnoreFields(rosterItem{}, "EnrolledAt", "CompletedAt"),
	cmpopts.IgnoreFields(enrollmentView{}, "EnrolledAt", "CompletedAt", "LastActivityAt"),
}

// answer is one read answer with the headers the read API sets.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// get sends a GET with headers given as name, value pairs. Unless the test sets Accept-Encoding,
// the client asks for gzip and hands back the decoded body.
func get(t *testing.T, s *server, path string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read answer: %v", path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: body}
}

// withQuery adds the parameters, given as name, value pairs, to path and any query it has.
func withQuery(path string, params ...string) string {
	if len(params) == 0 {
		return path
	}
	q := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		q.Add(params[i], params[i+1])
	}
	if strings.Contains(path, "?") {
		return path + "&" + q.Encode()
	}
	return path + "?" + q.Encode()
}

// fresh reads path with minPosition at the last position the test knows of, and wants a 200 JSON
// answer.
func fresh(t *testing.T, s *server, path string, params ...string) answer {
	t.Helper()
	p := withQuery(path, slices.Concat(params, []string{"minPosition", strconv.FormatUint(s.log.pos, 10)})...)
	a := get(t, s, p)
	if a.status != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200; body %s", p, a.status, a.body)
	}
	if mt, _, _ := mime.ParseMediaType(a.header.Get("Content-Type")); mt != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", p, a.header.Get("Content-Type"))
	}
	return a
}

// decodeStrict decodes one JSON value that has no fields beyond those of T.
func decodeStrict[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s as %T: %v", body, v, err)
	}
	if dec.More() {
		t.Fatalf("%s holds more than one JSON value", body)
	}
	return v
}

func detailOf(t *testing.T, s *server, id string) courseDetail {
	t.Helper()
	return decodeStrict[courseDetail](t, fresh(t, s, "/v1/courses/"+id).body)
}

func statsOf(t *testing.T, s *server, id string) courseStats {
	t.Helper()
	return decodeStrict[courseStats](t, fresh(t, s, "/v1/courses/"+id+"/stats").body)
}

func dashboardOf(t *testing.T, s *server, id string) dashboardView {
	t.Helper()
	return decodeStrict[dashboardView](t, fresh(t, s, "/v1/learners/"+id+"/dashboard").body)
}

// pages follows a listing from its first page with this limit, checking that every page but the
// last is full and has a nextCursor and that the last has none, and returns the items in order.
func pages[T any](t *testing.T, s *server, path string, limit int, params ...string) (items []T, n int) {
	t.Helper()
	cursor := ""
	for n = 1; ; n++ {
		p := append(slices.Clone(params), "limit", strconv.Itoa(limit))
		if cursor != "" {
			p = append(p, "cursor", cursor)
		}
		a := fresh(t, s, path, p...)
		page := decodeStrict[listPage[T]](t, a.body)
		if page.Items == nil {
			t.Errorf("page %d of %s %v: items is %s, want an array", n, path, params, a.body)
		}
		items = append(items, page.Items...)
		if page.NextCursor == nil {
			if !bytes.Contains(a.body, []byte(`"nextCursor":null`)) {
				t.Errorf("last page of %s %v does not say nextCursor null: %s", path, params, a.body)
			}
			return items, n
		}
		if len(page.Items) != limit || *page.NextCursor == "" {
			t.Fatalf("page %d of %s %v: %d items and nextCursor %q, want a full page of %d and a cursor", n, path, params,
				len(page.Items), *page.NextCursor, limit)
		}
		if n > 50 {
			t.Fatalf("%s %v: more than 50 pages of %d; the cursor does not advance", path, params, limit)
		}
		cursor = *page.NextCursor
	}
}

// idsOf returns the ids of items.
func idsOf[T any](items []T, id func(T) string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

func catalogIDs(items []catalogItem) []string {
	return idsOf(items, func(c catalogItem) string { return c.ID })
}

func rosterIDs(items []rosterItem) []string {
	return idsOf(items, func(r rosterItem) string { return r.LearnerID })
}

// catalog reads the whole catalog listing (it is short) with these parameters.
func catalog(t *testing.T, s *server, params ...string) []catalogItem {
	t.Helper()
	items, _ := pages[catalogItem](t, s, "/v1/courses", 100, params...)
	return items
}

// The school the read tests build. Every id is fixed, so that the expected documents can be
// written out.
const (
	graceName   = "Grace Hopper"
	barbaraName = "Barbara Liskov"
)

type courseDef struct {
	id, title, description, category, level, instructor string
	modules                                             []moduleView
}

func schoolCourses() []courseDef {
	return []courseDef{
		{"go", "Go Fundamentals", "Learn Go from scratch.", "programming", "beginner", "ins1",
			[]moduleView{{"m1", "Intro"}, {"m2", "Types"}, {"m3", "Concurrency"}}},
		{"rust", "Rust for Go Programmers", "Ownership for gophers.", "programming", "advanced", "ins2",
			[]moduleView{{"r1", "Ownership"}, {"r2", "Traits"}}},
		{"sql", "SQL Basics", "Tables and joins.", "data", "beginner", "ins1", []moduleView{{"s1", "Select"}}},
		// A lower-case title: sorting by title must not put it after every capital.
		{"stats", "statistics with R", "Numbers.", "data", "intermediate", "ins2", []moduleView{{"t1", "Mean"}, {"t2", "Variance"}}},
		{"art", "The Art of Programming", "Craft.", "programming", "intermediate", "ins1", []moduleView{{"a1", "Style"}}},
		{"draft", "Go Draft Notes", "Never published.", "programming", "beginner", "ins1", nil},
		{"old", "Old Go Course", "Archived.", "programming", "beginner", "ins2", []moduleView{{"o1", "History"}}},
	}
}

// published are the courses the catalog lists: draft was never published, old is archived.
var publishedIDs = []string{"go", "rust", "sql", "stats", "art"}

// seed builds the school through the write API:
//   - go: ada completes it; bob and cyd completed m1 (cyd withdrew and came back); dan completed m1
//     and withdrew;
//   - art: ada, bob, cyd and dan; rust: ada (who completed r1) and bob; sql: bob; stats: dan;
//   - old: ada enrolled, then it was archived; draft: never published; eve enrolled nowhere.
func seed(t *testing.T, s *server) {
	t.Helper()
	s.t = t
	for _, u := range []struct{ id, name, role string }{
		{"ins1", graceName, "instructor"}, {"ins2", barbaraName, "instructor"},
		{"ada", "Ada Lovelace", "learner"}, {"bob", "Bob Kahn", "learner"}, {"cyd", "Cyd Charisse", "learner"},
		{"dan", "Dan Brown", "learner"}, {"eve", "Eve Moneypenny", "learner"},
	} {
		s.ok(s.do(http.MethodPost, "/v1/users", user(u.id, u.name, u.role)), created, 1)
	}
	for _, c := range schoolCourses() {
		s.ok(s.do(http.MethodPost, "/v1/courses", map[string]string{"id": c.id, "title": c.title, "description": c.description,
			"category": c.category, "level": c.level, "instructorId": c.instructor}), created, 1)
		for _, m := range c.modules {
			s.ok(s.do(http.MethodPost, "/v1/courses/"+c.id+"/modules", module(m.ID, m.Title)), created, 1)
		}
	}
	for _, id := range append(slices.Clone(publishedIDs), "old") {
		s.ok(s.do(http.MethodPost, "/v1/courses/"+id+"/publish", nil), ok, 1)
	}
	enroll := func(learnerID, courseID string) {
		s.ok(s.do(http.MethodPost, "/v1/courses/"+courseID+"/enrollments", enrollment(learnerID)), created, 1)
	}
	complete := func(learnerID, courseID, moduleID string, events int) {
		s.ok(s.do(http.MethodPost, completePath(learnerID, courseID, moduleID), nil), ok, events)
	}
	for _, l := range []string{"ada", "bob", "cyd", "dan"} {
		enroll(l, "go")
	}
	complete("ada", "go", "m1", 1)
	complete("ada", "go", "m2", 1)
	complete("ada", "go", "m3", 2) // and the course
	for _, l := range []string{"bob", "cyd", "dan"} {
		complete(l, "go", "m1", 1)
	}
	s.ok(s.do(http.MethodDelete, "/v1/courses/go/enrollments/dan", nil), ok, 1)
	s.ok(s.do(http.MethodDelete, "/v1/courses/go/enrollments/cyd", nil), ok, 1)
	enroll("cyd", "go") // resumes
	for _, l := range []string{"ada", "bob", "cyd", "dan"} {
		enroll(l, "art")
	}
	enroll("ada", "rust")
	enroll("bob", "rust")
	complete("ada", "rust", "r1", 1)
	enroll("bob", "sql")
	enroll("dan", "stats")
	enroll("ada", "old")
	s.ok(s.do(http.MethodPost, "/v1/courses/old/archive", nil), ok, 1)
}

// wantDetails are the course details after seed, times aside.
func wantDetails() map[string]courseDetail {
	counts := map[string]struct{ enrollments, completions int }{
		"go": {3, 1}, "rust": {2, 0}, "sql": {1, 0}, "stats": {1, 0}, "art": {4, 0}, "draft": {0, 0}, "old": {1, 0},
	}
	names := map[string]string{"ins1": graceName, "ins2": barbaraName}
	out := map[string]courseDetail{}
	for _, c := range schoolCourses() {
		status := "published"
		switch c.id {
		case "draft":
			status = "draft"
		case "old":
			status = "archived"
		}
		modules := c.modules
		if modules == nil {
			modules = []moduleView{}
		}
		out[c.id] = courseDetail{ID: c.id, Title: c.title, Category: c.category, Level: c.level,
			Instructor: instructorView{c.instructor, names[c.instructor]}, ModuleCount: len(c.modules),
			EnrollmentCount: counts[c.id].enrollments, Description: c.description, Status: status, Modules: modules,
			CompletionCount: counts[c.id].completions}
	}
	d := out["go"]
	d.CompletionRate = 0.25 // one of the four who ever enrolled
	out["go"] = d
	return out
}

// itemOf is the catalog item of a course detail.
func itemOf(d courseDetail) catalogItem {
	return catalogItem{ID: d.ID, Title: d.Title, Category: d.Category, Level: d.Level, Instructor: d.Instructor,
		ModuleCount: d.ModuleCount, EnrollmentCount: d.EnrollmentCount, CompletionRate: d.CompletionRate, PublishedAt: d.PublishedAt}
}

// newest orders course ids as the newest sort must: latest publishedAt first, then by id.
func newest(details map[string]courseDetail, ids ...string) []string {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b string) int {
		if c := details[b].PublishedAt.Compare(*details[a].PublishedAt); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return out
}

// plausible checks that a time the server took from its clock lies within the test's run.
func plausible(t *testing.T, what string, at time.Time, since time.Time) {
	t.Helper()
	// A minute of slack either side: a sanity check that the time was set, robust to clock steps.
	if at.Before(since.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
		t.Errorf("%s = %v, want a time from this test's run (since %v)", what, at, since)
	}
}

func TestReadAPIDocuments(t *testing.T) {
	t.Parallel()
	s := start(t, t.TempDir(), &logTracker{})
	began := time.Now()
	seed(t, s)
	details := map[string]courseDetail{}
	for _, c := range schoolCourses() {
		details[c.id] = detailOf(t, s, c.id)
	}

	t.Run("course_detail_shows_every_course_with_its_modules_in_order", func(t *testing.T) {
		if diff := cmp.Diff(wantDetails(), details, ignoreTimes); diff != "" {
			t.Errorf("course details (-want +got):\n%s", diff)
		}
		for id, d := range details {
			if (d.PublishedAt == nil) != (id == "draft") {
				t.Errorf("%s: publishedAt %v, want it set on every course but the draft", id, d.PublishedAt)
			}
			if d.PublishedAt != nil {
				plausible(t, id+" publishedAt", *d.PublishedAt, began)
				if d.UpdatedAt.Before(*d.PublishedAt) {
					t.Errorf("%s: updatedAt %v before publishedAt %v", id, d.UpdatedAt, *d.PublishedAt)
				}
			}
			plausible(t, id+" updatedAt", d.UpdatedAt, began)
		}
		// An empty course shows its modules as an empty list, not null.
		if body := fresh(t, s, "/v1/courses/draft").body; !bytes.Contains(body, []byte(`"modules":[]`)) ||
			!bytes.Contains(body, []byte(`"publishedAt":null`)) {
			t.Errorf("draft detail %s, want \"modules\":[] and \"publishedAt\":null", body)
		}
	})

	t.Run("catalog_lists_only_published_courses_as_their_details_show_them", func(t *testing.T) {
		got := catalog(t, s)
		var want []catalogItem
		for _, id := range newest(details, publishedIDs...) {
			want = append(want, itemOf(details[id]))
		}
		// Times included: the catalog's publishedAt is the detail's.
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("catalog (-want +got):\n%s", diff)
		}
	})

	t.Run("catalog_filters_by_category_level_and_instructor", func(t *testing.T) {
		for _, tc := range []struct {
			params []string
			want   []string // in any order; the listing is checked in newest order
		}{
			{[]string{"category", "data"}, []string{"sql", "stats"}},
			{[]string{"category", "programming"}, []string{"go", "rust", "art"}},
			{[]string{"category", "cooking"}, nil},
			{[]string{"level", "beginner"}, []string{"go", "sql"}}, // draft and old are beginner too
			{[]string{"level", "advanced"}, []string{"rust"}},
			{[]string{"instructorId", "ins2"}, []string{"rust", "stats"}}, // and the archived old
			{[]string{"instructorId", "ins1"}, []string{"go", "sql", "art"}},
			{[]string{"instructorId", "nobody"}, nil},
			{[]string{"category", "programming", "level", "intermediate"}, []string{"art"}},
			{[]string{"category", "data", "instructorId", "ins1", "level", "beginner"}, []string{"sql"}},
		} {
			got := catalogIDs(catalog(t, s, tc.params...))
			if want := newest(details, tc.want...); !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
				t.Errorf("catalog %v: %v, want %v", tc.params, got, want)
			}
		}
	})

	t.Run("catalog_q_matches_whole_title_words_case-insensitively", func(t *testing.T) {
		for _, tc := range []struct {
			q    string
			want []string
		}{
			{"go", []string{"go", "rust"}}, // not the draft nor the archived course
			{"GO", []string{"go", "rust"}},
			{"  Go! ", []string{"go", "rust"}},
			{"programmers go", []string{"rust"}}, // every word, in any order
			{"go sql", nil},
			{"programming", []string{"art"}},
			{"program", nil}, // a word, not a prefix
			{"r", []string{"stats"}},
			{"STATISTICS", []string{"stats"}},
		} {
			got := catalogIDs(catalog(t, s, "q", tc.q))
			if want := newest(details, tc.want...); !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
				t.Errorf("catalog q=%q: %v, want %v", tc.q, got, want)
			}
		}
		if body := fresh(t, s, "/v1/courses", "q", "nothing-matches").body; string(body) != `{"items":[],"nextCursor":null}` {
			t.Errorf("a search without results answers %s, want {\"items\":[],\"nextCursor\":null}", body)
		}
	})

	t.Run("catalog_sorts_newest_popular_and_title", func(t *testing.T) {
		for _, tc := range []struct {
			sort string
			want []string
		}{
			{"", newest(details, publishedIDs...)},
			{"newest", newest(details, publishedIDs...)},
			// Enrollments: art 4, go 3 (dan withdrew), rust 2, then sql and stats 1 each, by id.
			{"popular", []string{"art", "go", "rust", "sql", "stats"}},
			{"title", []string{"go", "rust", "sql", "stats", "art"}},
		} {
			var params []string
			if tc.sort != "" {
				params = []string{"sort", tc.sort}
			}
			if got := catalogIDs(catalog(t, s, params...)); !slices.Equal(got, tc.want) {
				t.Errorf("catalog sort=%q: %v, want %v", tc.sort, got, tc.want)
			}
		}
	})

	t.Run("catalog_pages_cover_every_item_exactly_once", func(t *testing.T) {
		for _, tc := range []struct {
			params    []string
			limit     int
			wantPages int
		}{
			{[]string{"sort", "newest"}, 2, 3},
			{[]string{"sort", "popular"}, 2, 3}, // the second page ends inside the tie of sql and stats
			{[]string{"sort", "title"}, 2, 3},
			{[]string{"sort", "popular"}, 1, 5},
			{nil, 4, 2},
			{nil, 5, 1}, // exactly one full page: no cursor to an empty page
			{[]string{"q", "go", "sort", "title"}, 1, 2},
			{[]string{"category", "programming", "sort", "popular"}, 2, 2},
		} {
			all := catalogIDs(catalog(t, s, tc.params...))
			got, n := pages[catalogItem](t, s, "/v1/courses", tc.limit, tc.params...)
			if ids := catalogIDs(got); !slices.Equal(ids, all) || n != tc.wantPages {
				t.Errorf("catalog %v by pages of %d: %v in %d pages, want %v in %d", tc.params, tc.limit, ids, n, all, tc.wantPages)
			}
		}
	})

	t.Run("stats_count_enrollments_by_status_and_module_completions", func(t *testing.T) {
		want := map[string]courseStats{
			"go":    {"go", 4, 2, 1, 1, 0.25, []moduleCompletions{{"m1", 4}, {"m2", 1}, {"m3", 1}}},
			"rust":  {"rust", 2, 2, 0, 0, 0, []moduleCompletions{{"r1", 1}, {"r2", 0}}},
			"sql":   {"sql", 1, 1, 0, 0, 0, []moduleCompletions{{"s1", 0}}},
			"stats": {"stats", 1, 1, 0, 0, 0, []moduleCompletions{{"t1", 0}, {"t2", 0}}},
			"art":   {"art", 4, 4, 0, 0, 0, []moduleCompletions{{"a1", 0}}},
			"draft": {"draft", 0, 0, 0, 0, 0, []moduleCompletions{}},
			"old":   {"old", 1, 1, 0, 0, 0, []moduleCompletions{{"o1", 0}}},
		}
		got := map[string]courseStats{}
		for id := range want {
			got[id] = statsOf(t, s, id)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stats (-want +got):\n%s", diff)
		}
	})

	dashboards := map[string]dashboardView{}
	for _, id := range []string{"ada", "bob", "cyd", "dan", "eve"} {
		dashboards[id] = dashboardOf(t, s, id)
	}

	t.Run("dashboard_shows_each_enrollment_with_its_progress", func(t *testing.T) {
		// In this school each learner completed the first done modules of a course, in order.
		en := func(course, status string, done, of int) enrollmentView {
			ids := []string{}
			for _, m := range wantDetails()[course].Modules[:done] {
				ids = append(ids, m.ID)
			}
			return enrollmentView{CourseID: course, Title: wantDetails()[course].Title, Status: status,
				Progress: float64(done) / float64(of), CompletedModules: ids, ModuleCount: of}
		}
		want := map[string]dashboardView{
			"ada": {"ada", "Ada Lovelace", []enrollmentView{en("go", "completed", 3, 3), en("art", "active", 0, 1),
				en("rust", "active", 1, 2), en("old", "active", 0, 1)}},
			"bob": {"bob", "Bob Kahn", []enrollmentView{en("go", "active", 1, 3), en("art", "active", 0, 1),
				en("rust", "active", 0, 2), en("sql", "active", 0, 1)}},
			"cyd": {"cyd", "Cyd Charisse", []enrollmentView{en("go", "active", 1, 3), en("art", "active", 0, 1)}},
			"dan": {"dan", "Dan Brown", []enrollmentView{en("go", "withdrawn", 1, 3), en("art", "active", 0, 1),
				en("stats", "active", 0, 2)}},
			"eve": {"eve", "Eve Moneypenny", []enrollmentView{}},
		}
		if diff := cmp.Diff(want, dashboards, ignoreTimes); diff != "" {
			t.Errorf("dashboards (-want +got):\n%s", diff)
		}
		for id, d := range dashboards {
			for _, e := range d.Enrollments {
				what := id + "'s " + e.CourseID
				plausible(t, what+" enrolledAt", e.EnrolledAt, began)
				if e.LastActivityAt.Before(e.EnrolledAt) {
					t.Errorf("%s: lastActivityAt %v before enrolledAt %v", what, e.LastActivityAt, e.EnrolledAt)
				}
				if (e.CompletedAt != nil) != (e.Status == "completed") {
					t.Errorf("%s: status %s with completedAt %v; want completedAt set exactly when completed", what, e.Status, e.CompletedAt)
				}
				if e.CompletedAt != nil && !e.CompletedAt.Equal(e.LastActivityAt) {
					t.Errorf("%s: completedAt %v, want the last activity %v", what, e.CompletedAt, e.LastActivityAt)
				}
			}
		}
		// Coming back keeps the first enrollment's date.
		cyd := dashboards["cyd"].Enrollments[0]
		if !cyd.EnrolledAt.Before(cyd.LastActivityAt) {
			t.Errorf("cyd resumed go: enrolledAt %v, want the first enrollment, before the resumption %v", cyd.EnrolledAt, cyd.LastActivityAt)
		}
		if body := fresh(t, s, "/v1/learners/eve/dashboard").body; !bytes.Contains(body, []byte(`"enrollments":[]`)) {
			t.Errorf("eve's dashboard %s, want \"enrollments\":[]", body)
		}
	})

	t.Run("roster_lists_learners_by_enrollment_with_the_dashboards'_data", func(t *testing.T) {
		want := map[string][]rosterItem{
			"go": {{LearnerID: "ada", Name: "Ada Lovelace", Status: "completed", Progress: 1},
				{LearnerID: "bob", Name: "Bob Kahn", Status: "active", Progress: 1.0 / 3},
				{LearnerID: "cyd", Name: "Cyd Charisse", Status: "active", Progress: 1.0 / 3},
				{LearnerID: "dan", Name: "Dan Brown", Status: "withdrawn", Progress: 1.0 / 3}},
			"art": {{LearnerID: "ada", Name: "Ada Lovelace", Status: "active"}, {LearnerID: "bob", Name: "Bob Kahn", Status: "active"},
				{LearnerID: "cyd", Name: "Cyd Charisse", Status: "active"}, {LearnerID: "dan", Name: "Dan Brown", Status: "active"}},
			"rust":  {{LearnerID: "ada", Name: "Ada Lovelace", Status: "active", Progress: 0.5}, {LearnerID: "bob", Name: "Bob Kahn", Status: "active"}},
			"draft": {},
		}
		for course, w := range want {
			got, _ := pages[rosterItem](t, s, "/v1/courses/"+course+"/roster", 100)
			// Enrollment order: each learner's enrolledAt, then the learner's id.
			sorted := slices.SortedStableFunc(slices.Values(got), func(a, b rosterItem) int {
				if c := a.EnrolledAt.Compare(b.EnrolledAt); c != 0 {
					return c
				}
				return strings.Compare(a.LearnerID, b.LearnerID)
			})
			if !slices.Equal(rosterIDs(got), rosterIDs(sorted)) {
				t.Errorf("roster of %s in order %v, want by enrolledAt %v", course, rosterIDs(got), rosterIDs(sorted))
			}
			byID := func(a, b rosterItem) int { return strings.Compare(a.LearnerID, b.LearnerID) }
			if diff := cmp.Diff(w, slices.SortedFunc(slices.Values(got), byID), ignoreTimes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("roster of %s (-want +got):\n%s", course, diff)
			}
			for _, r := range got {
				i := slices.IndexFunc(dashboards[r.LearnerID].Enrollments, func(e enrollmentView) bool { return e.CourseID == course })
				if i < 0 {
					t.Errorf("%s is on the roster of %s but not on their dashboard", r.LearnerID, course)
					continue
				}
				e := dashboards[r.LearnerID].Enrollments[i]
				if !r.EnrolledAt.Equal(e.EnrolledAt) || !cmp.Equal(r.CompletedAt, e.CompletedAt) {
					t.Errorf("%s in %s: roster enrolled %v completed %v, dashboard enrolled %v completed %v", r.LearnerID, course,
						r.EnrolledAt, r.CompletedAt, e.EnrolledAt, e.CompletedAt)
				}
			}
		}
		// cyd came back to go after dan withdrew, and keeps her place.
		if got, _ := pages[rosterItem](t, s, "/v1/courses/go/roster", 100); !slices.Equal(rosterIDs(got), []string{"ada", "bob", "cyd", "dan"}) {
			t.Errorf("roster of go %v, want the order of first enrollment ada, bob, cyd, dan", rosterIDs(got))
		}
	})

	t.Run("roster_pages_cover_every_learner_exactly_once", func(t *testing.T) {
		all, _ := pages[rosterItem](t, s, "/v1/courses/go/roster", 100)
		for _, tc := range []struct{ limit, wantPages int }{{1, 4}, {2, 2}, {3, 2}, {4, 1}} {
			got, n := pages[rosterItem](t, s, "/v1/courses/go/roster", tc.limit)
			if !slices.Equal(rosterIDs(got), rosterIDs(all)) || n != tc.wantPages {
				t.Errorf("roster of go by pages of %d: %v in %d pages, want %v in %d", tc.limit, rosterIDs(got), n, rosterIDs(all), tc.wantPages)
			}
		}
		// The default page holds 20.
		page := decodeStrict[listPage[rosterItem]](t, fresh(t, s, "/v1/courses/go/roster").body)
		if len(page.Items) != 4 || page.NextCursor != nil {
			t.Errorf("roster of go without a limit: %d items and cursor %v, want all 4 and none", len(page.Items), page.NextCursor)
		}
	})
}

func TestReadAPIFollowsChanges(t *testing.T) {
	t.Parallel()
	s := start(t, t.TempDir(), &logTracker{})
	seed(t, s)
	goETag := fresh(t, s, "/v1/courses/go").header.Get("ETag")

	t.Run("an_instructor's_new_name_reaches_the_catalog_and_the_course_details", func(t *testing.T) {
		s.t = t
		s.ok(s.do(http.MethodPatch, "/v1/users/ins1", map[string]string{"name": "Grace B. Hopper"}), ok, 1)
		want := map[string]string{"ins1": "Grace B. Hopper", "ins2": barbaraName}
		items := catalog(t, s)
		if len(items) != len(publishedIDs) {
			t.Errorf("catalog lists %v, want %v", catalogIDs(items), publishedIDs)
		}
		for _, it := range items {
			if it.Instructor.Name != want[it.Instructor.ID] {
				t.Errorf("catalog: %s taught by %+v, want %s", it.ID, it.Instructor, want[it.Instructor.ID])
			}
		}
		for _, c := range schoolCourses() {
			if d := detailOf(t, s, c.id); d.Instructor != (instructorView{c.instructor, want[c.instructor]}) {
				t.Errorf("detail of %s: instructor %+v, want %s %s", c.id, d.Instructor, c.instructor, want[c.instructor])
			}
		}
		if got := catalogIDs(catalog(t, s, "instructorId", "ins1", "sort", "title")); !slices.Equal(got, []string{"go", "sql", "art"}) {
			t.Errorf("catalog of ins1 after the rename: %v, want go, sql, art", got)
		}
		if etag := fresh(t, s, "/v1/courses/go").header.Get("ETag"); etag == goETag {
			t.Errorf("the detail of go kept ETag %s through its instructor's rename", etag)
		}
	})

	t.Run("a_learner's_new_name_reaches_the_rosters_and_their_dashboard", func(t *testing.T) {
		s.t = t
		s.ok(s.do(http.MethodPatch, "/v1/users/cyd", map[string]string{"name": "Cyd Finley"}), ok, 1)
		if d := dashboardOf(t, s, "cyd"); d.Name != "Cyd Finley" || len(d.Enrollments) != 2 {
			t.Errorf("cyd's dashboard: name %q with %d enrollments, want Cyd Finley with 2", d.Name, len(d.Enrollments))
		}
		if d := dashboardOf(t, s, "bob"); d.Name != "Bob Kahn" {
			t.Errorf("bob's dashboard: name %q, want Bob Kahn unchanged", d.Name)
		}
		for _, course := range []string{"go", "art"} {
			items, _ := pages[rosterItem](t, s, "/v1/courses/"+course+"/roster", 2)
			names := map[string]string{}
			for _, r := range items {
				names[r.LearnerID] = r.Name
			}
			want := map[string]string{"ada": "Ada Lovelace", "bob": "Bob Kahn", "cyd": "Cyd Finley", "dan": "Dan Brown"}
			if diff := cmp.Diff(want, names); diff != "" {
				t.Errorf("names on the roster of %s (-want +got):\n%s", course, diff)
			}
		}
	})

	t.Run("a_course's_new_title_reaches_every_dashboard_that_lists_it", func(t *testing.T) {
		s.t = t
		s.ok(s.do(http.MethodPatch, "/v1/courses/go", map[string]string{"title": "Go in Depth"}), ok, 1)
		for _, l := range []string{"ada", "bob", "cyd", "dan"} { // dan withdrew, and still sees it
			d := dashboardOf(t, s, l)
			for _, e := range d.Enrollments {
				want := wantDetails()[e.CourseID].Title
				if e.CourseID == "go" {
					want = "Go in Depth"
				}
				if e.Title != want {
					t.Errorf("%s's dashboard: %s titled %q, want %q", l, e.CourseID, e.Title, want)
				}
			}
		}
		d := detailOf(t, s, "go")
		if d.Title != "Go in Depth" || d.Description != "Learn Go from scratch." || d.Level != "beginner" {
			t.Errorf("detail of go: title %q, description %q, level %q; want the new title and the rest kept", d.Title, d.Description, d.Level)
		}
		if got := catalogIDs(catalog(t, s, "q", "depth")); !slices.Equal(got, []string{"go"}) {
			t.Errorf("catalog q=depth: %v, want [go]", got)
		}
		if got := catalogIDs(catalog(t, s, "q", "fundamentals")); len(got) != 0 {
			t.Errorf("catalog q=fundamentals after the retitle: %v, want nothing", got)
		}
	})

	t.Run("a_new_module_changes_progress_on_dashboards_and_the_roster", func(t *testing.T) {
		s.t = t
		s.ok(s.do(http.MethodPost, "/v1/courses/go/modules", module("m4", "Generics")), created, 1)
		goOf := func(l string) enrollmentView {
			t.Helper()
			for _, e := range dashboardOf(t, s, l).Enrollments {
				if e.CourseID == "go" {
					return e
				}
			}
			t.Fatalf("%s's dashboard lost go", l)
			return enrollmentView{}
		}
		want := map[string]enrollmentView{
			// ada completed every module go had; she stays completed, at three of four.
			"ada": {CourseID: "go", Title: "Go in Depth", Status: "completed", Progress: 0.75, CompletedModules: []string{"m1", "m2", "m3"}, ModuleCount: 4},
			"bob": {CourseID: "go", Title: "Go in Depth", Status: "active", Progress: 0.25, CompletedModules: []string{"m1"}, ModuleCount: 4},
			"cyd": {CourseID: "go", Title: "Go in Depth", Status: "active", Progress: 0.25, CompletedModules: []string{"m1"}, ModuleCount: 4},
			"dan": {CourseID: "go", Title: "Go in Depth", Status: "withdrawn", Progress: 0.25, CompletedModules: []string{"m1"}, ModuleCount: 4},
		}
		got := map[string]enrollmentView{}
		for l := range want {
			got[l] = goOf(l)
		}
		if diff := cmp.Diff(want, got, ignoreTimes); diff != "" {
			t.Errorf("go on the dashboards (-want +got):\n%s", diff)
		}
		if got["ada"].CompletedAt == nil {
			t.Error("ada's completedAt of go was cleared by a new module")
		}
		roster, _ := pages[rosterItem](t, s, "/v1/courses/go/roster", 100)
		for _, r := range roster {
			if r.Progress != want[r.LearnerID].Progress {
				t.Errorf("roster of go: %s at %v, want %v", r.LearnerID, r.Progress, want[r.LearnerID].Progress)
			}
		}
		d := detailOf(t, s, "go")
		if d.ModuleCount != 4 || len(d.Modules) != 4 || d.Modules[3] != (moduleView{"m4", "Generics"}) {
			t.Errorf("detail of go: %d modules %v, want m4 Generics last of 4", d.ModuleCount, d.Modules)
		}
		if st := statsOf(t, s, "go"); !cmp.Equal(st.ModuleCompletions, []moduleCompletions{{"m1", 4}, {"m2", 1}, {"m3", 1}, {"m4", 0}}) {
			t.Errorf("stats of go: module completions %v, want m4 at 0", st.ModuleCompletions)
		}

		s.ok(s.do(http.MethodPost, completePath("ada", "go", "m4"), nil), ok, 1)
		if e := goOf("ada"); e.Progress != 1 || !slices.Equal(e.CompletedModules, []string{"m1", "m2", "m3", "m4"}) || e.Status != "completed" || e.CompletedAt == nil {
			t.Errorf("ada after m4: %+v, want completed, 4 of 4, progress 1", e)
		}
	})
}

// readPaths is every read route the school offers, listings followed page by page with a
// short limit so that their cursors are part of what is read.
func readPaths(t *testing.T, s *server) []string {
	t.Helper()
	var paths []string
	follow := func(path string, params ...string) {
		for cursor := ""; ; {
			p := append(slices.Clone(params), "limit", "2")
			if cursor != "" {
				p = append(p, "cursor", cursor)
			}
			paths = append(paths, withQuery(path, p...))
			page := decodeStrict[listPage[json.RawMessage]](t, fresh(t, s, path, p...).body)
			if page.NextCursor == nil {
				return
			}
			cursor = *page.NextCursor
		}
	}
	paths = append(paths, "/v1/courses")
	for _, params := range [][]string{{"sort", "newest"}, {"sort", "popular"}, {"sort", "title"}, {"category", "data"},
		{"level", "beginner"}, {"instructorId", "ins2"}, {"q", "go"}} {
		paths = append(paths, withQuery("/v1/courses", params...))
		follow("/v1/courses", params...)
	}
	for _, c := range schoolCourses() {
		paths = append(paths, "/v1/courses/"+c.id, "/v1/courses/"+c.id+"/stats", "/v1/courses/"+c.id+"/roster")
		follow("/v1/courses/" + c.id + "/roster")
	}
	for _, l := range []string{"ada", "bob", "cyd", "dan", "eve"} {
		paths = append(paths, "/v1/learners/"+l+"/dashboard")
	}
	return paths
}

// readiness is the /readyz answer.
type readiness struct {
	Status string `json:"status"`
	Checks map[string]struct {
		Status string `json:"status"`
		Error  string `json:"error,omitempty"`
	} `json:"checks"`
	Projections map[string]struct {
		Position uint64 `json:"position"`
		Head     uint64 `json:"head"`
		Lag      uint64 `json:"lag"`
		Status   string `json:"status"`
	} `json:"projections"`
	Jobs *struct {
		Available              int     `json:"available"`
		OldestAvailableSeconds float64 `json:"oldestAvailableSeconds"`
	} `json:"jobs"`
}

// checkCaughtUp checks that /readyz shows every check ok and both projections running at the log's
// last known position. A projection reports its status just after a batch becomes readable, so
// this polls, for a few seconds at most, until both say running.
func checkCaughtUp(t *testing.T, s *server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := get(t, s, "/readyz")
		r := decodeStrict[readiness](t, a.body)
		running := len(r.Projections) == 2
		for _, p := range r.Projections {
			// "running" says the projection follows the log live; a commit it has not applied
			// yet shows as lag for a moment, so wait for that too.
			running = running && p.Status == "running" && p.Lag == 0 && p.Position == s.log.pos
		}
		if running || time.Now().After(deadline) {
			if a.status != http.StatusOK || r.Status != "ready" {
				t.Errorf("/readyz: %d %s, want 200 ready", a.status, a.body)
			}
			for _, name := range []string{"event_log", "read_store"} {
				if r.Checks[name].Status != "ok" {
					t.Errorf("/readyz: check %s is %+v, want ok", name, r.Checks[name])
				}
			}
			for _, name := range []string{"courses", "learners"} {
				p, found := r.Projections[name]
				if !found || p.Status != "running" || p.Lag != 0 || p.Position != s.log.pos || p.Head != s.log.pos {
					t.Errorf("/readyz: projection %s is %+v, want running at position and head %d, lag 0 (within 5s); body %s",
						name, p, s.log.pos, a.body)
				}
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadAPIAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := &logTracker{}
	s := start(t, dir, log)
	seed(t, s)
	paths := readPaths(t, s)
	before := make(map[string]answer, len(paths))
	for _, p := range paths {
		before[p] = fresh(t, s, p)
	}
	s.stop()

	s = start(t, dir, log)
	pos := strconv.FormatUint(log.pos, 10)
	for _, tc := range []struct{ name, minPosition string }{
		{"answers_every_read_as_before_with_minPosition_at_the_last_event", pos},
		{"answers_every_read_as_before_without_minPosition", ""},
		{"answers_every_read_as_before_with_minPosition_0", "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range paths {
				q := p
				if tc.minPosition != "" {
					q = withQuery(p, "minPosition", tc.minPosition)
				}
				a, b := get(t, s, q), before[p]
				if a.status != http.StatusOK || !bytes.Equal(a.body, b.body) {
					t.Errorf("GET %s after the restart: %d\n%s\nwant 200\n%s", q, a.status, a.body, b.body)
				}
				for _, h := range []string{"ETag", "Cache-Control", "Content-Type"} {
					if a.header.Get(h) != b.header.Get(h) {
						t.Errorf("GET %s after the restart: %s %q, want %q", q, h, a.header.Get(h), b.header.Get(h))
					}
				}
			}
		})
	}
	t.Run("reports_the_projections_running_and_caught_up", func(t *testing.T) {
		checkCaughtUp(t, s)
	})
	t.Run("keeps_following_the_log", func(t *testing.T) {
		s.t = t
		s.ok(s.do(http.MethodPost, completePath("bob", "go", "m2"), nil), ok, 1)
		if st := statsOf(t, s, "go"); st.ModuleCompletions[1] != (moduleCompletions{"m2", 2}) {
			t.Errorf("stats of go after bob completed m2 past the restart: %+v, want m2 at 2", st)
		}
		checkCaughtUp(t, s)
	})
}

// consistencyTimeout is the error the read API logs when a read gives up waiting for its
// minPosition; TestReadAPIRejects reports it on its own.
const consistencyTimeout = "has not reached position"

// startWith is start with more settings in the environment. Its stop, like start's, wants run
// to return nil and no error logged, but leaves consistency timeouts to the test that checks them.
func startWith(t *testing.T, dir string, log *logTracker, extra map[string]string) *server {
	t.Helper()
	return launch(t, dir, log, extra, func(line string) bool { return strings.Contains(line, consistencyTimeout) })
}

// wantProblem checks an error answer: problem+json with this status, its title, the field at
// fault and the path as instance.
func wantProblem(t *testing.T, path string, a answer, status int, field string) {
	t.Helper()
	if a.status != status {
		t.Errorf("GET %s: status %d, want %d; body %s", path, a.status, status, a.body)
		return
	}
	if mt, _, _ := mime.ParseMediaType(a.header.Get("Content-Type")); mt != problem.ContentType {
		t.Errorf("GET %s: Content-Type %q, want %s", path, a.header.Get("Content-Type"), problem.ContentType)
	}
	d := decodeStrict[problem.Details](t, a.body)
	u, _ := url.Parse(path)
	if d.Status != status || d.Title != http.StatusText(status) || d.Field != field || d.Type == "" || d.Detail == "" || d.Instance != u.Path {
		t.Errorf("GET %s: problem %+v, want status %d, title %q, field %q, instance %q, a type and a detail",
			path, d, status, http.StatusText(status), field, u.Path)
	}
}

func TestReadAPIRejects(t *testing.T) {
	t.Parallel()
	s := startWith(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_CONSISTENCY_WAIT": "200ms"})
	seed(t, s)
	head := s.log.pos
	routes := []string{"/v1/courses", "/v1/courses/go", "/v1/courses/go/stats", "/v1/courses/go/roster", "/v1/learners/ada/dashboard"}

	t.Run("answers_503_with_Retry-After_for_a_minPosition_past_the_head", func(t *testing.T) {
		var paths []string
		for _, r := range routes {
			for _, pos := range []uint64{head + 1, 1<<64 - 1} {
				paths = append(paths, withQuery(r, "minPosition", strconv.FormatUint(pos, 10)))
			}
		}
		// Each read waits out the consistency wait; wait for them together.
		answers := make([]answer, len(paths))
		errs := make([]error, len(paths))
		var wg sync.WaitGroup
		for i, p := range paths {
			wg.Go(func() {
				resp, err := s.client.Get(s.base + p)
				if err != nil {
					errs[i] = err
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				answers[i], errs[i] = answer{status: resp.StatusCode, header: resp.Header, body: b}, err
			})
		}
		wg.Wait()
		for i, p := range paths {
			if errs[i] != nil {
				t.Errorf("GET %s: %v", p, errs[i])
				continue
			}
			wantProblem(t, p, answers[i], http.StatusServiceUnavailable, "minPosition")
			if secs, err := strconv.Atoi(answers[i].header.Get("Retry-After")); err != nil || secs < 1 {
				t.Errorf("GET %s: Retry-After %q, want a number of seconds", p, answers[i].header.Get("Retry-After"))
			}
		}
	})
	t.Run("answers_a_minPosition_at_the_head", func(t *testing.T) {
		for _, r := range routes {
			fresh(t, s, r)
		}
	})

	t.Run("does_not_log_a_minPosition_timeout_as_an_error", func(t *testing.T) {
		// The 503 above is the API's deliberate answer to a client, not an internal failure.
		for line := range strings.Lines(s.logs.String()) {
			if strings.Contains(line, "level=ERROR") && strings.Contains(line, consistencyTimeout) {
				t.Errorf("a minPosition timeout was logged as an error: %s", line)
				break
			}
		}
	})

	t.Run("answers_400_naming_the_parameter", func(t *testing.T) {
		notJSON := base64.RawURLEncoding.EncodeToString([]byte("not json"))
		twoValues := base64.RawURLEncoding.EncodeToString([]byte(`{"v":[1,2],"id":"go"}`))
		floatValue := base64.RawURLEncoding.EncodeToString([]byte(`{"v":[1.5],"id":"go"}`))
		type bad struct {
			params []string
			field  string
		}
		var cases []struct {
			route string
			bad
		}
		add := func(route string, bs ...bad) {
			for _, b := range bs {
				cases = append(cases, struct {
					route string
					bad
				}{route, b})
			}
		}
		for _, r := range routes {
			add(r,
				bad{[]string{"minPosition", "abc"}, "minPosition"},
				bad{[]string{"minPosition", "-1"}, "minPosition"},
				bad{[]string{"minPosition", "1.5"}, "minPosition"},
				bad{[]string{"minPosition", "18446744073709551616"}, "minPosition"}, // past uint64
				bad{[]string{"fields", "title"}, "fields"},                          // unknown
			)
		}
		listings := []string{"/v1/courses", "/v1/courses/go/roster"}
		for _, r := range listings {
			add(r,
				bad{[]string{"limit", "0"}, "limit"},
				bad{[]string{"limit", "101"}, "limit"},
				bad{[]string{"limit", "-1"}, "limit"},
				bad{[]string{"limit", "ten"}, "limit"},
				bad{[]string{"cursor", "garbage!"}, "cursor"},
				bad{[]string{"cursor", notJSON}, "cursor"},
				bad{[]string{"cursor", twoValues}, "cursor"},
				bad{[]string{"cursor", floatValue}, "cursor"},
			)
		}
		add("/v1/courses",
			bad{[]string{"sort", "bad"}, "sort"},
			bad{[]string{"sort", "Title"}, "sort"},
			bad{[]string{"level", "expert"}, "level"},
		)
		add("/v1/courses/go/roster", bad{[]string{"sort", "newest"}, "sort"}) // the roster has no sorts
		for _, c := range cases {
			p := withQuery(c.route, c.params...)
			wantProblem(t, p, get(t, s, p), http.StatusBadRequest, c.field)
		}
		// The bounds themselves are fine.
		for _, r := range listings {
			fresh(t, s, r, "limit", "1")
			fresh(t, s, r, "limit", "100")
		}
	})

	t.Run("answers_404_for_unknown_ids", func(t *testing.T) {
		for _, p := range []string{
			"/v1/courses/nope", "/v1/courses/nope/stats", "/v1/courses/nope/roster", "/v1/learners/nope/dashboard",
			"/v1/courses/GO", "/v1/courses/GO/stats", "/v1/learners/ADA/dashboard",
			"/v1/learners/ins1/dashboard", // an instructor learns nothing
			"/v1/learners/go/dashboard",   // a course is not a learner
			"/v1/courses/ada",             // nor a learner a course
		} {
			wantProblem(t, p, get(t, s, p), http.StatusNotFound, "")
			q := withQuery(p, "minPosition", strconv.FormatUint(head, 10))
			wantProblem(t, q, get(t, s, q), http.StatusNotFound, "")
		}
	})
}

func TestReadAPIHTTP(t *testing.T) {
	t.Parallel()
	s := start(t, t.TempDir(), &logTracker{})
	seed(t, s)
	cacheControl := map[string]string{
		"/v1/courses":                "no-cache",
		"/v1/courses/go":             "no-cache",
		"/v1/courses/go/stats":       "no-cache",
		"/v1/courses/go/roster":      "private, no-cache",
		"/v1/learners/bob/dashboard": "private, no-cache",
	}
	routes := slices.Sorted(maps.Keys(cacheControl))

	etags := map[string]string{}
	t.Run("answers_If-None-Match_with_the_ETag_with_304_and_no_body", func(t *testing.T) {
		for _, r := range routes {
			a := fresh(t, s, r)
			etag := a.header.Get("ETag")
			if len(etag) < 3 || !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) {
				t.Errorf("GET %s: ETag %q, want a strong entity tag", r, etag)
				continue
			}
			etags[r] = etag
			if cc := a.header.Get("Cache-Control"); cc != cacheControl[r] {
				t.Errorf("GET %s: Cache-Control %q, want %q", r, cc, cacheControl[r])
			}
			for _, match := range []string{etag, `"nope", ` + etag, "*"} {
				n := get(t, s, r, "If-None-Match", match)
				if n.status != http.StatusNotModified || len(n.body) != 0 {
					t.Errorf("GET %s If-None-Match %s: %d with %d bytes, want 304 without a body", r, match, n.status, len(n.body))
				}
				if n.header.Get("ETag") != etag || n.header.Get("Cache-Control") != cacheControl[r] {
					t.Errorf("GET %s If-None-Match %s: ETag %q, Cache-Control %q; want %q and %q", r, match,
						n.header.Get("ETag"), n.header.Get("Cache-Control"), etag, cacheControl[r])
				}
			}
			if n := get(t, s, r, "If-None-Match", `"nope"`); n.status != http.StatusOK || !bytes.Equal(n.body, a.body) {
				t.Errorf("GET %s with another ETag: %d %s, want 200 with the document", r, n.status, n.body)
			}
		}
	})

	t.Run("answers_gzip_to_clients_that_accept_it", func(t *testing.T) {
		for _, r := range routes {
			plain := get(t, s, r, "Accept-Encoding", "identity")
			zipped := get(t, s, r, "Accept-Encoding", "gzip")
			if plain.status != http.StatusOK || plain.header.Get("Content-Encoding") != "" {
				t.Errorf("GET %s without gzip: %d, Content-Encoding %q; want 200 and none", r, plain.status, plain.header.Get("Content-Encoding"))
			}
			if zipped.status != http.StatusOK || zipped.header.Get("Content-Encoding") != "gzip" {
				t.Errorf("GET %s accepting gzip: %d, Content-Encoding %q; want 200 gzip", r, zipped.status, zipped.header.Get("Content-Encoding"))
				continue
			}
			if !strings.Contains(strings.Join(zipped.header.Values("Vary"), ","), "Accept-Encoding") {
				t.Errorf("GET %s: Vary %q, want it to name Accept-Encoding", r, zipped.header.Values("Vary"))
			}
			zr, err := gzip.NewReader(bytes.NewReader(zipped.body))
			if err != nil {
				t.Errorf("GET %s: gzip body: %v", r, err)
				continue
			}
			unzipped, err := io.ReadAll(zr)
			if err != nil {
				t.Errorf("GET %s: gunzip: %v", r, err)
			}
			if !bytes.Equal(unzipped, plain.body) || !json.Valid(unzipped) {
				t.Errorf("GET %s: gzip decodes to\n%s\nwant\n%s", r, unzipped, plain.body)
			}
			// Another representation, another strong tag (RFC 9110 8.8.3); each revalidates itself.
			plainTag := plain.header.Get("ETag")
			if zipped.header.Get("ETag") != etags[r] || plainTag == etags[r] || strings.TrimSuffix(plainTag, `"`)+`-gzip"` != etags[r] {
				t.Errorf("GET %s: ETag %q with gzip, %q without; want %q with gzip and its plain form without", r,
					zipped.header.Get("ETag"), plainTag, etags[r])
			}
			if n := get(t, s, r, "Accept-Encoding", "identity", "If-None-Match", plainTag); n.status != http.StatusNotModified || n.header.Get("ETag") != plainTag {
				t.Errorf("GET %s without gzip, If-None-Match %s: %d with ETag %q; want 304 with it", r, plainTag, n.status, n.header.Get("ETag"))
			}
		}
	})

	t.Run("changes_the_ETag_when_the_document_changes", func(t *testing.T) {
		s.t = t
		// bob completing m2 changes the stats, his roster entry and his dashboard; a new title, the
		// catalog and the detail.
		s.ok(s.do(http.MethodPost, completePath("bob", "go", "m2"), nil), ok, 1)
		s.ok(s.do(http.MethodPatch, "/v1/courses/go", map[string]string{"title": "Go, Again"}), ok, 1)
		for _, r := range routes {
			a := get(t, s, withQuery(r, "minPosition", strconv.FormatUint(s.log.pos, 10)), "If-None-Match", etags[r])
			if a.status != http.StatusOK {
				t.Errorf("GET %s with the old ETag after a change: %d, want 200 with the new document", r, a.status)
				continue
			}
			if etag := a.header.Get("ETag"); etag == etags[r] || etag == "" {
				t.Errorf("GET %s after a change: ETag %q, want a new one", r, etag)
			}
		}
	})
}

// sample returns the value of the series, given as the exposition writes it (name and labels),
// in a Prometheus text exposition.
func sample(exposition, series string) (float64, bool) {
	for line := range strings.Lines(exposition) {
		if rest, found := strings.CutPrefix(line, series+" "); found {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			return v, err == nil
		}
	}
	return 0, false
}

func TestReadAPIOperations(t *testing.T) {
	t.Parallel()
	s := start(t, t.TempDir(), &logTracker{})
	seed(t, s)
	// Every document a projector writes warms the cache before its position becomes readable,
	// so these reads are hits.
	const detailReads = 3
	for range detailReads {
		fresh(t, s, "/v1/courses/go")
	}

	t.Run("readyz_reports_both_projections_running_with_no_lag", func(t *testing.T) {
		checkCaughtUp(t, s)
		if cc := get(t, s, "/readyz").header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("/readyz: Cache-Control %q, want no-store", cc)
		}
	})

	t.Run("metrics_expose_projections_cache_and_requests", func(t *testing.T) {
		a := get(t, s, "/metrics")
		if a.status != http.StatusOK {
			t.Fatalf("/metrics: %d", a.status)
		}
		text := string(a.body)
		if !regexp.MustCompile(`(?m)^edutrack_projection_lease_held\{owner="[^"]+/\d+/[0-9a-f]+"\} 1$`).MatchString(text) {
			t.Error("/metrics does not name this process as the projector lease's holder")
		}
		for _, p := range []string{"courses", "learners"} {
			series := `edutrack_projection_position{projection="` + p + `"}`
			if v, found := sample(text, series); !found || v != float64(s.log.pos) {
				t.Errorf("%s = %v (found %v), want %d", series, v, found, s.log.pos)
			}
		}
		if v, found := sample(text, `edutrack_cache_hits_total{read_model="course_details"}`); !found || v != detailReads {
			t.Errorf("course_details cache hits = %v (found %v), want %d", v, found, detailReads)
		}
		if v, found := sample(text, `edutrack_cache_misses_total{read_model="course_details"}`); found && v != 0 {
			t.Errorf("course_details cache misses = %v, want none: the projector warmed the cache", v)
		}
		series := `edutrack_http_request_duration_seconds_count{method="GET",route="/v1/courses/{id}",status="200"}`
		if v, found := sample(text, series); !found || v != detailReads {
			t.Errorf("%s = %v (found %v), want %d", series, v, found, detailReads)
		}
		if !strings.Contains(text, `edutrack_http_request_duration_seconds_bucket{method="GET",route="/v1/courses/{id}",status="200",le=`) {
			t.Error("/metrics has no duration histogram buckets for GET /v1/courses/{id}")
		}
	})

	t.Run("metrics_pass_promtool's_check", func(t *testing.T) {
		checkMetrics(t, get(t, s, "/metrics").body)
	})

	t.Run("openapi_describes_every_route", func(t *testing.T) {
		a := get(t, s, "/openapi.json")
		if a.status != http.StatusOK || !json.Valid(a.body) {
			t.Fatalf("/openapi.json: %d, valid JSON %v", a.status, json.Valid(a.body))
		}
		var doc struct {
			OpenAPI string                                `json:"openapi"`
			Paths   map[string]map[string]json.RawMessage `json:"paths"`
		}
		if err := json.Unmarshal(a.body, &doc); err != nil {
			t.Fatalf("/openapi.json: %v", err)
		}
		if doc.OpenAPI != "3.0.3" {
			t.Errorf(`"openapi": %q, want "3.0.3"`, doc.OpenAPI)
		}
		routes := servedRoutes(t)
		// A walk that found nothing must not pass.
		for _, want := range []string{"GET /v1/courses", "GET /v1/courses/{id}", "GET /v1/courses/{id}/stats",
			"GET /v1/courses/{id}/roster", "GET /v1/learners/{id}/dashboard", "GET /openapi.json", "POST /v1/users",
			"PATCH /v1/users/{id}", "POST /v1/courses", "PATCH /v1/courses/{id}", "POST /v1/courses/{id}/modules",
			"POST /v1/courses/{id}/publish", "POST /v1/courses/{id}/archive", "POST /v1/courses/{id}/enrollments",
			"DELETE /v1/courses/{id}/enrollments/{learnerId}",
			"POST /v1/learners/{learnerId}/courses/{courseId}/modules/{moduleId}/complete",
			"GET /v1/learners/{id}/history", "GET /v1/learners/{id}/disclosures", "GET /v1/live", "POST /v1/live/tickets",
			"GET /v1/learners/{id}/certificates/{courseId}", "GET /v1/certificates/{certificateId}",
			"GET /v1/admin/jobs", "POST /v1/admin/jobs/{id}/retry", "POST /v1/admin/jobs/{id}/cancel",
			"POST /v1/courses/{id}/modules/{moduleId}/files", "POST /v1/courses/{id}/modules/{moduleId}/files/{fileId}/complete",
			"GET /v1/courses/{id}/modules/{moduleId}/files/{fileId}",
			"POST /graphql", "GET /graphql", "GET /graphql/schema.graphql",
			"PUT /v1/courses/{id}/image", "GET /media/{key}"} {
			if !slices.Contains(routes, want) {
				t.Errorf("the routes walked lack %s: %v", want, routes)
			}
		}
		for _, route := range routes {
			method, path, _ := strings.Cut(route, " ")
			if _, found := doc.Paths[path][strings.ToLower(method)]; !found {
				t.Errorf("/openapi.json does not describe %s", route)
			}
		}
	})
}

// servedRoutes lists the routes serve mounts, as "METHOD /pattern": those of the write and read
// APIs and of the jobs' admin API, walked from their own Routes, and the operational ones serve
// adds.
func servedRoutes(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	events, err := sqlitelog.Open(filepath.Join(dir, "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	reads, err := sqlitestore.Open(filepath.Join(dir, "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reads.Close()
	handler, err := commands.New(events, time.Now, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeAPI, err := writeapi.New(handler, log)
	if err != nil {
		t.Fatal(err)
	}
	readAPI, err := readapi.New(reads, cache.NewMemory(64), projections.NewPositions(), prometheus.NewRegistry(), log, readapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	originals, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer originals.Close()
	images, err := writeapi.NewImages(handler, originals, log, writeapi.ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	historyAPI, err := history.New(events, reads, projections.NewPositions(), log, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := streams.NewHub(changes.NewMemory(0), reads, cache.NewMemory(64), projections.NewPositions(), prometheus.NewRegistry(), log, streams.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gql, err := graphql.New(readAPI, prometheus.NewRegistry(), log, graphql.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tickets, err := ticket.New(ticket.NewMemory(), 0)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	writeAPI.Routes(r)
	readAPI.Routes(r)
	readAPI.PublicRoutes(r)
	readAPI.MediaRoutes(r)
	images.Routes(r)
	historyAPI.Routes(r)
	hub.Routes(r, r, tickets)
	gql.Routes(r)
	jobsapi.Routes(r, nil, log) // only walked
	routes := []string{"GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json", "GET /graphql/schema.graphql", "GET /graphql/ws",
		"GET " + signedFilesPath, "PUT " + signedFilesPath}
	err = chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return routes
}
