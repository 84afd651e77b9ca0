package writeapi_test

import (
	"testing"
)

// A 201 says where what it created is; a 200 for a create that created nothing does not.
func TestCreatedAnswersCarryLocation(t *testing.T) {
	s := newServer(t)
	for _, step := range []struct {
		method, path, body string
		status             int
		location           string
	}{
		{"POST", "/v1/users", `{"id":"ins","name":"Ins","email":"ins@example.com","role":"instructor"}`, 201, "/v1/users/ins"},
		{"POST", "/v1/users", `{"id":"ada","name":"Ada","email":"ada@example.com","role":"learner"}`, 201, "/v1/users/ada"},
		{"POST", "/v1/courses", `{"id":"go","title":"Go","category":"programming","level":"beginner","instructorId":"ins"}`, 201, "/v1/courses/go"},
		{"POST", "/v1/courses/go/modules", `{"id":"m1","title":"Intro"}`, 201, "/v1/courses/go"},
		{"POST", "/v1/courses/go/publish", ``, 200, ""},
		{"POST", "/v1/courses/go/enrollments", `{"learnerId":"ada"}`, 201, "/v1/courses/go/enrollments/ada"},
		{"POST", "/v1/courses/go/enrollments", `{"learnerId":"ada"}`, 200, ""},
	} {
		w := s.send(step.method, step.path, step.body, "")
		if w.Code != step.status || w.Header().Get("Location") != step.location {
			t.Errorf("%s %s: %d with Location %q, want %d with %q", step.method, step.path, w.Code, w.Header().Get("Location"), step.status, step.location)
		}
	}
}
