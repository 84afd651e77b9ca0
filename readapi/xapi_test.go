package readapi_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
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
	xapiHome         = "https://school.example"
	verbRegistered   = "http://adlnet.gov/expapi/verbs/registered"
	verbUnregistered = "http://id.tincanapi.com/verb/unregistered"
	verbCompleted    = "http://adlnet.gov/expapi/verbs/completed"
	verbProgressed   = "http://adlnet.gov/expapi/verbs/progressed"
	typeCourse       = "http://adlnet.gov/expapi/activities/course"
	typeModule       = "http://adlnet.gov/expapi/activities/module"
	progressExt      = "https://w3id.org/xapi/cmi5/result/extensions/progress"
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

// bobsLife is what the xAPI fixture's log holds, in order: the courses go and sql; bob enrolls in
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
			{verbUnregistered, "unregistered", goCourse},
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
		// The resume takes up the earlier progress: m2 completes go.
		var progress []int
		for _, s := range got {
			if s.Verb.ID == verbProgressed && s.Result != nil {
				progress = append(progress, s.Result.Extensions[progressExt])
			}
		}
		if want := []int{50, 100, 100}; !cmp.Equal(progress, want) {
			t.Errorf("progress %v, want %v", progress, want)
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

	t.Run("keeps_to_xAPI_1.0.3", func(t *testing.T) {
		f := xapiFixture(t)
		var all []json.RawMessage
		for _, limit := range []int{1, 2, 100} {
			for path := "/v1/learners/bob/history?format=xapi&limit=" + strconv.Itoa(limit); path != ""; {
				b := wantOK(t, path, f.getAs(bob, path))
				var res map[string]any
				if err := json.Unmarshal(b, &res); err != nil {
					t.Fatal(err)
				}
				for _, p := range statementResultProblems(res) {
					t.Errorf("GET %s: %s", path, p)
				}
				p := decodeStrict[statementPage](t, b)
				all = append(all, p.Statements...)
				path = p.More
			}
		}
		if len(all) == 0 {
			t.Fatal("no statements to check")
		}
		for i, raw := range all {
			var s map[string]any
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			for _, p := range statementProblems(s) {
				t.Errorf("statement %d %s: %s", i, raw, p)
			}
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

// The rules below are those of the xAPI 1.0.3 data model (xAPI-Data.md, section 2.4) that apply
// to what the export sends: a Statement about an Agent doing something to an Activity, with a
// result and a context.

var (
	// uuidPattern is RFC 4122 in its canonical form (xAPI 1.0.3, 2.4.1 and 2.4.6: "UUID").
	uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	// languageTag is the shape of an RFC 5646 tag: a 2-3 letter language (or und), then subtags.
	languageTag = regexp.MustCompile(`^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$`)
	// iso8601 is the extended ISO 8601 date-time with seconds and an offset (2.4.7, 4.5).
	iso8601 = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$`)
)

// problems collects the rules a value breaks, each with where in the statement.
type problems []string

func (p *problems) add(where, format string, args ...any) {
	*p = append(*p, where+": "+fmt.Sprintf(format, args...))
}

// only reports the properties of obj that the rules do not allow there: an LRS rejects a
// statement with an unknown property (2.2, "Statement Requirements").
func (p *problems) only(where string, obj map[string]any, allowed ...string) {
	for k := range obj {
		if !contains(allowed, k) {
			p.add(where, "property %q is not allowed", k)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *problems) object(where string, v any) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		p.add(where, "is %T, want an object", v)
	}
	return m
}

func (p *problems) iri(where string, v any) {
	s, ok := v.(string)
	if !ok {
		p.add(where, "is %T, want an IRI", v)
		return
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || (strings.HasPrefix(u.Scheme, "http") && u.Host == "") {
		p.add(where, "%q is not an absolute IRI", s)
	}
}

func (p *problems) uuid(where string, v any) {
	if s, ok := v.(string); !ok || !uuidPattern.MatchString(s) {
		p.add(where, "%v is not a UUID", v)
	}
}

func (p *problems) languageMap(where string, v any) {
	m := p.object(where, v)
	if m != nil && len(m) == 0 {
		p.add(where, "is an empty language map")
	}
	for k, s := range m {
		if !languageTag.MatchString(k) {
			p.add(where, "key %q is not an RFC 5646 language tag", k)
		}
		if str, ok := s.(string); !ok || str == "" {
			p.add(where+"."+k, "is %v, want a non-empty string", s)
		}
	}
}

// activity checks an Activity (2.4.4.1): objectType Activity if present, an IRI id, and, as the
// export promises, a definition with a name and a type.
func (p *problems) activity(where string, v any) {
	a := p.object(where, v)
	if a == nil {
		return
	}
	p.only(where, a, "objectType", "id", "definition")
	if ot, ok := a["objectType"]; ok && ot != "Activity" {
		p.add(where+".objectType", "is %v, want Activity", ot)
	}
	p.iri(where+".id", a["id"])
	d := p.object(where+".definition", a["definition"])
	if d == nil {
		return
	}
	p.only(where+".definition", d, "name", "description", "type", "moreInfo", "extensions", "interactionType",
		"correctResponsesPattern", "choices", "scale", "source", "target", "steps")
	p.languageMap(where+".definition.name", d["name"])
	p.iri(where+".definition.type", d["type"])
}

// statementProblems lists the xAPI 1.0.3 rules statement s breaks.
func statementProblems(s map[string]any) []string {
	var p problems
	p.only("statement", s, "id", "actor", "verb", "object", "result", "context", "timestamp", "stored", "authority", "version", "attachments")
	p.uuid("id", s["id"])

	// 2.4.2: an Agent, identified by exactly one Inverse Functional Identifier; the export's is an
	// account, which needs both a homePage IRL and a name.
	actor := p.object("actor", s["actor"])
	p.only("actor", actor, "objectType", "name", "mbox", "mbox_sha1sum", "openid", "account")
	if ot, ok := actor["objectType"]; ok && ot != "Agent" {
		p.add("actor.objectType", "is %v, want Agent", ot)
	}
	ifis := 0
	for _, k := range []string{"mbox", "mbox_sha1sum", "openid", "account"} {
		if _, ok := actor[k]; ok {
			ifis++
		}
	}
	if ifis != 1 {
		p.add("actor", "has %d identifiers, want exactly one", ifis)
	}
	if account := p.object("actor.account", actor["account"]); account != nil {
		p.only("actor.account", account, "homePage", "name")
		p.iri("actor.account.homePage", account["homePage"])
		if n, ok := account["name"].(string); !ok || n == "" {
			p.add("actor.account.name", "is %v, want a non-empty string", account["name"])
		}
	}

	// 2.4.3: a verb is an IRI and, as the export sends it, a display language map.
	verb := p.object("verb", s["verb"])
	p.only("verb", verb, "id", "display")
	p.iri("verb.id", verb["id"])
	p.languageMap("verb.display", verb["display"])
	if verb["id"] == "http://adlnet.gov/expapi/verbs/voided" {
		p.add("verb.id", "is voided, which only an LRS may send about another statement")
	}

	// 2.4.4: the object is an Activity.
	p.activity("object", s["object"])

	// 2.4.5: result.
	if r, ok := s["result"]; ok {
		result := p.object("result", r)
		p.only("result", result, "score", "success", "completion", "response", "duration", "extensions")
		for _, k := range []string{"success", "completion"} {
			if v, ok := result[k]; ok {
				if _, isBool := v.(bool); !isBool {
					p.add("result."+k, "is %T, want a boolean", v)
				}
			}
		}
		if ext, ok := result["extensions"]; ok {
			for k := range p.object("result.extensions", ext) {
				p.iri("result.extensions key", k)
			}
		}
	}

	// 2.4.6: context. The export sends every statement in the registration of its enrollment, and
	// names the course of a module as its parent: contextActivities hold arrays of Activities.
	ctx := p.object("context", s["context"])
	p.only("context", ctx, "registration", "instructor", "team", "contextActivities", "revision", "platform", "language", "statement", "extensions")
	p.uuid("context.registration", ctx["registration"])
	if ca, ok := ctx["contextActivities"]; ok {
		activities := p.object("context.contextActivities", ca)
		p.only("context.contextActivities", activities, "parent", "grouping", "category", "other")
		for k, v := range activities {
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				p.add("context.contextActivities."+k, "is %v, want an array of Activities", v)
				continue
			}
			for i, a := range list {
				p.activity(fmt.Sprintf("context.contextActivities.%s[%d]", k, i), a)
			}
		}
	}

	// 2.4.7: timestamp, ISO 8601 with a time zone.
	if ts, ok := s["timestamp"].(string); !ok || !iso8601.MatchString(ts) {
		p.add("timestamp", "%v is not an ISO 8601 date-time with a zone", s["timestamp"])
	} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		p.add("timestamp", "%v: %v", ts, err)
	}
	return p
}

// statementResultProblems lists the rules a StatementResult (2.5) breaks: statements, and more
// as a relative IRL when there is more.
func statementResultProblems(res map[string]any) []string {
	var p problems
	p.only("StatementResult", res, "statements", "more")
	if _, ok := res["statements"].([]any); !ok {
		p.add("statements", "is %T, want an array", res["statements"])
	}
	if more, ok := res["more"]; ok {
		if s, ok := more.(string); !ok || !strings.HasPrefix(s, "/") {
			p.add("more", "%v is not a relative IRL", more)
		}
	}
	return p
}

// TestXAPIValidator checks that the rules above catch what they are for, so a pass means
// something.
func TestXAPIValidator(t *testing.T) {
	t.Parallel()
	good := func() map[string]any {
		return map[string]any{
			"id":    "3f1c8d9e-2b4a-4c6d-8e0f-1a2b3c4d5e6f",
			"actor": map[string]any{"objectType": "Agent", "account": map[string]any{"homePage": xapiHome, "name": "bob"}},
			"verb":  map[string]any{"id": verbCompleted, "display": map[string]any{"en-US": "completed"}},
			"object": map[string]any{"objectType": "Activity", "id": xapiHome + "/courses/go/modules/m1",
				"definition": map[string]any{"name": map[string]any{"und": "One"}, "type": typeModule}},
			"result": map[string]any{"completion": true},
			"context": map[string]any{"registration": "9a8b7c6d-5e4f-5a3b-9c1d-0e1f2a3b4c5d",
				"contextActivities": map[string]any{"parent": []any{map[string]any{"objectType": "Activity", "id": xapiHome + "/courses/go",
					"definition": map[string]any{"name": map[string]any{"und": "Go"}, "type": typeCourse}}}}},
			"timestamp": "2025-03-01T09:00:00.5Z",
		}
	}
	if p := statementProblems(good()); len(p) != 0 {
		t.Fatalf("a valid statement breaks %v", p)
	}
	for _, tc := range []struct {
		name   string
		breakS func(s map[string]any)
	}{
		{"an id that is no UUID", func(s map[string]any) { s["id"] = "42" }},
		{"an actor without an account name", func(s map[string]any) { delete(s["actor"].(map[string]any)["account"].(map[string]any), "name") }},
		{"an actor with two identifiers", func(s map[string]any) { s["actor"].(map[string]any)["mbox"] = "mailto:bob@example.com" }},
		{"a verb id that is no IRI", func(s map[string]any) { s["verb"].(map[string]any)["id"] = "completed" }},
		{"a verb without display", func(s map[string]any) { delete(s["verb"].(map[string]any), "display") }},
		{"an activity without a name", func(s map[string]any) {
			delete(s["object"].(map[string]any)["definition"].(map[string]any), "name")
		}},
		{"an activity without a type", func(s map[string]any) {
			delete(s["object"].(map[string]any)["definition"].(map[string]any), "type")
		}},
		{"a name keyed by no language tag", func(s map[string]any) {
			s["object"].(map[string]any)["definition"].(map[string]any)["name"] = map[string]any{"English": "One"}
		}},
		{"a completion that is no boolean", func(s map[string]any) { s["result"].(map[string]any)["completion"] = "yes" }},
		{"no context", func(s map[string]any) { delete(s, "context") }},
		{"a registration that is no UUID", func(s map[string]any) { s["context"].(map[string]any)["registration"] = "go" }},
		{"a parent that is no array", func(s map[string]any) {
			ca := s["context"].(map[string]any)["contextActivities"].(map[string]any)
			ca["parent"] = ca["parent"].([]any)[0]
		}},
		{"a timestamp without a zone", func(s map[string]any) { s["timestamp"] = "2025-03-01T09:00:00" }},
		{"an unknown property", func(s map[string]any) { s["learner"] = "bob" }},
	} {
		s := good()
		tc.breakS(s)
		if p := statementProblems(s); len(p) == 0 {
			t.Errorf("%s: the validator finds nothing wrong", tc.name)
		}
	}
}
