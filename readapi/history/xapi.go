package history

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// The verbs and activity types the export uses: ADL's, and one of the xAPI registry's.
const (
	verbRegistered = "http://adlnet.gov/expapi/verbs/registered"
	// verbUnregistered says the learner left a course they were registered in. It is the xAPI
	// registry's (registry.tincanapi.com) inverse of ADL's registered ("the actor is officially
	// enrolled or inducted in an activity"), and the verb the xAPI LMS profile (w3id.org/xapi/lms)
	// and Open edX send when a learner leaves a course, so a report that counts enrollments as
	// registered minus unregistered counts ours. It does not say the learner will never come back:
	// a resume is registered again, in the same registration. ADL's exited and suspended would
	// not do: they leave or pause an attempt (cmi5 and SCORM sessions), not an enrollment, and
	// suspended claims the learner means to return, which EduTrack does not know.
	verbUnregistered = "http://id.tincanapi.com/verb/unregistered"
	verbCompleted    = "http://adlnet.gov/expapi/verbs/completed"
	verbProgressed   = "http://adlnet.gov/expapi/verbs/progressed"
	typeCourse       = "http://adlnet.gov/expapi/activities/course"
	typeModule       = "http://adlnet.gov/expapi/activities/module"
	// progressExtension is cmi5's progress result extension: an integer percentage.
	progressExtension = "https://w3id.org/xapi/cmi5/result/extensions/progress"
)

// Statement is an xAPI statement, with the parts an LRS needs.
type Statement struct {
	ID        string    `json:"id"`
	Actor     Agent     `json:"actor"`
	Verb      Verb      `json:"verb"`
	Object    Activity  `json:"object"`
	Result    *Result   `json:"result,omitempty"`
	Context   *Context  `json:"context,omitempty"`
	Timestamp time.Time `json:"timestamp"`
}

// Agent is the learner, identified by an account on EduTrack.
type Agent struct {
	ObjectType string  `json:"objectType"`
	Account    Account `json:"account"`
}

// Account names a user on a system.
type Account struct {
	HomePage string `json:"homePage"`
	Name     string `json:"name"`
}

// Verb is what the learner did.
type Verb struct {
	ID      string            `json:"id"`
	Display map[string]string `json:"display"`
}

// Activity is a course or a module.
type Activity struct {
	ObjectType string             `json:"objectType"`
	ID         string             `json:"id"`
	Definition ActivityDefinition `json:"definition"`
}

// ActivityDefinition says what an activity was called then, and what kind of activity it is.
type ActivityDefinition struct {
	Name map[string]string `json:"name,omitempty"`
	Type string            `json:"type"`
}

// titleLanguage keys the titles in names. EduTrack does not record the language a course or
// module title is written in, so it says so: "und" is RFC 5646's tag for an undetermined
// language, where "en-US" would claim a language the title may not be in.
const titleLanguage = "und"

// named is a name language map holding title, or none when the title is unknown (a course whose
// stream the log does not hold): an empty name would tell an LRS the activity has no name.
func named(title string) map[string]string {
	if title == "" {
		return nil
	}
	return map[string]string{titleLanguage: title}
}

// Result is the outcome a statement reports.
type Result struct {
	Completion *bool          `json:"completion,omitempty"`
	Extensions map[string]int `json:"extensions,omitempty"`
}

// Context places a statement: in the registration of the enrollment it is about, and, for a
// module, in its course.
type Context struct {
	Registration      string             `json:"registration"`
	ContextActivities *ContextActivities `json:"contextActivities,omitempty"`
}

// ContextActivities are the activities a statement's object is part of.
type ContextActivities struct {
	Parent []Activity `json:"parent,omitempty"`
}

// StatementResult is a page of statements, as an LRS's statement API answers.
type StatementResult struct {
	Statements []Statement `json:"statements"`
	More       string      `json:"more,omitempty"`
}

func verb(id, word string) Verb { return Verb{ID: id, Display: map[string]string{"en-US": word}} }

// xapi answers a learner's history as xAPI statements. Progress counts the modules each course
// had when the learner completed one, replayed through the domain aggregates like asOf. limit
// counts statements, and the cursor names a statement, so that following more yields each one
// once whatever the page size.
func (a *API) xapi(r *http.Request) (readhttp.Reply, error) {
	id, limit, from, err := a.historyPage(r, statementCursor, historyParams...)
	if err != nil {
		return readhttp.Reply{}, err
	}
	far := time.Now().Add(24 * time.Hour)
	events, err := a.streams.upTo(r.Context(), learner.StreamPrefix+id, far)
	if err != nil {
		return readhttp.Reply{}, err
	}
	x := &exporter{ctx: r.Context(), streams: a.streams, far: far, home: a.opts.XAPIHomePage,
		actor:   Agent{ObjectType: "Agent", Account: Account{HomePage: a.opts.XAPIHomePage, Name: id}},
		learner: learner.New(id), registrations: map[string]string{}, courses: map[string]*courseAt{}}
	out := StatementResult{Statements: []Statement{}}
fill:
	for _, e := range events {
		x.apply(e)
		if e.version < from.version {
			continue
		}
		statements, err := x.statements(e)
		if err != nil {
			return readhttp.Reply{}, err
		}
		for n, s := range statements {
			if e.version == from.version && n < from.statement {
				continue
			}
			// The page ends where the next statement is, not the next event: an event that
			// yields none (a disclosure) would otherwise end on a link to an empty page.
			if len(out.Statements) == limit {
				out.More = r.URL.Path + "?format=xapi&limit=" + strconv.Itoa(limit) + "&cursor=" + position{e.version, n}.String()
				if reason := r.URL.Query().Get("reason"); reason != "" {
					// The next page is read for the same reason, and recorded with it.
					out.More += "&reason=" + url.QueryEscape(reason)
				}
				break fill
			}
			out.Statements = append(out.Statements, s)
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return readhttp.Reply{}, err
	}
	return readhttp.Reply{Body: body, ETag: `"x` + strconv.Itoa(len(events)) + `-` + from.String() + `-` + strconv.Itoa(limit) + `"`,
		Private: true}, nil
}

// statementCursor reads the export's cursor: the version of the event whose statements the page
// begins with, then ".n" when it begins with the event's statement n rather than its first (a
// module completion yields two).
func statementCursor(raw string) (position, bool) {
	event, statement, ok := strings.Cut(raw, ".")
	p, valid := eventCursor(event)
	if !ok {
		return p, valid
	}
	n, err := strconv.ParseUint(statement, 10, 8)
	p.statement = int(n)
	return p, valid && err == nil && n > 0
}

// exporter turns a learner's events, in order, into statements.
type exporter struct {
	ctx     context.Context
	streams *replayCache
	far     time.Time // later than any event read
	home    string
	actor   Agent

	learner *learner.Learner
	// registrations holds the registration of each enrollment, by course id.
	registrations map[string]string
	courses       map[string]*courseAt
}

// apply follows the learner through e: every event is applied, the ones before the page too, so
// that progress and registrations are those of the whole history.
func (x *exporter) apply(e replayedEvent) {
	x.learner.Apply(e.event)
	if en, ok := e.event.(learner.Enrolled); ok {
		if _, known := x.registrations[en.CourseID]; !known {
			x.registrations[en.CourseID] = registrationID(e.id)
		}
	}
}

// registrationID derives the registration of an enrollment from the event that began it. A
// learner has one enrollment per course: enrolling after a withdrawal resumes it (Enrolled with
// Resumed, the earlier progress counting again, EnrolledAt kept), so the resume is the same
// registration, and an LRS sees one enrollment that was left and taken up again rather than two.
// Derived, not stored: every read, and every page, finds the same one.
func registrationID(enrolled uuid.UUID) string {
	return uuid.NewSHA1(enrolled, []byte("registration")).String()
}

// statements returns what e says, once applied: none for an event about no enrollment (the
// domain ignores those too) or that an LRS has no use for (a disclosure). Activities are named
// as the course stood when e was recorded, replayed like the progress.
//
// The timestamp is when it happened, the time the domain decided it with; the log's recording
// time only orders the learner's events against the course's, as it is the one clock both
// streams share.
func (x *exporter) statements(e replayedEvent) ([]Statement, error) {
	var courseID string
	var happened time.Time
	switch ev := e.event.(type) {
	case learner.Enrolled:
		courseID, happened = ev.CourseID, ev.At
	case learner.Withdrawn:
		courseID, happened = ev.CourseID, ev.At
	case learner.ModuleCompleted:
		courseID, happened = ev.CourseID, ev.At
	case learner.CourseCompleted:
		courseID, happened = ev.CourseID, ev.At
	default:
		return nil, nil
	}
	if happened.IsZero() {
		happened = e.at // an event that does not say when: it happened no later than recorded
	}
	registration, ok := x.registrations[courseID]
	if !ok {
		return nil, nil
	}
	c, err := x.course(courseID)
	if err != nil {
		return nil, err
	}
	c.advance(e.at)
	courseActivity := Activity{ObjectType: "Activity", ID: x.home + "/courses/" + url.PathEscape(courseID),
		Definition: ActivityDefinition{Name: named(c.agg.Details().Title), Type: typeCourse}}
	statement := func(id, verbID, word string, object Activity, result *Result) Statement {
		s := Statement{ID: id, Actor: x.actor, Verb: verb(verbID, word), Object: object, Result: result,
			Context: &Context{Registration: registration}, Timestamp: happened.UTC()}
		if object.ID != courseActivity.ID {
			s.Context.ContextActivities = &ContextActivities{Parent: []Activity{courseActivity}}
		}
		return s
	}
	sid := e.id.String()
	yes := true
	switch ev := e.event.(type) {
	case learner.Enrolled:
		return []Statement{statement(sid, verbRegistered, "registered", courseActivity, nil)}, nil
	case learner.Withdrawn:
		return []Statement{statement(sid, verbUnregistered, "unregistered", courseActivity, nil)}, nil
	case learner.ModuleCompleted:
		m, _ := c.agg.Module(ev.ModuleID)
		module := Activity{ObjectType: "Activity", ID: courseActivity.ID + "/modules/" + url.PathEscape(ev.ModuleID),
			Definition: ActivityDefinition{Name: named(m.Title), Type: typeModule}}
		en, _ := x.learner.Enrollment(courseID)
		done := 0
		for _, m := range en.CompletedModules {
			if c.agg.HasModule(m) {
				done++
			}
		}
		percent := int(100 * documents.Rate(done, c.agg.ModuleCount()))
		return []Statement{
			statement(sid, verbCompleted, "completed", module, &Result{Completion: &yes}),
			statement(progressID(e.id), verbProgressed, "progressed", courseActivity, &Result{Extensions: map[string]int{progressExtension: percent}}),
		}, nil
	default: // learner.CourseCompleted
		return []Statement{statement(sid, verbCompleted, "completed", courseActivity, &Result{Completion: &yes})}, nil
	}
}

// course is courseID replayed as far as the learner's events have come.
func (x *exporter) course(courseID string) (*courseAt, error) {
	if c, ok := x.courses[courseID]; ok {
		return c, nil
	}
	c := &courseAt{agg: course.New(courseID)}
	var err error
	if c.events, err = x.streams.upTo(x.ctx, course.StreamPrefix+courseID, x.far); err != nil {
		return nil, err
	}
	x.courses[courseID] = c
	return c, nil
}

// courseAt replays a course forward in time, as the learner's events advance.
type courseAt struct {
	agg    *course.Course
	events []replayedEvent
	next   int
}

func (c *courseAt) advance(to time.Time) {
	for c.next < len(c.events) && !c.events[c.next].at.After(to) {
		c.agg.Apply(c.events[c.next].event)
		c.next++
	}
}
