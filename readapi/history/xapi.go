package history

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// The ADL verbs and activity types the export uses.
const (
	verbRegistered = "http://adlnet.gov/expapi/verbs/registered"
	verbCompleted  = "http://adlnet.gov/expapi/verbs/completed"
	verbProgressed = "http://adlnet.gov/expapi/verbs/progressed"
	typeCourse     = "http://adlnet.gov/expapi/activities/course"
	typeModule     = "http://adlnet.gov/expapi/activities/module"
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

// ActivityDefinition says what kind of activity it is.
type ActivityDefinition struct {
	Type string `json:"type"`
}

// Result is the outcome a statement reports.
type Result struct {
	Completion *bool          `json:"completion,omitempty"`
	Extensions map[string]int `json:"extensions,omitempty"`
}

// StatementResult is a page of statements, as an LRS's statement API answers.
type StatementResult struct {
	Statements []Statement `json:"statements"`
	More       string      `json:"more,omitempty"`
}

func verb(id, word string) Verb { return Verb{ID: id, Display: map[string]string{"en-US": word}} }

// xapi answers a learner's history as xAPI statements. Progress counts the modules each course
// had when the learner completed one, replayed through the domain aggregates like asOf.
func (a *API) xapi(r *http.Request) (readhttp.Reply, error) {
	id, limit, from, err := a.historyPage(r, historyParams...)
	if err != nil {
		return readhttp.Reply{}, err
	}
	far := time.Now().Add(24 * time.Hour)
	events, err := a.streams.upTo(r.Context(), learner.StreamPrefix+id, far)
	if err != nil {
		return readhttp.Reply{}, err
	}
	home := a.opts.XAPIHomePage
	actor := Agent{ObjectType: "Agent", Account: Account{HomePage: home, Name: id}}
	courseActivity := func(c string) Activity {
		return Activity{ObjectType: "Activity", ID: home + "/courses/" + url.PathEscape(c), Definition: ActivityDefinition{Type: typeCourse}}
	}
	l := learner.New(id)
	courses := map[string]*courseAt{}
	out := StatementResult{Statements: []Statement{}}
	yes := true
	for i, e := range events {
		l.Apply(e.event)
		version := uint64(i + 1)
		if version < from {
			continue
		}
		if len(out.Statements) >= limit {
			out.More = r.URL.Path + "?format=xapi&limit=" + strconv.Itoa(limit) + "&cursor=" + strconv.FormatUint(version, 10)
			if reason := r.URL.Query().Get("reason"); reason != "" {
				// The next page is read for the same reason, and recorded with it.
				out.More += "&reason=" + url.QueryEscape(reason)
			}
			break
		}
		sid := e.id.String()
		switch ev := e.event.(type) {
		case learner.Enrolled:
			out.Statements = append(out.Statements, Statement{ID: sid, Actor: actor, Verb: verb(verbRegistered, "registered"),
				Object: courseActivity(ev.CourseID), Timestamp: e.at.UTC()})
		case learner.ModuleCompleted:
			c, ok := courses[ev.CourseID]
			if !ok {
				c = &courseAt{agg: course.New(ev.CourseID)}
				if c.events, err = a.streams.upTo(r.Context(), course.StreamPrefix+ev.CourseID, far); err != nil {
					return readhttp.Reply{}, err
				}
				courses[ev.CourseID] = c
			}
			c.advance(e.at)
			out.Statements = append(out.Statements, Statement{ID: sid, Actor: actor, Verb: verb(verbCompleted, "completed"),
				Object: Activity{ObjectType: "Activity", Definition: ActivityDefinition{Type: typeModule},
					ID: home + "/courses/" + url.PathEscape(ev.CourseID) + "/modules/" + url.PathEscape(ev.ModuleID)},
				Result: &Result{Completion: &yes}, Timestamp: e.at.UTC()})
			en, _ := l.Enrollment(ev.CourseID)
			done := 0
			for _, m := range en.CompletedModules {
				if c.agg.HasModule(m) {
					done++
				}
			}
			percent := int(100 * documents.Rate(done, c.agg.ModuleCount()))
			out.Statements = append(out.Statements, Statement{ID: progressID(e.id), Actor: actor, Verb: verb(verbProgressed, "progressed"),
				Object: courseActivity(ev.CourseID), Result: &Result{Extensions: map[string]int{progressExtension: percent}},
				Timestamp: e.at.UTC()})
		case learner.CourseCompleted:
			out.Statements = append(out.Statements, Statement{ID: sid, Actor: actor, Verb: verb(verbCompleted, "completed"),
				Object: courseActivity(ev.CourseID), Result: &Result{Completion: &yes}, Timestamp: e.at.UTC()})
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return readhttp.Reply{}, err
	}
	return readhttp.Reply{Body: body, ETag: `"x` + strconv.Itoa(len(events)) + `-` + strconv.FormatUint(from, 10) + `"`, Private: true}, nil
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
