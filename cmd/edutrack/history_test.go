package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
)

func TestLearnerHistory(t *testing.T) {
	srv := startHistoryServer(t, nil)
	base, client, send := srv.base, srv.client, srv.send
	send("POST", "/v1/users", `{"id":"ada","name":"Ada","email":"ada@example.com","role":"instructor"}`, "admin")
	send("POST", "/v1/users", `{"id":"bob","name":"Bob","email":"bob@example.com","role":"learner"}`, "admin")
	send("POST", "/v1/courses", `{"id":"go","title":"Go","category":"code","level":"beginner","instructorId":"ada"}`, "ada")
	send("POST", "/v1/courses/go/modules", `{"id":"m1","title":"One"}`, "ada")
	send("POST", "/v1/courses/go/publish", "", "ada")
	send("POST", "/v1/courses/go/enrollments", `{"learnerId":"bob"}`, "bob")
	send("POST", "/v1/learners/bob/courses/go/modules/m1/complete", "", "bob")

	get := func(path string) (int, page) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p page
		json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p
	}
	status, p := get("/v1/learners/bob/history?minPosition=" + itoa(srv.last))
	if status != http.StatusOK || len(p.Items) != 3 {
		t.Fatalf("history of bob = %d with %d events, want 200 with enrolled, module completed, course completed", status, len(p.Items))
	}
	wantTypes := []string{"learner.enrolled", "learner.module_completed", "learner.course_completed"}
	for i, e := range p.Items {
		if e.Type != wantTypes[i] || e.SchemaVersion != 1 || e.StreamVersion != uint64(i+1) || e.ActingUser != "bob" ||
			e.CorrelationID != "corr-bob" || e.CausationID == "" || e.Position == 0 || time.Since(e.RecordedAt) > time.Minute {
			t.Errorf("event %d = %+v", i, e)
		}
	}
	if p.Items[2].Position != srv.last {
		t.Errorf("last event at position %d, the command said %d", p.Items[2].Position, srv.last)
	}
	var data struct{ ModuleID string }
	json.Unmarshal(p.Items[1].Data, &data)
	if data.ModuleID != "m1" {
		t.Errorf("module completed data = %s", p.Items[1].Data)
	}

	status, first := get("/v1/learners/bob/history?limit=2&minPosition=" + itoa(srv.last))
	if status != http.StatusOK || len(first.Items) != 2 || first.NextCursor == "" {
		t.Fatalf("first page of 2 = %d %+v", status, first)
	}
	_, second := get("/v1/learners/bob/history?limit=2&cursor=" + first.NextCursor)
	if len(second.Items) != 1 || second.Items[0].Type != "learner.course_completed" || second.NextCursor != "" {
		t.Errorf("second page = %+v, want the course completion and no next cursor", second)
	}
	if status, _ := get("/v1/learners/nobody/history"); status != http.StatusNotFound {
		t.Errorf("history of an unknown learner: %d, want 404", status)
	}
	for _, q := range []string{"limit=0", "cursor=x", "minPosition=-1", "asof=yesterday"} {
		if status, _ := get("/v1/learners/bob/history?" + q); status != http.StatusBadRequest {
			t.Errorf("history?%s: %d, want 400", q, status)
		}
	}
}

type page struct {
	Items []struct {
		Type          string
		SchemaVersion int
		StreamVersion uint64
		Position      uint64
		RecordedAt    time.Time
		Data          json.RawMessage
		CorrelationID string
		CausationID   string
		ActingUser    string
	}
	NextCursor string
}

func itoa(u uint64) string {
	b, _ := json.Marshal(u)
	return string(b)
}

func TestLearnerStateAsOf(t *testing.T) {
	srv := startHistoryServer(t, nil)
	base, client := srv.base, srv.client
	send := func(method, path, body string) { t.Helper(); srv.send(method, path, body, "") }
	// Instants between the steps: the log's clock is the server's, so mark it from outside
	// with a pause long enough to tell the records apart.
	mark := func() time.Time {
		time.Sleep(20 * time.Millisecond)
		m := time.Now().UTC()
		time.Sleep(20 * time.Millisecond)
		return m
	}
	send("POST", "/v1/users", `{"id":"ada","name":"Ada","email":"ada@example.com","role":"instructor"}`)
	send("POST", "/v1/users", `{"id":"bob","name":"Bob","email":"bob@example.com","role":"learner"}`)
	send("POST", "/v1/courses", `{"id":"go","title":"Go","category":"code","level":"beginner","instructorId":"ada"}`)
	send("POST", "/v1/courses/go/modules", `{"id":"m1","title":"One"}`)
	send("POST", "/v1/courses/go/modules", `{"id":"m2","title":"Two"}`)
	send("POST", "/v1/courses/go/publish", "")
	beforeEnrollment := mark()
	send("POST", "/v1/courses/go/enrollments", `{"learnerId":"bob"}`)
	send("POST", "/v1/learners/bob/courses/go/modules/m1/complete", "")
	betweenCompletions := mark()
	send("POST", "/v1/courses/go/modules", `{"id":"m3","title":"Three"}`) // the course grows afterwards
	send("POST", "/v1/learners/bob/courses/go/modules/m2/complete", "")
	send("DELETE", "/v1/courses/go/enrollments/bob", "")
	afterWithdrawal := mark()

	asOf := func(at time.Time) (int, stateAsOf) {
		t.Helper()
		resp, err := client.Get(base + "/v1/learners/bob/history?minPosition=" + itoa(srv.last) + "&asOf=" + at.Format(time.RFC3339Nano))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s stateAsOf
		json.NewDecoder(resp.Body).Decode(&s)
		return resp.StatusCode, s
	}
	if status, s := asOf(beforeEnrollment); status != http.StatusOK || len(s.Enrollments) != 0 || s.Position != 0 {
		t.Errorf("before the enrollment: %d %+v, want no enrollment", status, s)
	}
	status, s := asOf(betweenCompletions)
	if status != http.StatusOK || len(s.Enrollments) != 1 {
		t.Fatalf("between the completions: %d %+v", status, s)
	}
	if e := s.Enrollments[0]; e.Status != "active" || e.ModuleCount != 2 || e.Progress != 0.5 ||
		len(e.CompletedModules) != 1 || e.CompletedModules[0] != "m1" || e.CompletedAt != nil {
		t.Errorf("between the completions, bob in go = %+v; want active, m1 of the 2 modules the course had then", e)
	}
	_, s = asOf(afterWithdrawal)
	if e := s.Enrollments[0]; e.Status != "withdrawn" || e.ModuleCount != 3 || len(e.CompletedModules) != 2 || e.Progress != 2.0/3 {
		t.Errorf("after the withdrawal, bob in go = %+v; want withdrawn with m1 and m2 of 3 modules", e)
	}
	for _, q := range []string{"asOf=yesterday", "asOf=2026-01-01T00:00:00Z&limit=3"} {
		resp, err := client.Get(base + "/v1/learners/bob/history?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("history?%s: %d, want 400", q, resp.StatusCode)
		}
	}
}

type stateAsOf struct {
	LearnerID   string
	Position    uint64
	Enrollments []struct {
		CourseID         string
		Status           string
		Progress         float64
		CompletedModules []string
		ModuleCount      int
		CompletedAt      *time.Time
	}
}

func TestLearnerHistoryAsXAPI(t *testing.T) {
	srv := startHistoryServer(t, map[string]string{"EDUTRACK_XAPI_HOMEPAGE": "https://school.example/"})
	base, client := srv.base, srv.client
	send := func(method, path, body string) { t.Helper(); srv.send(method, path, body, "") }
	send("POST", "/v1/users", `{"id":"ada","name":"Ada","email":"ada@example.com","role":"instructor"}`)
	send("POST", "/v1/users", `{"id":"bob","name":"Bob","email":"bob@example.com","role":"learner"}`)
	send("POST", "/v1/courses", `{"id":"go","title":"Go","category":"code","level":"beginner","instructorId":"ada"}`)
	send("POST", "/v1/courses/go/modules", `{"id":"m1","title":"One"}`)
	send("POST", "/v1/courses/go/modules", `{"id":"m2","title":"Two"}`)
	send("POST", "/v1/courses/go/publish", "")
	send("POST", "/v1/courses/go/enrollments", `{"learnerId":"bob"}`)
	send("POST", "/v1/learners/bob/courses/go/modules/m1/complete", "")
	send("POST", "/v1/learners/bob/courses/go/modules/m2/complete", "")

	var got struct {
		Statements []struct {
			ID    string
			Actor struct {
				ObjectType string
				Account    struct{ HomePage, Name string }
			}
			Verb struct {
				ID      string
				Display map[string]string
			}
			Object struct {
				ObjectType string
				ID         string
				Definition struct{ Type string }
			}
			Result *struct {
				Completion *bool
				Extensions map[string]int
			}
			Timestamp time.Time
		}
		More string
	}
	resp, err := client.Get(base + "/v1/learners/bob/history?format=xapi&minPosition=" + itoa(srv.last))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("xapi: %d", resp.StatusCode)
	}
	type row struct{ verb, object string }
	want := []row{
		{"registered", "https://school.example/courses/go"},
		{"completed", "https://school.example/courses/go/modules/m1"},
		{"progressed", "https://school.example/courses/go"},
		{"completed", "https://school.example/courses/go/modules/m2"},
		{"progressed", "https://school.example/courses/go"},
		{"completed", "https://school.example/courses/go"},
	}
	if len(got.Statements) != len(want) {
		t.Fatalf("%d statements, want %d: %+v", len(got.Statements), len(want), got.Statements)
	}
	ids := map[string]bool{}
	progress := []int{}
	for i, s := range got.Statements {
		if s.Verb.Display["en-US"] != want[i].verb || s.Object.ID != want[i].object || s.Object.ObjectType != "Activity" {
			t.Errorf("statement %d = %s %s, want %s %s", i, s.Verb.Display["en-US"], s.Object.ID, want[i].verb, want[i].object)
		}
		if !strings.HasPrefix(s.Verb.ID, "http://adlnet.gov/expapi/verbs/") {
			t.Errorf("statement %d verb %q is not an ADL verb", i, s.Verb.ID)
		}
		if s.Actor.ObjectType != "Agent" || s.Actor.Account.HomePage != "https://school.example" || s.Actor.Account.Name != "bob" {
			t.Errorf("statement %d actor = %+v", i, s.Actor)
		}
		if ids[s.ID] || len(s.ID) != 36 {
			t.Errorf("statement %d id %q is not a fresh UUID", i, s.ID)
		}
		ids[s.ID] = true
		if s.Timestamp.IsZero() {
			t.Errorf("statement %d has no timestamp", i)
		}
		if want[i].verb == "progressed" {
			progress = append(progress, s.Result.Extensions["https://w3id.org/xapi/cmi5/result/extensions/progress"])
		} else if want[i].verb == "completed" && (s.Result == nil || s.Result.Completion == nil || !*s.Result.Completion) {
			t.Errorf("statement %d (completed) has no completion result", i)
		}
	}
	if len(progress) != 2 || progress[0] != 50 || progress[1] != 100 {
		t.Errorf("progress = %v, want 50 then 100", progress)
	}
	resp, err = client.Get(base + "/v1/learners/bob/history?format=xapi&limit=2")
	if err != nil {
		t.Fatal(err)
	}
	got.More, got.Statements = "", nil
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got.More == "" || !strings.Contains(got.More, "cursor=") {
		t.Errorf("a page of 2 has no 'more' link: %+v", got.More)
	}
	if len(got.Statements) != 2 {
		t.Errorf("a page of 2 has %d statements", len(got.Statements))
	}
	resp, err = client.Get(base + "/v1/learners/bob/history?format=csv")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("format=csv: %d, want 400", resp.StatusCode)
	}
}

// xapiStatement is what TestLearnerHistoryAsXAPIAcrossAWithdrawal reads of a statement.
type xapiStatement struct {
	ID   string
	Verb struct {
		ID      string
		Display map[string]string
	}
	Object  xapiActivity
	Context struct {
		Registration      string
		ContextActivities struct{ Parent []xapiActivity }
	}
	Timestamp time.Time
}

type xapiActivity struct {
	ID         string
	Definition struct {
		Name map[string]string
		Type string
	}
}

func TestLearnerHistoryAsXAPIAcrossAWithdrawal(t *testing.T) {
	srv := startHistoryServer(t, map[string]string{"EDUTRACK_XAPI_HOMEPAGE": "https://school.example"})
	send := func(method, path, body string) { t.Helper(); srv.send(method, path, body, "") }
	send("POST", "/v1/users", `{"id":"ada","name":"Ada","email":"ada@example.com","role":"instructor"}`)
	send("POST", "/v1/users", `{"id":"bob","name":"Bob","email":"bob@example.com","role":"learner"}`)
	send("POST", "/v1/courses", `{"id":"go","title":"Go","category":"code","level":"beginner","instructorId":"ada"}`)
	send("POST", "/v1/courses/go/modules", `{"id":"m1","title":"One"}`)
	send("POST", "/v1/courses/go/modules", `{"id":"m2","title":"Two"}`)
	send("POST", "/v1/courses/go/publish", "")
	before := time.Now()
	send("POST", "/v1/courses/go/enrollments", `{"learnerId":"bob"}`)
	send("POST", "/v1/learners/bob/courses/go/modules/m1/complete", "")
	send("DELETE", "/v1/courses/go/enrollments/bob", "")
	send("PATCH", "/v1/courses/go", `{"title":"Go, again"}`)
	send("POST", "/v1/courses/go/enrollments", `{"learnerId":"bob"}`)
	send("POST", "/v1/learners/bob/courses/go/modules/m2/complete", "")
	after := time.Now()

	// Read page by page, two statements at a time, as an LRS importer would.
	var got []xapiStatement
	for path := "/v1/learners/bob/history?format=xapi&limit=2&minPosition=" + itoa(srv.last); path != ""; {
		resp, err := srv.client.Get(srv.base + path)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Statements []xapiStatement
			More       string
		}
		json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(page.Statements) > 2 || len(got) > 20 {
			t.Fatalf("GET %s: %d with %d statements", path, resp.StatusCode, len(page.Statements))
		}
		got = append(got, page.Statements...)
		path = page.More
	}
	const course = "https://school.example/courses/go"
	type row struct{ Verb, Object, Name, Parent string }
	want := []row{
		{"registered", course, "Go", ""},
		{"completed", course + "/modules/m1", "One", "Go"},
		{"progressed", course, "Go", ""},
		{"unregistered", course, "Go", ""},
		{"registered", course, "Go, again", ""},
		{"completed", course + "/modules/m2", "Two", "Go, again"},
		{"progressed", course, "Go, again", ""},
		{"completed", course, "Go, again", ""},
	}
	var rows []row
	ids := map[string]bool{}
	for i, s := range got {
		r := row{Verb: s.Verb.Display["en-US"], Object: s.Object.ID, Name: s.Object.Definition.Name["und"]}
		if p := s.Context.ContextActivities.Parent; len(p) == 1 && p[0].ID == course {
			r.Parent = p[0].Definition.Name["und"]
		}
		rows = append(rows, r)
		if s.Context.Registration == "" || s.Context.Registration != got[0].Context.Registration {
			t.Errorf("statement %d is in registration %q, the enrollment began in %q", i, s.Context.Registration, got[0].Context.Registration)
		}
		if ids[s.ID] || len(s.ID) != 36 {
			t.Errorf("statement %d id %q is not a fresh UUID", i, s.ID)
		}
		ids[s.ID] = true
		if s.Timestamp.Before(before) || s.Timestamp.After(after) {
			t.Errorf("statement %d happened at %v, not while the test sent its commands", i, s.Timestamp)
		}
	}
	if !slices.Equal(rows, want) {
		t.Errorf("statements:\n got %+v\nwant %+v", rows, want)
	}
	if len(got) > 3 && got[3].Verb.ID != "http://id.tincanapi.com/verb/unregistered" {
		t.Errorf("the withdrawal's verb is %s", got[3].Verb.ID)
	}
}

// historyServer is the real program on a free port with its own data, and a client that sends
// commands to it and remembers the position of the last one.
type historyServer struct {
	t      *testing.T
	base   string
	client *http.Client
	last   uint64
}

func startHistoryServer(t *testing.T, extraEnv map[string]string) *historyServer {
	t.Helper()
	env := testEnv(t.TempDir())
	env["EDUTRACK_LOG_LEVEL"] = "error"
	for k, v := range extraEnv {
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard, func(a string) { addr <- a })
	}()
	s := &historyServer{t: t, base: "http://" + <-addr, client: &http.Client{Transport: callerTransport{http.DefaultTransport}}}
	t.Cleanup(func() {
		s.client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s
}

// historyRoles are the roles of the users the history tests send commands as.
var historyRoles = map[string]domain.Role{"admin": domain.Admin, "ada": domain.Instructor, "bob": domain.Learner}

// send runs a command; a non-empty user (of historyRoles) sends it, with a correlation id.
func (s *historyServer) send(method, path, body, user string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("Authorization", bearer(user, historyRoles[user]))
		req.Header.Set("X-Correlation-Id", "corr-"+user)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct{ Position uint64 }
	json.NewDecoder(resp.Body).Decode(&res)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
	s.last = res.Position
}
