package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/edutrack/edutrack/domain"
)

// restOutcome is what a REST answer's status says, in GraphQL's words (readapi/graphql's
// errors.go maps each status to one code).
func restOutcome(status int) string {
	switch {
	case status >= 200 && status < 300:
		return "ok"
	case status == http.StatusBadRequest:
		return "BAD_USER_INPUT"
	case status == http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case status == http.StatusForbidden:
		return "FORBIDDEN"
	case status == http.StatusNotFound:
		return "NOT_FOUND"
	case status == http.StatusConflict:
		return "CONFLICT"
	case status == http.StatusUnprocessableEntity:
		return "UNPROCESSABLE"
	}
	return fmt.Sprint(status)
}

// gqlOutcome is the code of a GraphQL answer: ok, or its one error's code.
func gqlOutcome(status int, a gqlAnswer) string {
	switch {
	case status == http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case len(a.Errors) == 0:
		return "ok"
	case len(a.Errors) == 1:
		return fmt.Sprint(a.Errors[0].Extensions["code"])
	}
	return fmt.Sprintf("%d errors", len(a.Errors))
}

// Each role sends a representative set of commands through REST to one course and through
// GraphQL to its twin, in the same order: every pair must end alike, allowed or refused with
// the code of REST's status. Both courses go through the same states, so a command that one API
// allows and the other refuses shows here.
func TestGraphQLMutationsMatchRESTForEveryRole(t *testing.T) {
	t.Parallel()
	env := fileEnv()
	env["EDUTRACK_FILE_URL_KEY"] = "a-file-url-key-for-tests-only-32-bytes"
	s := launch(t, filepath.Join(t.TempDir(), "data"), &logTracker{}, env, func(string) bool { return false })
	s.ok(s.do("POST", "/v1/users", user("mi", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("mo", "Alan Kay", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ml", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ml2", "Bob Noyce", "learner")), created, 1)
	for _, c := range []string{"rc", "gc"} {
		s.ok(s.do("POST", "/v1/courses", newCourseBy(c, "mi")), created, 1)
		s.ok(s.do("POST", "/v1/courses/"+c+"/modules", module("m0", "Intro")), created, 1)
	}

	type command struct {
		name string
		rest func(course, tag string) (method, path, body string)
		gql  func(course, tag string) string
	}
	pdf := samplePDF(100)
	commands := []command{
		{"updateCourse",
			func(c, _ string) (string, string, string) { return "PATCH", "/v1/courses/" + c, `{"description":"d"}` },
			func(c, _ string) string { return `updateCourse(input: {id: "` + c + `", description: "d"})` }},
		{"addModule",
			func(c, tag string) (string, string, string) {
				return "POST", "/v1/courses/" + c + "/modules", `{"id":"m-` + tag + `","title":"T"}`
			},
			func(c, tag string) string {
				return `addModule(input: {courseId: "` + c + `", moduleId: "m-` + tag + `", title: "T"})`
			}},
		{"publishCourse",
			func(c, _ string) (string, string, string) { return "POST", "/v1/courses/" + c + "/publish", "" },
			func(c, _ string) string { return `publishCourse(input: {id: "` + c + `"})` }},
		{"enrollStudent",
			func(c, _ string) (string, string, string) {
				return "POST", "/v1/courses/" + c + "/enrollments", `{"learnerId":"ml"}`
			},
			func(c, _ string) string { return `enrollStudent(input: {courseId: "` + c + `", learnerId: "ml"})` }},
		{"completeModule",
			func(c, _ string) (string, string, string) { return "POST", completePath("ml", c, "m0"), "" },
			func(c, _ string) string {
				return `completeModule(input: {learnerId: "ml", courseId: "` + c + `", moduleId: "m0"})`
			}},
		{"startModuleFileUpload",
			func(c, _ string) (string, string, string) {
				return "POST", "/v1/courses/" + c + "/modules/m0/files", fmt.Sprintf(`{"name":"a.pdf","type":"application/pdf","size":%d,"sha256":%q}`, len(pdf), digest(pdf))
			},
			func(c, _ string) string {
				return fmt.Sprintf(`startModuleFileUpload(input: {courseId: %q, moduleId: "m0", name: "a.pdf", type: "application/pdf", size: %d, sha256: %q})`, c, len(pdf), digest(pdf))
			}},
		{"completeModuleFileUpload",
			func(c, _ string) (string, string, string) {
				return "POST", "/v1/courses/" + c + "/modules/m0/files/none/complete", ""
			},
			func(c, _ string) string {
				return `completeModuleFileUpload(input: {courseId: "` + c + `", moduleId: "m0", fileId: "none"})`
			}},
		{"withdrawEnrollment",
			func(c, _ string) (string, string, string) {
				return "DELETE", "/v1/courses/" + c + "/enrollments/ml", ""
			},
			func(c, _ string) string { return `withdrawEnrollment(input: {courseId: "` + c + `", learnerId: "ml"})` }},
		{"registerUser",
			func(_, tag string) (string, string, string) {
				return "POST", "/v1/users", `{"id":"u-` + tag + `-r","name":"N","email":"u-` + tag + `-r@example.com","role":"learner"}`
			},
			func(_, tag string) string {
				return `registerUser(input: {id: "u-` + tag + `-g", name: "N", email: "u-` + tag + `-g@example.com", role: "learner"})`
			}},
		{"archiveCourse",
			func(c, _ string) (string, string, string) { return "POST", "/v1/courses/" + c + "/archive", "" },
			func(c, _ string) string { return `archiveCourse(input: {id: "` + c + `"})` }},
	}
	roles := []struct{ tag, auth string }{
		{"anonymous", ""},
		{"auditor", bearer("ma", domain.Auditor)},
		{"learner", bearer("ml", domain.Learner)},
		{"other-learner", bearer("ml2", domain.Learner)},
		{"other-instructor", bearer("mo", domain.Instructor)},
		{"instructor", bearer("mi", domain.Instructor)},
		{"admin", bearer(testAdmin, domain.Admin)},
	}
	seen := map[string]bool{}
	for _, c := range commands {
		for _, r := range roles {
			method, path, body := c.rest("rc", r.tag)
			var raw []byte
			contentType := ""
			if body != "" {
				raw, contentType = []byte(body), "application/json"
			}
			byREST := restOutcome(call(t, s, method, path, r.auth, contentType, raw).status)
			status, a := gqlAs(t, s, r.auth, "mutation { "+c.gql("gc", r.tag)+" { position } }", nil)
			byGQL := gqlOutcome(status, a)
			seen[byREST] = true
			if byREST != byGQL {
				t.Errorf("%s as %s: REST %s, GraphQL %s (%+v)", c.name, r.tag, byREST, byGQL, a.Errors)
			}
		}
	}
	for _, want := range []string{"ok", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"} {
		if !seen[want] {
			t.Errorf("no pair ended %s: the matrix misses a case (saw %v)", want, seen)
		}
	}
	s.log.pos = logHead(t, s)
}

// learnerChanged answers a learner's records as they are, then again as they change; a stranger
// is refused with NOT_FOUND, as REST answers 404; and for an auditor each answer is a disclosure,
// recorded as REST records one.
func TestGraphQLLearnerChangedSubscription(t *testing.T) {
	t.Parallel()
	s := start(t, t.TempDir(), &logTracker{})
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("bob", "Bob Noyce", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/modules", module("m2", "More")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
	enrolled := s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada"), "Authorization", bearer("ada", domain.Learner)), created, 1)
	ada := bearer("ada", domain.Learner)
	// Projected before the subscriptions start, which answer it as it is.
	if a := gql(t, s, ada, `query($p: Uint64) { me(minPosition: $p) { id } }`, map[string]any{"p": enrolled.Position}); len(a.Errors) > 0 {
		t.Fatal(a.Errors)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	type message struct {
		Type    string          `json:"type"`
		ID      string          `json:"id,omitempty"`
		Payload json.RawMessage `json:"payload,omitempty"`
	}
	subscribe := func(auth, query string) (*websocket.Conn, func() message) {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.base, "http")+"/graphql/ws",
			&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			t.Fatal(err)
		}
		read := func() message {
			for {
				var m message
				if err := wsjson.Read(ctx, c, &m); err != nil {
					t.Fatalf("read: %v", err)
				}
				if m.Type != "ping" && m.Type != "pong" {
					return m
				}
			}
		}
		wsjson.Write(ctx, c, map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": auth}})
		if m := read(); m.Type != "connection_ack" {
			t.Fatalf("got %+v, want connection_ack", m)
		}
		wsjson.Write(ctx, c, map[string]any{"type": "subscribe", "id": "1", "payload": map[string]any{"query": query}})
		return c, read
	}
	sub := func(args string) string {
		return `subscription { learnerChanged(` + args + `) { id enrollments { courseId completedModules } } }`
	}
	withReason := func(r string) string { return sub(`id: "ada", reason: "` + r + `"`) }

	t.Run("a stranger is refused with NOT_FOUND", func(t *testing.T) {
		c, read := subscribe(bearer("bob", domain.Learner), withReason("curious"))
		defer c.CloseNow()
		if m := read(); (m.Type != "error" && m.Type != "next") || !strings.Contains(string(m.Payload), `"NOT_FOUND"`) || strings.Contains(string(m.Payload), `"enrollments"`) {
			t.Errorf("bob's subscription to ada: %s %s; want NOT_FOUND and no records", m.Type, m.Payload)
		}
	})

	type disclosure struct {
		RecipientID string `json:"recipientId"`
		Record      string `json:"record"`
		Reason      string `json:"reason"`
	}
	// disclosures are ada's as the log holds them now, read as she reads them in REST.
	disclosures := func() []disclosure {
		t.Helper()
		s.log.pos = logHead(t, s)
		var list struct{ Items []disclosure }
		a := get(t, s, "/v1/learners/ada/disclosures?limit=100&minPosition="+itoa(s.log.pos), "Authorization", ada)
		if err := json.Unmarshal(a.body, &list); err != nil || a.status != http.StatusOK {
			t.Fatalf("ada's disclosures: %d %s (%v)", a.status, a.body, err)
		}
		return list.Items
	}
	if d := disclosures(); len(d) != 0 {
		t.Fatalf("bob's refused subscription recorded %+v", d)
	}

	own, readOwn := subscribe(ada, sub(`id: "ada"`))
	defer own.CloseNow()
	audit, readAudit := subscribe(bearer("aud", domain.Auditor), withReason("appeal 7"))
	defer audit.CloseNow()
	answers := 0 // the auditor's
	// next reads answers until one satisfies want; a batch of the feed may push the records
	// again unchanged (the projector announces a commit after readers can see it).
	next := func(who string, read func() message, want string) {
		t.Helper()
		for {
			m := read()
			if m.Type != "next" {
				t.Fatalf("%s: %s %s; want the records", who, m.Type, m.Payload)
			}
			if who == "the auditor" {
				answers++
				// Recorded before it left: the log holds a disclosure for each answer so far.
				if d := disclosures(); len(d) < answers {
					t.Fatalf("the auditor has had %d answers and the log %d disclosures", answers, len(d))
				}
			}
			if strings.Contains(string(m.Payload), want) {
				return
			}
		}
	}
	next("ada", readOwn, `"completedModules":[]`)
	next("the auditor", readAudit, `"completedModules":[]`)
	s.log.pos = logHead(t, s)
	s.ok(s.do("POST", completePath("ada", "go", "m1"), nil, "Authorization", ada), ok, 1)
	next("ada", readOwn, `"completedModules":["m1"]`)
	next("the auditor", readAudit, `"completedModules":["m1"]`)
	own.Close(websocket.StatusNormalClosure, "")
	audit.Close(websocket.StatusNormalClosure, "")

	// The auditor's answers, and none for ada's own or for bob's refusal (one more may have
	// been recorded for an answer still on its way as the socket closed).
	d := disclosures()
	if len(d) < answers || len(d) > answers+1 {
		t.Fatalf("ada's disclosures: %+v; want one per answer to the auditor (%d)", d, answers)
	}
	for _, d := range d {
		if d.RecipientID != "aud" || d.Record != "dashboard" || d.Reason != "appeal 7" {
			t.Errorf("disclosure %+v; want aud's read of the dashboard for appeal 7", d)
		}
	}
}
