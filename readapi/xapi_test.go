package readapi_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi"
	"github.com/edutrack/edutrack/readapi/history"
)

const (
	xapiHome       = "https://school.example"
	verbRegistered = "http://adlnet.gov/expapi/verbs/registered"
	verbLeft       = "http://id.tincanapi.com/verb/unregistered"
	verbCompleted  = "http://adlnet.gov/expapi/verbs/completed"
	verbProgressed = "http://adlnet.gov/expapi/verbs/progressed"
	typeCourse     = "http://adlnet.gov/expapi/activities/course"
	typeModule     = "http://adlnet.gov/expapi/activities/module"
	progressExt    = "https://w3id.org/xapi/cmi5/result/extensions/progress"
)

// xapiT0 is when the courses of the xAPI tests were created; xapiAt(n) is n hours later.
var xapiT0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

func xapiAt(hours int) time.Time { return xapiT0.Add(time.Duration(hours) * time.Hour) }

// happened is an event and when it happened; the log records it 50ms later, so a statement's
// timestamp tells the two apart.
type happened struct {
	at time.Time
	e  domain.Event
}

const recordDelay = 50 * time.Millisecond

// bobsLife is what the xAPI fixture's log holds, in order: the courses go and sql; bob enrols in
// both, does one module of go, withdraws, go is renamed while he is away, he resumes go and
// completes it, someone reads his records, he completes sql, and someone reads them again.
var bobsLife = []struct {
	stream string
	happened
}{
	{course.StreamPrefix + "go", happened{xapiT0, course.Created{CourseID: "go", Title: "Go", Category: "code", Level: course.LevelBeginner, InstructorID: "ins", At: xapiT0}}},
	{course.StreamPrefix + "go", happened{xapiT0, course.ModuleAdded{CourseID: "go", ModuleID: "m1", Title: "One", At: xapiT0}}},
	{course.StreamPrefix + "go", happened{xapiT0, course.ModuleAdded{CourseID: "go", ModuleID: "m2", Title: "Two", At: xapiT0}}},
	{course.StreamPrefix + "go", happened{xapiT0, course.Published{CourseID: "go", At: xapiT0}}},
	{course.StreamPrefix + "sql", happened{xapiT0, course.Created{CourseID: "sql", Title: "SQL", Category: "data", Level: course.LevelBeginner, InstructorID: "ins", At: xapiT0}}},
	{course.StreamPrefix + "sql", happened{xapiT0, course.ModuleAdded{CourseID: "sql", ModuleID: "q1", Title: "Queries", At: xapiT0}}},
	{course.StreamPrefix + "sql", happened{xapiT0, course.Published{CourseID: "sql", At: xapiT0}}},
	{learner.StreamPrefix + "bob", happened{xapiAt(1), learner.Enrolled{LearnerID: "bob", CourseID: "go", At: xapiAt(1)}}},
	{learner.StreamPrefix + "bob", happened{xapiAt(1).Add(time.Minute), learner.Enrolled{LearnerID: "bob", CourseID: "sql", At: xapiAt(1).Add(time.Minute)}}},
	{learner.StreamPrefix + "bob", happened{xapiAt(2), learner.ModuleCompleted{LearnerID: "bob", CourseID: "go", ModuleID: "m1", At: xapiAt(2)}}},
	{learner.StreamPrefix + "bob", happened{xapiAt(3), learner.Withdrawn{LearnerID: "bob", CourseID: "go", At: xapiAt(3)}}},
	{course.StreamPrefix + "go", happened{xapiAt(4), course.DetailsUpdated{CourseID: "go", Title: "Go, second edition", Category: "code", Level: course.LevelBeginner, At: xapiAt(4)}}},
	{learner.StreamPrefix + "bob", happened{xapiAt(5), learner.Enrolled{LearnerID: "bob", CourseID: "go", Resumed: true, At: xapiAt(5)}}},
	{learner.StreamPrefix + "bob", happened{xapiAt(6), learner.ModuleCompleted{LearnerID: "bob", CourseID: "go", ModuleID: "m2", At: xapiAt(6)}}},
	{learner.StreamPrefix + "bob", happened{xapiAt(6), learner.CourseCompleted{LearnerID: "bob", CourseID: "go", At: xapiAt(6)}}},
	{learner.StreamPrefix + "bob", happened{xapiAt(7), learner.DisclosureRecorded{LearnerID: "bob", RecipientID: "aud", RecipientRole: "auditor", Record: learner.RecordXAPI, At: xapiAt(7)}}},
	{learner.StreamPrefix + "bob", happened{xapiAt(8), learner.ModuleCompleted{LearnerID: "bob", CourseID: "sql", ModuleID: "q1", At: xapiAt(8)}}},
	{learner.StreamPrefix + "bob", happened{xapiAt(8), learner.CourseCompleted{LearnerID: "bob", CourseID: "sql", At: xapiAt(8)}}},
	{learner.StreamPrefix + "bob", happened{xapiAt(9), learner.DisclosureRecorded{LearnerID: "bob", RecipientID: "aud", RecipientRole: "auditor", Record: learner.RecordHistory, At: xapiAt(9)}}},
}

// xapiFixture serves the history of bobsLife, with learner accounts and activities on xapiHome.
func xapiFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, readapi.Options{})
	f.put(documents.LearnersProjection, documents.Dashboards, doc("bob", 1, `{"learnerId":"bob","name":"Bob","enrollments":[]}`))
	log := memLog{}
	for _, h := range bobsLife {
		log.append(h.stream, h.at.Add(recordDelay), h.e)
	}
	hs, err := history.New(log, f.store, f.positions, slog.New(slog.DiscardHandler),
		history.Options{XAPIHomePage: xapiHome, Disclosures: f.disclosed})
	if err != nil {
		t.Fatal(err)
	}
	hs.Routes(f.router)
	return f
}

// statement is the part of an exported statement the tests look at.
type statement struct {
	ID   string `json:"id"`
	Verb struct {
		ID      string            `json:"id"`
		Display map[string]string `json:"display"`
	} `json:"verb"`
	Object activity `json:"object"`
	Result *struct {
		Completion *bool          `json:"completion"`
		Extensions map[string]int `json:"extensions"`
	} `json:"result"`
	Context *struct {
		Registration      string `json:"registration"`
		ContextActivities *struct {
			Parent []activity `json:"parent"`
		} `json:"contextActivities"`
	} `json:"context"`
	Timestamp time.Time `json:"timestamp"`
}

type activity struct {
	ObjectType string `json:"objectType"`
	ID         string `json:"id"`
	Definition struct {
		Name map[string]string `json:"name"`
		Type string            `json:"type"`
	} `json:"definition"`
}

// statementPage is one answer of the export: the statements as sent, and the more link.
type statementPage struct {
	Statements []json.RawMessage `json:"statements"`
	More       string            `json:"more"`
}

func xapiPage(t *testing.T, f *fixture, path string) statementPage {
	t.Helper()
	return decodeStrict[statementPage](t, wantOK(t, path, f.getAs(bob, path)))
}

func decodeStatements(t *testing.T, raw []json.RawMessage) []statement {
	t.Helper()
	out := make([]statement, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			t.Fatalf("statement %d %s: %v", i, r, err)
		}
	}
	return out
}

// whole is bob's export in one page.
func whole(t *testing.T, f *fixture) []json.RawMessage {
	t.Helper()
	p := xapiPage(t, f, "/v1/learners/bob/history?format=xapi&limit=100")
	if p.More != "" {
		t.Fatalf("one page of 100 has a more link %q", p.More)
	}
	return p.Statements
}

// name is the one name of a language map; activity names are in no language EduTrack knows.
func name(m map[string]string) string {
	if len(m) != 1 {
		return fmt.Sprintf("%v", m)
	}
	for _, v := range m {
		return v
	}
	return ""
}

func TestXAPI(t *testing.T) {
	t.Parallel()
	goCourse, sqlCourse := xapiHome+"/courses/go", xapiHome+"/courses/sql"
	m1, m2, q1 := goCourse+"/modules/m1", goCourse+"/modules/m2", sqlCourse+"/modules/q1"

	t.Run("exports_a_withdrawal_and_its_resume_in_the_same_registration", func(t *testing.T) {
		f := xapiFixture(t)
		got := decodeStatements(t, whole(t, f))
		type row struct{ Verb, Display, Object string }
		want := []row{
			{verbRegistered, "registered", goCourse},
			{verbRegistered, "registered", sqlCourse},
			{verbCompleted, "completed", m1},
			{verbProgressed, "progressed", goCourse},
			{verbLeft, "unregistered", goCourse},
			{verbRegistered, "registered", goCourse},
			{verbCompleted, "completed", m2},
			{verbProgressed, "progressed", goCourse},
			{verbCompleted, "completed", goCourse},
			{verbCompleted, "completed", q1},
			{verbProgressed, "progressed", sqlCourse},
			{verbCompleted, "completed", sqlCourse},
		}
		var rows []row
		for _, s := range got {
			rows = append(rows, row{s.Verb.ID, s.Verb.Display["en-US"], s.Object.ID})
		}
		if diff := cmp.Diff(want, rows); diff != "" {
			t.Fatalf("statements (-want +got):\n%s", diff)
		}
		registration := map[string]string{}
		for i, s := range got {
			if s.Context == nil || s.Context.Registration == "" {
				t.Fatalf("statement %d (%s %s) has no registration", i, s.Verb.Display["en-US"], s.Object.ID)
			}
			c := strings.Split(strings.TrimPrefix(s.Object.ID, xapiHome+"/courses/"), "/")[0]
			if r, ok := registration[c]; ok && r != s.Context.Registration {
				t.Errorf("statement %d (%s %s) is in registration %s; the enrollment in %s began in %s",
					i, s.Verb.Display["en-US"], s.Object.ID, s.Context.Registration, c, r)
			}
			registration[c] = s.Context.Registration
		}
		if registration["go"] == registration["sql"] {
			t.Errorf("go and sql share registration %s", registration["go"])
		}
	})

	t.Run("names_each_activity_as_it_was_then_and_types_it", func(t *testing.T) {
		f := xapiFixture(t)
		type named struct{ Object, Type, Name, Parent, ParentName string }
		want := []named{
			{goCourse, typeCourse, "Go", "", ""},
			{sqlCourse, typeCourse, "SQL", "", ""},
			{m1, typeModule, "One", goCourse, "Go"},
			{goCourse, typeCourse, "Go", "", ""},
			{goCourse, typeCourse, "Go", "", ""},
			// The course was renamed while bob was away.
			{goCourse, typeCourse, "Go, second edition", "", ""},
			{m2, typeModule, "Two", goCourse, "Go, second edition"},
			{goCourse, typeCourse, "Go, second edition", "", ""},
			{goCourse, typeCourse, "Go, second edition", "", ""},
			{q1, typeModule, "Queries", sqlCourse, "SQL"},
			{sqlCourse, typeCourse, "SQL", "", ""},
			{sqlCourse, typeCourse, "SQL", "", ""},
		}
		var got []named
		for i, s := range decodeStatements(t, whole(t, f)) {
			n := named{Object: s.Object.ID, Type: s.Object.Definition.Type, Name: name(s.Object.Definition.Name)}
			if s.Context != nil && s.Context.ContextActivities != nil {
				parents := s.Context.ContextActivities.Parent
				if len(parents) != 1 || parents[0].ObjectType != "Activity" || parents[0].Definition.Type != typeCourse {
					t.Errorf("statement %d: parents %+v, want the one course", i, parents)
				}
				if len(parents) > 0 {
					n.Parent, n.ParentName = parents[0].ID, name(parents[0].Definition.Name)
				}
			}
			got = append(got, n)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("activities (-want +got):\n%s", diff)
		}
	})

	t.Run("dates_each_statement_when_it_happened", func(t *testing.T) {
		f := xapiFixture(t)
		var want []time.Time
		for _, h := range bobsLife {
			switch h.e.(type) {
			case learner.ModuleCompleted:
				want = append(want, h.at, h.at)
			case learner.Enrolled, learner.Withdrawn, learner.CourseCompleted:
				want = append(want, h.at)
			}
		}
		var got []time.Time
		for _, s := range decodeStatements(t, whole(t, f)) {
			got = append(got, s.Timestamp)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("timestamps (-want +got):\n%s", diff)
		}
	})

	t.Run("reads_the_same_statements_again", func(t *testing.T) {
		f := xapiFixture(t)
		first, again := whole(t, f), whole(t, f)
		if diff := cmp.Diff(strings.Join(rawStrings(first), "\n"), strings.Join(rawStrings(again), "\n")); diff != "" {
			t.Errorf("a second read differs (-first +again):\n%s", diff)
		}
	})

	t.Run("pages_count_statements_and_yield_each_once", func(t *testing.T) {
		f := xapiFixture(t)
		all := rawStrings(whole(t, f))
		for limit := 1; limit <= len(all)+1; limit++ {
			var got []string
			pages := 0
			path := "/v1/learners/bob/history?format=xapi&limit=" + strconv.Itoa(limit)
			for path != "" && pages <= len(all) {
				p := xapiPage(t, f, path)
				pages++
				if len(p.Statements) > limit || (p.More != "" && len(p.Statements) != limit) {
					t.Errorf("limit %d: page %d has %d statements and more %q", limit, pages, len(p.Statements), p.More)
				}
				got = append(got, rawStrings(p.Statements)...)
				path = p.More
			}
			if wantPages := (len(all) + limit - 1) / limit; pages != wantPages {
				t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
			}
			if diff := cmp.Diff(all, got); diff != "" {
				t.Errorf("limit %d: the pages (-whole +pages):\n%s", limit, diff)
			}
		}
	})

	t.Run("refuses_a_cursor_it_did_not_return", func(t *testing.T) {
		f := xapiFixture(t)
		for _, c := range []string{"0", "x", "3.", "3.0", "3.x", ".1", "3.1.1", "-1"} {
			p := "/v1/learners/bob/history?format=xapi&cursor=" + url.QueryEscape(c)
			wantProblem(t, p, f.getAs(bob, p), http.StatusBadRequest, "cursor")
		}
	})

}

func rawStrings(raw []json.RawMessage) []string {
	out := make([]string, len(raw))
	for i, r := range raw {
		out[i] = string(r)
	}
	return out
}
