package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
)

// TestNoPersonalDataInLogs runs a school day at the most verbose log level, with refused tokens
// and failed requests among it, and reads the whole log for names, emails, tokens and reasons.
func TestNoPersonalDataInLogs(t *testing.T) {
	t.Parallel()
	s := startWith(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_LOG_LEVEL": "debug"})
	secrets := []string{"Zelda Quartermaine", "zelda.q@example.org", "Yusuf Okonkwo", "yusuf.o@example.org", "Xavier Lindqvist",
		"xavier.l@example.org", "Zelda Q. Smith", "smith.z@example.org", "transcript request 7731"}
	s.ok(s.do("POST", "/v1/users", map[string]string{"id": "zelda", "name": secrets[0], "email": secrets[1], "role": "learner"}), created, 1)
	s.ok(s.do("POST", "/v1/users", map[string]string{"id": "yusuf", "name": secrets[2], "email": secrets[3], "role": "instructor"}), created, 1)
	s.ok(s.do("POST", "/v1/users", map[string]string{"id": "xavier", "name": secrets[4], "email": secrets[5], "role": "learner"}), created, 1)
	s.ok(s.do("POST", "/v1/courses", newCourseBy("go", "yusuf"), "Authorization", bearer("yusuf", domain.Instructor)), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro"), "Authorization", bearer("yusuf", domain.Instructor)), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/publish", nil, "Authorization", bearer("yusuf", domain.Instructor)), ok, 1)
	zelda := bearer("zelda", domain.Learner)
	s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("zelda"), "Authorization", zelda), created, 1)
	done := s.ok(s.do("POST", completePath("zelda", "go", "m1"), nil, "Authorization", zelda), ok, 2)
	s.ok(s.do("PATCH", "/v1/users/zelda", map[string]string{"name": secrets[6], "email": secrets[7]}), ok, 2)

	auditor := bearer("aud", domain.Auditor)
	expiredToken, err := auth.Mint([]byte(testKey), auth.Claims{Subject: "zelda", Role: domain.Learner, TTL: time.Minute, IssuedAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	forgedToken, err := auth.Mint([]byte("another-key-of-32-bytes-or-more-xyz"), auth.Claims{Subject: "zelda", Role: domain.Admin})
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{zelda, auditor, bearer(testAdmin, domain.Admin), "Bearer " + expiredToken, "Bearer " + forgedToken}
	for _, path := range []string{"/v1/learners/zelda/dashboard?minPosition=" + itoa(done.Position), "/v1/learners/zelda/history",
		"/v1/learners/zelda/history?format=xapi", "/v1/learners/zelda/disclosures", "/v1/courses/go/roster", "/v1/learners/xavier/dashboard"} {
		for _, a := range tokens {
			rawGet(t, s, path, "Authorization", a)
		}
		rawGet(t, s, path+sep(path)+"reason="+strings.ReplaceAll(secrets[8], " ", "+"), "Authorization", auditor)
	}
	// Refused commands: bad bodies naming people, another learner's enrollment, an unknown field.
	for _, body := range []string{`{"name":"` + secrets[0] + `","email":"not an email","role":"learner"}`,
		`{"name":"` + secrets[4] + `","email":"` + secrets[5] + `","role":"learner","password":"hunter2"}`} {
		s.send(http.MethodPost, "/v1/users", "application/json", []byte(body))
	}
	s.send(http.MethodPost, "/v1/courses/go/enrollments", "application/json", []byte(`{"learnerId":"xavier"}`), "Authorization", zelda)
	s.stop()

	logs := s.logs.String()
	if !strings.Contains(logs, "edutrack serving") || !strings.Contains(logs, "level=DEBUG") {
		t.Fatalf("the log holds no debug lines; the test reads nothing:\n%s", logs)
	}
	for _, a := range tokens {
		token := strings.TrimPrefix(a, "Bearer ")
		signature := token[strings.LastIndex(token, ".")+1:]
		secrets = append(secrets, token, signature)
	}
	for _, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs)
		}
	}
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

// newCourseBy is a course of instructor's.
func newCourseBy(id, instructor string) map[string]string {
	c := newCourse(id)
	c["instructorId"] = instructor
	return c
}
