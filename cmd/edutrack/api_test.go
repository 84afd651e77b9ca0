package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/eventstore"
)

const (
	created = http.StatusCreated
	ok      = http.StatusOK
)

func user(id, name, role string) map[string]string {
	u := map[string]string{"name": name, "email": strings.ToLower(strings.ReplaceAll(name, " ", ".")) + "@example.com", "role": role}
	if id != "" {
		u["id"] = id
	}
	return u
}

func newCourse(id string) map[string]string {
	c := map[string]string{"title": "Go", "description": "Learn Go.", "category": "programming", "level": "beginner", "instructorId": "ins"}
	if id != "" {
		c["id"] = id
	}
	return c
}

func module(id, title string) map[string]string {
	m := map[string]string{"title": title}
	if id != "" {
		m["id"] = id
	}
	return m
}

func enrollment(learnerID string) map[string]string { return map[string]string{"learnerId": learnerID} }

func completePath(learnerID, courseID, moduleID string) string {
	return "/v1/learners/" + learnerID + "/courses/" + courseID + "/modules/" + moduleID + "/complete"
}

// stored is what the test expects of one event in the log.
type stored struct {
	Stream  string
	Version uint64
	Type    string
}

func TestWriteAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, dir, &logTracker{})
	var want []stored
	appended := func(stream string, version uint64, types ...string) {
		for i, typ := range types {
			want = append(want, stored{stream, version - uint64(len(types)-1-i), typ})
		}
	}
	check := func(res result, id string, version uint64) {
		t.Helper()
		if res.ID != id || res.Version != version {
			t.Errorf("answer %+v, want id %q at version %d", res, id, version)
		}
	}

	var insRequestID string
	t.Run("registers_users", func(t *testing.T) {
		registered := s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor"))
		if insRequestID = registered.requestID; insRequestID == "" {
			t.Error("the answer names no X-Request-Id")
		}
		check(s.ok(registered, created, 1), "ins", 1)
		appended("user-ins", 1, "user.registered.v1")
		ada := s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner"),
			"Authorization", bearer("admin-1", domain.Admin), "X-Request-Id", "req-1", "X-Correlation-Id", "corr-1"), created, 1)
		check(ada, "ada", 1)
		appended("user-ada", 1, "user.registered.v1")

		gen := s.ok(s.do("POST", "/v1/users", user("", "Alan Turing", "learner")), created, 1)
		if !idPattern.MatchString(gen.ID) {
			t.Errorf("generated user id %q does not match %s", gen.ID, idPattern)
		}
		check(gen, gen.ID, 1)
		appended("user-"+gen.ID, 1, "user.registered.v1")
	})

	t.Run("updates_a_user", func(t *testing.T) {
		check(s.ok(s.do("PATCH", "/v1/users/ada", map[string]string{"name": "Ada King"}, "X-Request-Id", "req-2"), ok, 1), "ada", 2)
		appended("user-ada", 2, "user.name_changed.v1")
		check(s.ok(s.do("PATCH", "/v1/users/ada", map[string]string{"name": "Ada King"}), ok, 0), "ada", 2)
	})

	var generatedModule string
	t.Run("creates_and_builds_a_course", func(t *testing.T) {
		// A charset parameter is still JSON.
		r := s.send("POST", "/v1/courses", "application/json; charset=utf-8",
			[]byte(`{"id":"go","title":"Go","category":"programming","level":"beginner","instructorId":"ins"}`))
		check(s.ok(r, created, 1), "go", 1)
		appended("course-go", 1, "course.created.v1")

		gen := s.ok(s.do("POST", "/v1/courses", newCourse("")), created, 1)
		if !idPattern.MatchString(gen.ID) {
			t.Errorf("generated course id %q does not match %s", gen.ID, idPattern)
		}
		appended("course-"+gen.ID, 1, "course.created.v1")

		check(s.ok(s.do("PATCH", "/v1/courses/go", map[string]string{"title": "Go 2", "level": "advanced"}), ok, 1), "go", 2)
		appended("course-go", 2, "course.details_updated.v1")
		check(s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1), "m1", 3)
		appended("course-go", 3, "course.module_added.v1")
		m2 := s.ok(s.do("POST", "/v1/courses/go/modules", module("", "Types")), created, 1)
		if !idPattern.MatchString(m2.ID) {
			t.Errorf("generated module id %q does not match %s", m2.ID, idPattern)
		}
		check(m2, m2.ID, 4)
		generatedModule = m2.ID
		appended("course-go", 4, "course.module_added.v1")
		// The same module again is a no-op: 200, the course's current version and position.
		again := s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), ok, 0)
		if again.ID != "m1" || again.Version != 4 || again.Position != m2.Position {
			t.Errorf("re-adding m1 answered %+v, want m1 at version 4, position %d", again, m2.Position)
		}
	})

	t.Run("publishes_the_course", func(t *testing.T) {
		pub := s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
		check(pub, "go", 5)
		appended("course-go", 5, "course.published.v1")
		if again := s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 0); again != pub {
			t.Errorf("publishing again answered %+v, want %+v", again, pub)
		}
	})

	t.Run("enrolls_completes_withdraws_and_resumes", func(t *testing.T) {
		first := s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)
		check(first, "ada", 1)
		appended("learner-ada", 1, "learner.enrolled.v1")
		if again := s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), ok, 0); again != first {
			t.Errorf("enrolling again answered %+v, want the no-op %+v", again, first)
		}

		done := s.ok(s.do("POST", completePath("ada", "go", "m1"), nil), ok, 1)
		check(done, "ada", 2)
		if done.CourseCompleted == nil || *done.CourseCompleted {
			t.Errorf("completing m1 of two: courseCompleted %v, want false", done.CourseCompleted)
		}
		appended("learner-ada", 2, "learner.module_completed.v1")
		if again := s.ok(s.do("POST", completePath("ada", "go", "m1"), nil), ok, 0); !cmp.Equal(again, done) {
			t.Errorf("completing m1 again answered %+v, want the no-op %+v", again, done)
		}

		check(s.ok(s.do("DELETE", "/v1/courses/go/enrollments/ada", nil), ok, 1), "ada", 3)
		appended("learner-ada", 3, "learner.withdrawn.v1")
		check(s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1), "ada", 4)
		appended("learner-ada", 4, "learner.enrolled.v1")

		last := s.ok(s.do("POST", completePath("ada", "go", generatedModule), nil), ok, 2)
		check(last, "ada", 6)
		if last.CourseCompleted == nil || !*last.CourseCompleted {
			t.Errorf("completing the last module: courseCompleted %v, want true", last.CourseCompleted)
		}
		appended("learner-ada", 6, "learner.module_completed.v1", "learner.course_completed.v1")
	})

	t.Run("archives_the_course", func(t *testing.T) {
		arch := s.ok(s.do("POST", "/v1/courses/go/archive", nil), ok, 1)
		check(arch, "go", 6)
		appended("course-go", 6, "course.archived.v1")
		if again := s.ok(s.do("POST", "/v1/courses/go/archive", nil), ok, 0); again != arch {
			t.Errorf("archiving again answered %+v, want %+v", again, arch)
		}
	})

	t.Run("stored_exactly_those_events_with_their_metadata", func(t *testing.T) {
		s.stop()
		all, _ := readLog(t, dir)
		var got []stored
		for i, e := range all {
			got = append(got, stored{e.StreamID, e.Version, e.Type})
			if e.Position != uint64(i+1) {
				t.Errorf("event %d at position %d", i, e.Position)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("log (-want +got):\n%s", diff)
		}
		meta := func(stream string, version uint64) eventstore.Metadata {
			for _, e := range all {
				if e.StreamID == stream && e.Version == version {
					return e.Metadata
				}
			}
			t.Fatalf("no event %s v%d", stream, version)
			return eventstore.Metadata{}
		}
		// The headers travel into the metadata; without them, the request id is the one the
		// server made and answered, and the correlation id the request id. The acting user is the
		// token's subject.
		ada := meta("user-ada", 1)
		if ada.CausationID == "" || ada.UserID != "admin-1" || ada.RequestID != "req-1" || ada.CorrelationID != "corr-1" {
			t.Errorf("user-ada v1 metadata %+v, want user admin-1, request req-1, correlation corr-1 and a causation id", ada)
		}
		renamed := meta("user-ada", 2)
		if renamed.RequestID != "req-2" || renamed.CorrelationID != "req-2" || renamed.UserID != testAdmin || renamed.CausationID == "" {
			t.Errorf("user-ada v2 metadata %+v, want request and correlation req-2, user %s", renamed, testAdmin)
		}
		// Without X-Request-Id the server makes one, answers it, and records it.
		ins := meta("user-ins", 1)
		if ins.CausationID == "" || ins.RequestID != insRequestID || ins.CorrelationID != insRequestID || ins.UserID != testAdmin {
			t.Errorf("user-ins v1 metadata %+v, want request and correlation ids %q (the answer's X-Request-Id), user %s", ins, insRequestID, testAdmin)
		}
		if ada.CausationID == ins.CausationID {
			t.Errorf("two commands share causation id %s", ada.CausationID)
		}
		// One command's events share its causation id.
		if m, c := meta("learner-ada", 5), meta("learner-ada", 6); m != c {
			t.Errorf("ModuleCompleted %+v and CourseCompleted %+v of one command differ in metadata", m, c)
		}
	})
}

// badRequest is one request the API must refuse, appending nothing.
type badRequest struct {
	name        string
	method      string
	path        string
	contentType string // "application/json" unless set; "-" sends none
	body        string
	status      int
	field       string
}

func TestWriteAPIRejects(t *testing.T) {
	t.Parallel()
	s := start(t, t.TempDir(), &logTracker{})
	// ins teaches; ada is enrolled in go, bob is not, done completed go (before old was archived).
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	for _, id := range []string{"ada", "bob", "done", "probe"} {
		s.ok(s.do("POST", "/v1/users", user(id, "Learner "+id, "learner")), created, 1)
	}
	for _, c := range []string{"go", "old", "draft"} {
		s.ok(s.do("POST", "/v1/courses", newCourse(c)), created, 1)
	}
	for _, c := range []string{"go", "old"} {
		s.ok(s.do("POST", "/v1/courses/"+c+"/modules", module("m1", "Intro")), created, 1)
		s.ok(s.do("POST", "/v1/courses/"+c+"/modules", module("m2", "Types")), created, 1)
		s.ok(s.do("POST", "/v1/courses/"+c+"/publish", nil), ok, 1)
	}
	s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("done")), created, 1)
	s.ok(s.do("POST", completePath("done", "go", "m1"), nil), ok, 1)
	s.ok(s.do("POST", completePath("done", "go", "m2"), nil), ok, 2)
	s.ok(s.do("POST", "/v1/courses/old/archive", nil), ok, 1)

	long := func(n int) string { return strings.Repeat("x", n) }
	tooBig := `{"name":"` + long(MaxBody) + `"}`
	cases := []badRequest{
		// POST /v1/users
		{name: "register: malformed JSON", method: "POST", path: "/v1/users", body: `{"name":`, status: 400},
		{name: "register: not JSON at all", method: "POST", path: "/v1/users", body: `name=ada`, status: 400},
		{name: "register: empty body", method: "POST", path: "/v1/users", body: ``, status: 400},
		{name: "register: two JSON values", method: "POST", path: "/v1/users", body: `{"name":"A","email":"a@example.com","role":"learner"} {}`, status: 400},
		{name: "register: unknown field", method: "POST", path: "/v1/users", body: `{"name":"A","email":"a@example.com","role":"learner","nickname":"a"}`, status: 400, field: "nickname"},
		{name: "register: wrong JSON type", method: "POST", path: "/v1/users", body: `{"name":5,"email":"a@example.com","role":"learner"}`, status: 400, field: "name"},
		{name: "register: missing name", method: "POST", path: "/v1/users", body: `{"email":"a@example.com","role":"learner"}`, status: 400, field: "name"},
		{name: "register: missing email", method: "POST", path: "/v1/users", body: `{"name":"A","role":"learner"}`, status: 400, field: "email"},
		{name: "register: missing role", method: "POST", path: "/v1/users", body: `{"name":"A","email":"a@example.com"}`, status: 400, field: "role"},
		{name: "register: bad email", method: "POST", path: "/v1/users", body: `{"name":"A","email":"not-an-email","role":"learner"}`, status: 400, field: "email"},
		{name: "register: name too long", method: "POST", path: "/v1/users", body: `{"name":"` + long(201) + `","email":"a@example.com","role":"learner"}`, status: 400, field: "name"},
		{name: "register: empty name", method: "POST", path: "/v1/users", body: `{"name":" ","email":"a@example.com","role":"learner"}`, status: 400, field: "name"},
		{name: "register: bad role", method: "POST", path: "/v1/users", body: `{"name":"A","email":"a@example.com","role":"admin"}`, status: 400, field: "role"},
		{name: "register: bad id", method: "POST", path: "/v1/users", body: `{"id":"Ada!","name":"A","email":"a@example.com","role":"learner"}`, status: 400, field: "id"},
		{name: "register: id over 64 characters", method: "POST", path: "/v1/users", body: `{"id":"` + strings.Repeat("a", 65) + `","name":"A","email":"a@example.com","role":"learner"}`, status: 400, field: "id"},
		{name: "register: already registered", method: "POST", path: "/v1/users", body: `{"id":"ada","name":"A","email":"a@example.com","role":"learner"}`, status: 409},
		{name: "register: body over 1 MiB", method: "POST", path: "/v1/users", body: tooBig, status: 413},
		{name: "register: text/plain", method: "POST", path: "/v1/users", contentType: "text/plain", body: `{"name":"A","email":"a@example.com","role":"learner"}`, status: 415},
		{name: "register: no Content-Type", method: "POST", path: "/v1/users", contentType: "-", body: `{"name":"A","email":"a@example.com","role":"learner"}`, status: 415},

		// PATCH /v1/users/{id}
		{name: "update user: malformed JSON", method: "PATCH", path: "/v1/users/ada", body: `{"name"}`, status: 400},
		{name: "update user: unknown field", method: "PATCH", path: "/v1/users/ada", body: `{"role":"instructor"}`, status: 400, field: "role"},
		{name: "update user: bad email", method: "PATCH", path: "/v1/users/ada", body: `{"email":"ada at example.com"}`, status: 400, field: "email"},
		{name: "update user: valid name with a bad email", method: "PATCH", path: "/v1/users/ada", body: `{"name":"Ada King","email":"bad"}`, status: 400, field: "email"},
		{name: "update user: empty name", method: "PATCH", path: "/v1/users/ada", body: `{"name":""}`, status: 400, field: "name"},
		{name: "update user: name too long", method: "PATCH", path: "/v1/users/ada", body: `{"name":"` + long(201) + `"}`, status: 400, field: "name"},
		{name: "update user: unknown user", method: "PATCH", path: "/v1/users/nobody", body: `{"name":"X"}`, status: 404},
		{name: "update user: bad id in the path", method: "PATCH", path: "/v1/users/Ada", body: `{"name":"X"}`, status: 404, field: "id"},
		{name: "update user: body over 1 MiB", method: "PATCH", path: "/v1/users/ada", body: tooBig, status: 413},
		{name: "update user: text/plain", method: "PATCH", path: "/v1/users/ada", contentType: "text/plain", body: `{"name":"X"}`, status: 415},

		// POST /v1/courses
		{name: "create course: malformed JSON", method: "POST", path: "/v1/courses", body: `{"title":"Go",}`, status: 400},
		{name: "create course: unknown field", method: "POST", path: "/v1/courses", body: `{"title":"Go","category":"p","level":"beginner","instructorId":"ins","price":5}`, status: 400, field: "price"},
		{name: "create course: missing title", method: "POST", path: "/v1/courses", body: `{"category":"p","level":"beginner","instructorId":"ins"}`, status: 400, field: "title"},
		{name: "create course: missing category", method: "POST", path: "/v1/courses", body: `{"title":"Go","level":"beginner","instructorId":"ins"}`, status: 400, field: "category"},
		{name: "create course: missing level", method: "POST", path: "/v1/courses", body: `{"title":"Go","category":"p","instructorId":"ins"}`, status: 400, field: "level"},
		{name: "create course: missing instructor", method: "POST", path: "/v1/courses", body: `{"title":"Go","category":"p","level":"beginner"}`, status: 400, field: "instructorId"},
		{name: "create course: title too long", method: "POST", path: "/v1/courses", body: `{"title":"` + long(201) + `","category":"p","level":"beginner","instructorId":"ins"}`, status: 400, field: "title"},
		{name: "create course: description too long", method: "POST", path: "/v1/courses", body: `{"title":"Go","description":"` + long(10_001) + `","category":"p","level":"beginner","instructorId":"ins"}`, status: 400, field: "description"},
		{name: "create course: bad level", method: "POST", path: "/v1/courses", body: `{"title":"Go","category":"p","level":"expert","instructorId":"ins"}`, status: 400, field: "level"},
		{name: "create course: bad id", method: "POST", path: "/v1/courses", body: `{"id":"Go","title":"Go","category":"p","level":"beginner","instructorId":"ins"}`, status: 400, field: "id"},
		{name: "create course: unknown instructor", method: "POST", path: "/v1/courses", body: `{"title":"Go","category":"p","level":"beginner","instructorId":"nobody"}`, status: 404, field: "instructorId"},
		{name: "create course: instructor id that cannot exist", method: "POST", path: "/v1/courses", body: `{"title":"Go","category":"p","level":"beginner","instructorId":"Ins"}`, status: 404, field: "instructorId"},
		{name: "create course: a learner as instructor", method: "POST", path: "/v1/courses", body: `{"title":"Go","category":"p","level":"beginner","instructorId":"ada"}`, status: 409, field: "instructorId"},
		{name: "create course: existing course", method: "POST", path: "/v1/courses", body: `{"id":"go","title":"Go","category":"p","level":"beginner","instructorId":"ins"}`, status: 409},
		{name: "create course: body over 1 MiB", method: "POST", path: "/v1/courses", body: `{"description":"` + long(MaxBody) + `"}`, status: 413},
		{name: "create course: text/plain", method: "POST", path: "/v1/courses", contentType: "text/plain", body: `{}`, status: 415},

		// PATCH /v1/courses/{id}
		{name: "update course: malformed JSON", method: "PATCH", path: "/v1/courses/go", body: `[`, status: 400},
		{name: "update course: unknown field", method: "PATCH", path: "/v1/courses/go", body: `{"instructorId":"bob"}`, status: 400, field: "instructorId"},
		{name: "update course: title too long", method: "PATCH", path: "/v1/courses/go", body: `{"title":"` + long(201) + `"}`, status: 400, field: "title"},
		{name: "update course: empty title", method: "PATCH", path: "/v1/courses/go", body: `{"title":""}`, status: 400, field: "title"},
		{name: "update course: bad level", method: "PATCH", path: "/v1/courses/go", body: `{"level":"expert"}`, status: 400, field: "level"},
		{name: "update course: unknown course", method: "PATCH", path: "/v1/courses/rust", body: `{"title":"Rust"}`, status: 404},
		{name: "update course: bad id in the path", method: "PATCH", path: "/v1/courses/Go", body: `{"title":"Rust"}`, status: 404, field: "id"},
		{name: "update course: archived course", method: "PATCH", path: "/v1/courses/old", body: `{"title":"Older"}`, status: 409},
		{name: "update course: body over 1 MiB", method: "PATCH", path: "/v1/courses/go", body: `{"description":"` + long(MaxBody) + `"}`, status: 413},
		{name: "update course: text/plain", method: "PATCH", path: "/v1/courses/go", contentType: "text/plain", body: `{"title":"Rust"}`, status: 415},

		// POST /v1/courses/{id}/modules
		{name: "add module: malformed JSON", method: "POST", path: "/v1/courses/go/modules", body: `{"title":`, status: 400},
		{name: "add module: unknown field", method: "POST", path: "/v1/courses/go/modules", body: `{"title":"T","order":1}`, status: 400, field: "order"},
		{name: "add module: missing title", method: "POST", path: "/v1/courses/go/modules", body: `{"id":"m3"}`, status: 400, field: "title"},
		{name: "add module: title too long", method: "POST", path: "/v1/courses/go/modules", body: `{"id":"m3","title":"` + long(201) + `"}`, status: 400, field: "title"},
		{name: "add module: bad id", method: "POST", path: "/v1/courses/go/modules", body: `{"id":"M3","title":"T"}`, status: 400, field: "id"},
		{name: "add module: id taken by another title", method: "POST", path: "/v1/courses/go/modules", body: `{"id":"m1","title":"Other"}`, status: 409, field: "id"},
		{name: "add module: unknown course", method: "POST", path: "/v1/courses/rust/modules", body: `{"id":"m1","title":"T"}`, status: 404},
		{name: "add module: bad course id in the path", method: "POST", path: "/v1/courses/Rust/modules", body: `{"id":"m1","title":"T"}`, status: 404, field: "id"},
		{name: "add module: archived course", method: "POST", path: "/v1/courses/old/modules", body: `{"id":"m3","title":"T"}`, status: 409},
		{name: "add module: body over 1 MiB", method: "POST", path: "/v1/courses/go/modules", body: `{"title":"` + long(MaxBody) + `"}`, status: 413},
		{name: "add module: text/plain", method: "POST", path: "/v1/courses/go/modules", contentType: "text/plain", body: `{"title":"T"}`, status: 415},

		// POST /v1/courses/{id}/publish and /archive
		{name: "publish: unknown course", method: "POST", path: "/v1/courses/rust/publish", status: 404},
		{name: "publish: bad id in the path", method: "POST", path: "/v1/courses/RUST/publish", status: 404, field: "id"},
		{name: "publish: course without modules", method: "POST", path: "/v1/courses/draft/publish", status: 409},
		{name: "publish: archived course", method: "POST", path: "/v1/courses/old/publish", status: 409},
		{name: "archive: unknown course", method: "POST", path: "/v1/courses/rust/archive", status: 404},
		{name: "archive: a draft", method: "POST", path: "/v1/courses/draft/archive", status: 409},

		// POST /v1/courses/{id}/enrollments
		{name: "enroll: malformed JSON", method: "POST", path: "/v1/courses/go/enrollments", body: `{"learnerId":"bob"`, status: 400},
		{name: "enroll: unknown field", method: "POST", path: "/v1/courses/go/enrollments", body: `{"learnerId":"bob","courseId":"go"}`, status: 400, field: "courseId"},
		{name: "enroll: missing learner", method: "POST", path: "/v1/courses/go/enrollments", body: `{}`, status: 400, field: "learnerId"},
		{name: "enroll: learner id that cannot exist", method: "POST", path: "/v1/courses/go/enrollments", body: `{"learnerId":"Bob"}`, status: 404, field: "learnerId"},
		{name: "enroll: unknown learner", method: "POST", path: "/v1/courses/go/enrollments", body: `{"learnerId":"nobody"}`, status: 404, field: "learnerId"},
		{name: "enroll: an instructor", method: "POST", path: "/v1/courses/go/enrollments", body: `{"learnerId":"ins"}`, status: 409, field: "learnerId"},
		{name: "enroll: unknown course", method: "POST", path: "/v1/courses/rust/enrollments", body: `{"learnerId":"bob"}`, status: 404, field: "courseId"},
		{name: "enroll: draft course", method: "POST", path: "/v1/courses/draft/enrollments", body: `{"learnerId":"bob"}`, status: 409},
		{name: "enroll: archived course", method: "POST", path: "/v1/courses/old/enrollments", body: `{"learnerId":"bob"}`, status: 409},
		{name: "enroll: body over 1 MiB", method: "POST", path: "/v1/courses/go/enrollments", body: `{"learnerId":"` + long(MaxBody) + `"}`, status: 413},
		{name: "enroll: text/plain", method: "POST", path: "/v1/courses/go/enrollments", contentType: "text/plain", body: `{"learnerId":"bob"}`, status: 415},

		// DELETE /v1/courses/{id}/enrollments/{learnerId}
		{name: "withdraw: unknown course", method: "DELETE", path: "/v1/courses/rust/enrollments/ada", status: 404, field: "courseId"},
		{name: "withdraw: unknown learner", method: "DELETE", path: "/v1/courses/go/enrollments/nobody", status: 404, field: "learnerId"},
		{name: "withdraw: learner id that cannot exist", method: "DELETE", path: "/v1/courses/go/enrollments/Ada", status: 404, field: "learnerId"},
		{name: "withdraw: not enrolled", method: "DELETE", path: "/v1/courses/go/enrollments/bob", status: 409},
		{name: "withdraw: completed course", method: "DELETE", path: "/v1/courses/go/enrollments/done", status: 409},

		// POST /v1/learners/{learnerId}/courses/{courseId}/modules/{moduleId}/complete
		{name: "complete: unknown learner", method: "POST", path: completePath("nobody", "go", "m1"), status: 404, field: "learnerId"},
		{name: "complete: an instructor", method: "POST", path: completePath("ins", "go", "m1"), status: 404, field: "learnerId"},
		{name: "complete: unknown course", method: "POST", path: completePath("ada", "rust", "m1"), status: 404, field: "courseId"},
		{name: "complete: unknown module", method: "POST", path: completePath("ada", "go", "m9"), status: 404, field: "moduleId"},
		{name: "complete: learner id that cannot exist", method: "POST", path: completePath("Ada", "go", "m1"), status: 404, field: "learnerId"},
		{name: "complete: course id that cannot exist", method: "POST", path: completePath("ada", "Go", "m1"), status: 404, field: "courseId"},
		{name: "complete: module id that cannot exist", method: "POST", path: completePath("ada", "go", strings.Repeat("m", 65)), status: 404, field: "moduleId"},
		{name: "complete: not enrolled", method: "POST", path: completePath("bob", "go", "m1"), status: 409},
	}
	for _, tc := range cases {
		t.Run(strings.NewReplacer(" ", "_", ":", "").Replace(tc.name), func(t *testing.T) {
			s.t = t
			ct := tc.contentType
			switch {
			case ct == "-":
				ct = ""
			case ct == "":
				ct = "application/json"
			}
			s.problemDetails(s.send(tc.method, tc.path, ct, []byte(tc.body)), tc.status, tc.field)
			s.probe()
		})
	}

	t.Run("accepts_a_body_of_exactly_1_MiB", func(t *testing.T) {
		s.t = t
		body := `{"name":"Exactly one MiB"}`
		body += strings.Repeat(" ", MaxBody-len(body))
		s.ok(s.send("PATCH", "/v1/users/bob", "application/json", []byte(body)), ok, 1)
		s.probe()
	})
}

// MaxBody is the API's body limit, 1 MiB.
const MaxBody = 1 << 20

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, dir, &logTracker{})
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("probe", "Probe", "learner")), created, 1)

	var first result
	t.Run("creates_one_course_for_two_posts_with_the_same_key", func(t *testing.T) {
		s.t = t
		first = s.ok(s.do("POST", "/v1/courses", newCourse(""), "Idempotency-Key", "k1"), created, 1)
		if !idPattern.MatchString(first.ID) {
			t.Errorf("generated id %q does not match %s", first.ID, idPattern)
		}
		again := s.ok(s.do("POST", "/v1/courses", newCourse(""), "Idempotency-Key", "k1"), created, 0)
		if again != first {
			t.Errorf("second POST answered %+v, want the first answer %+v", again, first)
		}
		s.probe()
	})

	t.Run("takes_the_same_key_from_another_user_as_another_command", func(t *testing.T) {
		s.t = t
		other := s.ok(s.do("POST", "/v1/courses", newCourse(""), "Idempotency-Key", "k1", "Authorization", bearer("someone-else", domain.Admin)), created, 1)
		if other.ID == first.ID {
			t.Errorf("another user's key k1 named the same course %s", other.ID)
		}
	})

	// The key names one request: reused on another route or with another body, it is refused
	// (422, as the IETF draft on the header says) rather than answered with a false success.
	t.Run("refuses_the_same_key_on_another_route_or_with_another_body", func(t *testing.T) {
		s.t = t
		s.problemDetails(s.do("POST", "/v1/users", user("", "Key User", "learner"), "Idempotency-Key", "k1"), 422, "Idempotency-Key")
		other := map[string]string{"title": "Another course", "category": "programming", "level": "beginner", "instructorId": "ins"}
		s.problemDetails(s.do("POST", "/v1/courses", other, "Idempotency-Key", "k1"), 422, "Idempotency-Key")
		s.probe()
	})

	var course string
	var enrolled result
	t.Run("answers_a_retried_enrollment_as_first_even_after_a_withdrawal", func(t *testing.T) {
		s.t = t
		course = first.ID
		s.ok(s.do("POST", "/v1/courses/"+course+"/modules", module("m1", "Intro")), created, 1)
		s.ok(s.do("POST", "/v1/courses/"+course+"/modules", module("m2", "Types")), created, 1)
		s.ok(s.do("POST", "/v1/courses/"+course+"/publish", nil), ok, 1)
		enrolled = s.ok(s.do("POST", "/v1/courses/"+course+"/enrollments", enrollment("ada"), "Idempotency-Key", "e1"), created, 1)
		s.ok(s.do("DELETE", "/v1/courses/"+course+"/enrollments/ada", nil), ok, 1)
		// Deciding again would resume the enrollment; a retry must not.
		again := s.ok(s.do("POST", "/v1/courses/"+course+"/enrollments", enrollment("ada"), "Idempotency-Key", "e1"), created, 0)
		if again != enrolled {
			t.Errorf("retried enrollment answered %+v, want %+v", again, enrolled)
		}
		s.probe()
	})

	var completed result
	t.Run("answers_a_retried_course_completion_as_first", func(t *testing.T) {
		s.t = t
		s.ok(s.do("POST", "/v1/courses/"+course+"/enrollments", enrollment("ada")), created, 1)
		s.ok(s.do("POST", completePath("ada", course, "m1"), nil), ok, 1)
		completed = s.ok(s.do("POST", completePath("ada", course, "m2"), nil, "Idempotency-Key", "c2"), ok, 2)
		again := s.ok(s.do("POST", completePath("ada", course, "m2"), nil, "Idempotency-Key", "c2"), ok, 0)
		if !cmp.Equal(again, completed) || completed.CourseCompleted == nil || !*completed.CourseCompleted {
			t.Errorf("retried completion answered %+v, want %+v with courseCompleted true", again, completed)
		}
		s.probe()
	})

	t.Run("answers_retries_as_first_after_a_restart", func(t *testing.T) {
		s.t = t
		s.stop()
		s2 := start(t, dir, s.log)
		if again := s2.ok(s2.do("POST", "/v1/courses", newCourse(""), "Idempotency-Key", "k1"), created, 0); again != first {
			t.Errorf("course retried after a restart answered %+v, want %+v", again, first)
		}
		if again := s2.ok(s2.do("POST", "/v1/courses/"+course+"/enrollments", enrollment("ada"), "Idempotency-Key", "e1"), created, 0); again != enrolled {
			t.Errorf("enrollment retried after a restart answered %+v, want %+v", again, enrolled)
		}
		if again := s2.ok(s2.do("POST", completePath("ada", course, "m2"), nil, "Idempotency-Key", "c2"), ok, 0); !cmp.Equal(again, completed) {
			t.Errorf("completion retried after a restart answered %+v, want %+v", again, completed)
		}
		s2.probe()
	})
}

func TestRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := &logTracker{}
	s := start(t, dir, log)
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("probe", "Probe", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
	for i := 1; i <= 3; i++ {
		s.ok(s.do("POST", "/v1/courses/go/modules", module(fmt.Sprintf("m%d", i), fmt.Sprintf("Module %d", i))), created, 1)
	}
	s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
	enrolled := s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)
	m1 := s.ok(s.do("POST", completePath("ada", "go", "m1"), nil), ok, 1)
	if enrolled.Version != 1 || m1.Version != 2 {
		t.Fatalf("before the restart: enrolled at %d, m1 at %d; want 1 and 2", enrolled.Version, m1.Version)
	}
	s.stop()

	s = start(t, dir, log)
	t.Run("re-enrolling_is_a_no-op_at_the_persisted_version", func(t *testing.T) {
		s.t = t
		again := s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), ok, 0)
		if again.Version != m1.Version || again.Position != m1.Position {
			t.Errorf("re-enrolling answered %+v, want the stream's version %d at position %d", again, m1.Version, m1.Position)
		}
	})
	t.Run("a_completed_module_stays_completed", func(t *testing.T) {
		s.t = t
		again := s.ok(s.do("POST", completePath("ada", "go", "m1"), nil), ok, 0)
		if !cmp.Equal(again, m1) {
			t.Errorf("completing m1 again answered %+v, want the no-op %+v", again, m1)
		}
	})
	t.Run("the_next_module_continues_the_version_sequence", func(t *testing.T) {
		s.t = t
		m2 := s.ok(s.do("POST", completePath("ada", "go", "m2"), nil), ok, 1)
		if m2.Version != 3 || m2.CourseCompleted == nil || *m2.CourseCompleted {
			t.Errorf("completing m2 answered %+v, want version 3, course not completed", m2)
		}
		m3 := s.ok(s.do("POST", completePath("ada", "go", "m3"), nil), ok, 2)
		if m3.Version != 5 || m3.CourseCompleted == nil || !*m3.CourseCompleted {
			t.Errorf("completing m3 answered %+v, want version 5, course completed", m3)
		}
	})
	t.Run("the_course_kept_its_modules_and_status", func(t *testing.T) {
		s.t = t
		s.problemDetails(s.do("POST", "/v1/courses/go/modules", module("m1", "Other title")), http.StatusConflict, "id")
		s.probe()
		pub := s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 0)
		if pub.Version != 5 {
			t.Errorf("publishing again answered version %d, want the course's 5", pub.Version)
		}
	})
}

func TestServe(t *testing.T) {
	t.Parallel()
	// SIGTERM may come at any moment, also while the projections are still starting.
	t.Run("stops_cleanly_right_after_it_is_ready", func(t *testing.T) {
		s := start(t, t.TempDir(), &logTracker{})
		s.early = true
		s.stop() // checks that run returns nil
	})
	t.Run("refuses_a_data_dir_another_server_holds", func(t *testing.T) {
		dir := t.TempDir()
		s := start(t, dir, &logTracker{})
		s.settle(t)
		env := map[string]string{"EDUTRACK_HTTP_ADDR": "127.0.0.1:0", "EDUTRACK_DATA_DIR": dir}
		called := false
		err := run(t.Context(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard,
			func(string) { called = true })
		if err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("second server on the same data dir: err = %v, want it refused as in use", err)
		}
		if called {
			t.Error("the second server said it was ready")
		}
	})
	t.Run("answers_healthz", func(t *testing.T) {
		s := start(t, t.TempDir(), &logTracker{})
		s.settle(t)
		r := s.send("GET", "/healthz", "", nil)
		if r.status != http.StatusOK || string(r.body) != `{"status":"ok"}` {
			t.Errorf("GET /healthz: %d %s", r.status, r.body)
		}
	})
}

func TestWriteAPIRefusesOverlongMetadataHeaders(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	env := testEnv(dir)
	env["EDUTRACK_LOG_LEVEL"] = "error"
	go func() {
		done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard, func(a string) { addr <- a })
	}()
	base := "http://" + <-addr
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	post := func(header, value string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/users", strings.NewReader(`{"name":"Ada","email":"ada@example.com","role":"learner"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", bearer(testAdmin, domain.Admin))
		if header != "" {
			req.Header.Set(header, value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	// X-User-Id is not among them: the acting user comes from the token, and the header is ignored.
	for _, h := range []string{"X-Request-Id", "X-Correlation-Id", "Idempotency-Key"} {
		status, body := post(h, strings.Repeat("x", 129))
		if status != http.StatusBadRequest || body["field"] != h {
			t.Errorf("%s of 129 bytes: %d %v, want 400 naming the header", h, status, body)
		}
	}
	status, body := post("X-Request-Id", strings.Repeat("x", 128))
	if status != http.StatusCreated || body["position"] != float64(1) {
		t.Errorf("after refused requests, the first accepted one = %d %v; want 201 at position 1 (nothing appended before)", status, body)
	}
}
