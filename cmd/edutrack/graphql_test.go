package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
)

type gqlAnswer struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// gql sends one GraphQL operation to the served /graphql as caller.
func gql(t *testing.T, s *server, caller string, query string, vars map[string]any) gqlAnswer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	r := s.send(http.MethodPost, "/graphql", "application/json", body, "Authorization", caller)
	var a gqlAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	return a
}

// mutate runs a mutation that must succeed and answers its log position.
func mutate(t *testing.T, s *server, caller, field, input string) uint64 {
	t.Helper()
	a := gql(t, s, caller, fmt.Sprintf(`mutation { %s(input: %s) { id version position } }`, field, input), nil)
	if len(a.Errors) > 0 {
		t.Fatalf("%s: %+v", field, a.Errors)
	}
	var res struct{ Position uint64 }
	if err := json.Unmarshal(a.Data[field], &res); err != nil || res.Position == 0 {
		t.Fatalf("%s answered %s", field, a.Data[field])
	}
	s.log.pos = max(s.log.pos, res.Position) // what the server must have projected before it stops
	return res.Position
}

// Every write command as a mutation, straight to the command side, each answering a position
// that a query's minPosition then reads.
func TestGraphQLMutationsRunEveryCommandAndReadTheirWrites(t *testing.T) {
	s := start(t, t.TempDir(), &logTracker{})
	admin, teacher, learner := bearer(testAdmin, domain.Admin), bearer("gt", domain.Instructor), bearer("gl", domain.Learner)
	mutate(t, s, admin, "registerUser", `{id: "gt", name: "Grace", email: "gt@example.com", role: "instructor"}`)
	mutate(t, s, admin, "registerUser", `{id: "gl", name: "Lin", email: "gl@example.com", role: "learner"}`)
	mutate(t, s, admin, "updateUser", `{id: "gl", name: "Lin Wu"}`)
	mutate(t, s, teacher, "createCourse", `{id: "gq", title: "GraphQL", category: "cs", level: "beginner", instructorId: "gt"}`)
	mutate(t, s, teacher, "updateCourse", `{id: "gq", description: "One query a screen"}`)
	mutate(t, s, teacher, "addModule", `{courseId: "gq", moduleId: "m1", title: "Queries"}`)
	pos := mutate(t, s, teacher, "publishCourse", `{id: "gq"}`)
	a := gql(t, s, learner, `query($p: Uint64) { course(id: "gq", minPosition: $p) { status description modules { id } } }`, map[string]any{"p": pos})
	if string(a.Data["course"]) != `{"status":"published","description":"One query a screen","modules":[{"id":"m1"}]}` || len(a.Errors) > 0 {
		t.Errorf("the course read at its position: %s %+v", a.Data["course"], a.Errors)
	}
	mutate(t, s, learner, "enrollStudent", `{courseId: "gq", learnerId: "gl"}`)
	mutate(t, s, learner, "withdrawEnrollment", `{courseId: "gq", learnerId: "gl"}`)
	mutate(t, s, learner, "enrollStudent", `{courseId: "gq", learnerId: "gl"}`)
	pos = mutate(t, s, learner, "completeModule", `{learnerId: "gl", courseId: "gq", moduleId: "m1"}`)
	a = gql(t, s, learner, `query($p: Uint64) { me(minPosition: $p) { learner { name enrollments { status progress } } } }`, map[string]any{"p": pos})
	if string(a.Data["me"]) != `{"learner":{"name":"Lin Wu","enrollments":[{"status":"completed","progress":1}]}}` || len(a.Errors) > 0 {
		t.Errorf("the learner read at the completion's position: %s %+v", a.Data["me"], a.Errors)
	}
	mutate(t, s, admin, "archiveCourse", `{id: "gq"}`)

	t.Run("history as of now, for an auditor, from the log", func(t *testing.T) {
		a := gql(t, s, bearer("au", domain.Auditor), `query($at: Time!) { history(learnerId: "gl", asOf: $at, reason: "review") { learnerId enrollments { courseId status } } }`,
			map[string]any{"at": time.Now().UTC().Format(time.RFC3339Nano)})
		if string(a.Data["history"]) != `{"learnerId":"gl","enrollments":[{"courseId":"gq","status":"completed"}]}` || len(a.Errors) > 0 {
			t.Errorf("history: %s %+v", a.Data["history"], a.Errors)
		}
		a = gql(t, s, teacher, `{ history(learnerId: "gl", asOf: "2026-01-01T00:00:00Z") { learnerId } }`, nil)
		if len(a.Errors) != 1 || a.Errors[0].Extensions["code"] != "FORBIDDEN" {
			t.Errorf("an instructor's history: %+v, want FORBIDDEN as REST's 403", a.Errors)
		}
	})
	t.Run("the command side's refusals keep their codes", func(t *testing.T) {
		a := gql(t, s, learner, `mutation { createCourse(input: {title: "x", category: "cs", level: "beginner", instructorId: "gt"}) { position } }`, nil)
		if len(a.Errors) != 1 || a.Errors[0].Extensions["code"] != "FORBIDDEN" {
			t.Errorf("a learner creating a course: %+v, want FORBIDDEN", a.Errors)
		}
		a = gql(t, s, admin, `mutation { registerUser(input: {id: "Bad Id", name: "x", email: "x@example.com", role: "learner"}) { position } }`, nil)
		if len(a.Errors) != 1 || a.Errors[0].Extensions["code"] != "BAD_USER_INPUT" || a.Errors[0].Extensions["field"] != "id" {
			t.Errorf("a bad id: %+v, want BAD_USER_INPUT naming id", a.Errors)
		}
		a = gql(t, s, admin, `mutation { addModule(input: {courseId: "gq", title: "Late"}) { position } }`, nil)
		if len(a.Errors) != 1 || a.Errors[0].Extensions["code"] != "CONFLICT" {
			t.Errorf("a module added to an archived course: %+v, want CONFLICT", a.Errors)
		}
	})
	t.Run("GET runs no mutation", func(t *testing.T) {
		r := s.send(http.MethodGet, "/graphql?query="+strings.ReplaceAll(`mutation{archiveCourse(input:{id:"gq"}){position}}`, " ", ""), "", nil, "Authorization", admin)
		if r.status == http.StatusOK && !strings.Contains(string(r.body), "errors") {
			t.Errorf("GET ran a mutation: %d %s", r.status, r.body)
		}
	})
}
