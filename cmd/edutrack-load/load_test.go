package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var smallRun = []string{"-duration", "300ms", "-warmup", "0", "-clients", "4",
	"-courses", "2", "-modules", "3", "-learners", "2", "-prefix", "t1", "-json"}

func TestRun(t *testing.T) {
	t.Run("measures_both_phases_and_completes_modules_in_order", func(t *testing.T) {
		t.Parallel()
		fake := newFakeServer()
		srv := httptest.NewUnstartedServer(fake)
		var conns atomic.Int64
		srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		t.Cleanup(srv.Close)

		var out bytes.Buffer
		if err := run(t.Context(), append([]string{"-addr", srv.URL}, smallRun...), &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		t.Log("\n" + out.String())

		rep := decodeReport(t, out.String())
		for _, name := range []string{phaseHealthz, phaseWrite} {
			p, ok := rep.phase(name)
			if !ok {
				t.Fatalf("report has no %s phase", name)
			}
			if p.Rate <= 0 || p.Requests == 0 {
				t.Errorf("%s: rate %.1f/s over %d requests, want both above zero", name, p.Rate, p.Requests)
			}
			if p.Errors != 0 {
				t.Errorf("%s: %d errors, first: %s", name, p.Errors, p.FirstError)
			}
		}
		if rep.WriteHealthzRatio == nil {
			t.Error("report has no write/healthz ratio")
		}
		for _, want := range []string{"GOMAXPROCS=", "NumCPU=", "healthz (GET /healthz)",
			"write (EnrollStudent + CompleteModule)", "write/healthz ratio: "} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("text report lacks %q", want)
			}
		}
		// At most setupWorkers requests are in flight at once; a few more connections can come
		// from dials that lost the race to a connection going idle. Without reuse there would be
		// one per request.
		if n := conns.Load(); n > 2*setupWorkers {
			t.Errorf("server accepted %d connections for %d requests, want at most %d", n,
				rep.Phases[0].Requests+rep.Phases[1].Requests, 2*setupWorkers)
		}
		if got := fake.healthzCount(); got < rep.Phases[0].Requests {
			t.Errorf("fake answered %d healthz requests, report counts %d", got, rep.Phases[0].Requests)
		}

		fake.mu.Lock()
		defer fake.mu.Unlock()
		modules := []string{"m001", "m002", "m003"}
		for i := range 4 * 2 {
			learner := fmt.Sprintf("t1-l%04d", i+1)
			if fake.users[learner] != "learner" {
				t.Errorf("learner %s was not registered", learner)
			}
			enrolled, completed := 0, 0
			for _, course := range []string{"t1-c001", "t1-c002"} {
				done, ok := fake.progress[progressKey{learner, course}]
				if !ok {
					continue
				}
				enrolled++
				completed += len(done)
				// The fake refuses a module out of order, so this also holds for zero errors;
				// checking it here says what the fake saw.
				if diff := cmp.Diff(modules[:len(done)], done); diff != "" {
					t.Errorf("%s in %s completed out of order (-want +got):\n%s", learner, course, diff)
				}
			}
			if enrolled == 0 || completed == 0 {
				t.Errorf("learner %s: %d enrollments, %d completions; want some of each", learner, enrolled, completed)
			}
		}
	})

	t.Run("fails_when_a_command_fails", func(t *testing.T) {
		t.Parallel()
		fake := newFakeServer()
		fake.failModule = "m002"
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)

		var out bytes.Buffer
		err := run(t.Context(), append([]string{"-addr", srv.URL, "-phases", "write"}, smallRun...), &out)
		if err == nil || !strings.Contains(err.Error(), "write phase") {
			t.Fatalf("run returned %v, want a write phase error\n%s", err, out.String())
		}
		p, _ := decodeReport(t, out.String()).phase(phaseWrite)
		// Each failed m002 also makes the fake refuse m003 as out of order.
		if p.ErrorStatuses[http.StatusInternalServerError] == 0 {
			t.Errorf("write phase: errors by status %v, want some 500", p.ErrorStatuses)
		}
		if !strings.Contains(out.String(), "HTTP 500") {
			t.Errorf("text report does not show the failing status:\n%s", out.String())
		}
	})

	t.Run("runs_only_the_phases_asked_for", func(t *testing.T) {
		t.Parallel()
		fake := newFakeServer()
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)

		var out bytes.Buffer
		if err := run(t.Context(), append([]string{"-addr", srv.URL, "-phases", "healthz"}, smallRun...), &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		rep := decodeReport(t, out.String())
		if len(rep.Phases) != 1 || rep.Phases[0].Name != phaseHealthz {
			t.Errorf("phases = %+v, want healthz alone", rep.Phases)
		}
		if rep.WriteHealthzRatio != nil || strings.Contains(out.String(), "write/healthz ratio") {
			t.Error("a ratio was reported without a write phase")
		}
		if n := fake.userCount(); n != 0 {
			t.Errorf("setup registered %d users for a healthz-only run", n)
		}
	})

	t.Run("stops_at_once_when_the_server_is_not_there", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		addr := srv.URL
		srv.Close()

		err := run(t.Context(), []string{"-addr", addr}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "not answering") {
			t.Errorf("run returned %v, want a not answering error", err)
		}
	})

	t.Run("stops_when_interrupted", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(newFakeServer())
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()

		err := run(ctx, []string{"-addr", srv.URL, "-phases", "healthz", "-duration", "1h"}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "healthz phase") {
			t.Errorf("run returned %v, want the healthz phase to end with the context", err)
		}
	})
}

func TestParseConfig(t *testing.T) {
	now := time.Unix(1732550000, 0)

	t.Run("defaults_to_both_phases_and_a_time_prefix", func(t *testing.T) {
		cfg, err := parseConfig(nil, now)
		if err != nil {
			t.Fatal(err)
		}
		want := config{addr: "http://127.0.0.1:8080", clients: 64, duration: 10 * time.Second,
			warmup: 2 * time.Second, courses: 20, modules: 50, learners: 8, prefix: "r1732550000",
			phases: []string{"healthz", "write"}}
		if diff := cmp.Diff(want, cfg, cmp.AllowUnexported(config{})); diff != "" {
			t.Errorf("defaults (-want +got):\n%s", diff)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"rejects_an_unknown_phase", []string{"-phases", "healthz,read"}, `unknown phase "read"`},
		{"rejects_a_phase_given_twice", []string{"-phases", "write,write"}, `"write" given twice`},
		{"rejects_a_prefix_the_server_would_refuse", []string{"-prefix", "Run_1"}, "-prefix"},
		{"rejects_an_address_without_scheme", []string{"-addr", "127.0.0.1:8080"}, "-addr"},
		{"rejects_zero_clients", []string{"-clients", "0"}, "-clients"},
		{"rejects_stray_arguments", []string{"write"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseConfig(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}

	t.Run("rejects_a_prefix_that_makes_ids_too_long", func(t *testing.T) {
		cfg, err := parseConfig([]string{"-prefix", strings.Repeat("a", 60)}, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newFixture(cfg); err == nil {
			t.Error("newFixture accepted ids longer than 64 characters")
		}
	})

	t.Run("prints_usage_for_-h", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"-h"}, &out); err != nil {
			t.Fatalf("run -h: %v", err)
		}
		if !strings.Contains(out.String(), "Usage: edutrack-load") || !strings.Contains(out.String(), "-clients") {
			t.Errorf("usage:\n%s", out.String())
		}
	})
}

func TestPairOrder(t *testing.T) {
	t.Run("covers_every_pair_once", func(t *testing.T) {
		seen := map[pair]int{}
		for _, p := range pairOrder(3, 8, 20) {
			seen[p]++
		}
		if len(seen) != 8*20 {
			t.Errorf("%d distinct pairs, want %d", len(seen), 8*20)
		}
		for p, n := range seen {
			if n != 1 {
				t.Errorf("pair %+v walked %d times", p, n)
			}
		}
	})

	t.Run("is_the_same_for_a_client_on_every_run", func(t *testing.T) {
		if diff := cmp.Diff(pairOrder(5, 8, 20), pairOrder(5, 8, 20), cmp.AllowUnexported(pair{})); diff != "" {
			t.Errorf("two orders for client 5 (-first +second):\n%s", diff)
		}
	})

	t.Run("differs_between_clients", func(t *testing.T) {
		if cmp.Equal(pairOrder(0, 8, 20), pairOrder(1, 8, 20), cmp.AllowUnexported(pair{})) {
			t.Error("clients 0 and 1 walk pairs in the same order")
		}
	})
}

// decodeReport reads the JSON report that -json prints after the text one.
func decodeReport(t *testing.T, out string) *report {
	t.Helper()
	i := strings.LastIndex(out, "\n{\n")
	if i < 0 {
		t.Fatalf("no JSON report in:\n%s", out)
	}
	var rep report
	if err := json.Unmarshal([]byte(out[i:]), &rep); err != nil {
		t.Fatalf("decode JSON report: %v\n%s", err, out[i:])
	}
	return &rep
}

// fakeServer implements just enough of the EduTrack write API for the load tool: it keeps state
// in memory, checks the fields and ids the real server checks, and refuses to complete a module
// before the ones ahead of it.
type fakeServer struct {
	mux *http.ServeMux

	// failModule, when set, makes every completion of that module answer 500.
	failModule string

	mu       sync.Mutex
	users    map[string]string // id -> role
	courses  map[string]*fakeCourse
	progress map[progressKey][]string // completed modules, in order; present once enrolled
	healthz  int64
	position int64
}

type fakeCourse struct {
	modules   []string
	published bool
}

type progressKey struct{ learner, course string }

var fakeID = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

func newFakeServer() *fakeServer {
	f := &fakeServer{
		mux:      http.NewServeMux(),
		users:    map[string]string{},
		courses:  map[string]*fakeCourse{},
		progress: map[progressKey][]string{},
	}
	f.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.healthz++
		f.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	f.mux.HandleFunc("POST /v1/users", f.handle(http.StatusCreated, f.registerUser))
	f.mux.HandleFunc("POST /v1/courses", f.handle(http.StatusCreated, f.createCourse))
	f.mux.HandleFunc("POST /v1/courses/{id}/modules", f.handle(http.StatusCreated, f.addModule))
	f.mux.HandleFunc("POST /v1/courses/{id}/publish", f.handle(http.StatusOK, f.publish))
	f.mux.HandleFunc("POST /v1/courses/{id}/enrollments", f.handle(http.StatusCreated, f.enroll))
	f.mux.HandleFunc("POST /v1/learners/{learnerId}/courses/{courseId}/modules/{moduleId}/complete",
		f.handle(http.StatusOK, f.complete))
	return f
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

func (f *fakeServer) healthzCount() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.healthz
}

func (f *fakeServer) userCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.users)
}

// fakeProblem is an error answered as application/problem+json.
type fakeProblem struct {
	status int
	detail string
}

func problem(status int, format string, args ...any) *fakeProblem {
	return &fakeProblem{status: status, detail: fmt.Sprintf(format, args...)}
}

// fakeOK is a route's success: the id it changed, a status other than the route's usual one, and
// fields beyond id, version and position.
type fakeOK struct {
	id     string
	status int
	extra  map[string]any
}

// handle runs a route under the lock and answers its result, with status unless the route says
// otherwise.
func (f *fakeServer) handle(status int, route func(*http.Request) (fakeOK, *fakeProblem)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		ok, p := route(r)
		if p == nil {
			f.position++
		}
		position := f.position
		f.mu.Unlock()

		if p != nil {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(p.status)
			_ = json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(p.status), "status": p.status, "detail": p.detail})
			return
		}
		body := map[string]any{"id": ok.id, "version": 1, "position": position}
		maps.Copy(body, ok.extra)
		code := status
		if ok.status != 0 {
			code = ok.status
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
}

// decode reads a JSON body into v, refusing unknown fields.
func decode(r *http.Request, v any) *fakeProblem {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return problem(http.StatusUnsupportedMediaType, "content type %q", ct)
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return problem(http.StatusBadRequest, "decode: %v", err)
	}
	return nil
}

func checkIDs(ids ...string) *fakeProblem {
	for _, id := range ids {
		if !fakeID.MatchString(id) {
			return problem(http.StatusBadRequest, "malformed id %q", id)
		}
	}
	return nil
}

func (f *fakeServer) registerUser(r *http.Request) (fakeOK, *fakeProblem) {
	var u newUser
	if p := decode(r, &u); p != nil {
		return fakeOK{}, p
	}
	if p := required(map[string]string{"name": u.Name, "email": u.Email, "role": u.Role}); p != nil {
		return fakeOK{}, p
	}
	if p := checkIDs(u.ID); p != nil {
		return fakeOK{}, p
	}
	if u.Role != "learner" && u.Role != "instructor" {
		return fakeOK{}, problem(http.StatusBadRequest, "role %q", u.Role)
	}
	if !strings.Contains(u.Email, "@") {
		return fakeOK{}, problem(http.StatusBadRequest, "email %q", u.Email)
	}
	if _, ok := f.users[u.ID]; ok {
		return fakeOK{}, problem(http.StatusConflict, "user %s exists", u.ID)
	}
	f.users[u.ID] = u.Role
	return fakeOK{id: u.ID}, nil
}

func (f *fakeServer) createCourse(r *http.Request) (fakeOK, *fakeProblem) {
	var c newCourse
	if p := decode(r, &c); p != nil {
		return fakeOK{}, p
	}
	if p := required(map[string]string{"title": c.Title, "category": c.Category, "level": c.Level}); p != nil {
		return fakeOK{}, p
	}
	if p := checkIDs(c.ID, c.InstructorID); p != nil {
		return fakeOK{}, p
	}
	switch c.Level {
	case "beginner", "intermediate", "advanced":
	default:
		return fakeOK{}, problem(http.StatusBadRequest, "level %q", c.Level)
	}
	if f.users[c.InstructorID] != "instructor" {
		return fakeOK{}, problem(http.StatusNotFound, "no instructor %s", c.InstructorID)
	}
	if _, ok := f.courses[c.ID]; ok {
		return fakeOK{}, problem(http.StatusConflict, "course %s exists", c.ID)
	}
	f.courses[c.ID] = &fakeCourse{}
	return fakeOK{id: c.ID}, nil
}

func (f *fakeServer) addModule(r *http.Request) (fakeOK, *fakeProblem) {
	var m newModule
	if p := decode(r, &m); p != nil {
		return fakeOK{}, p
	}
	if p := required(map[string]string{"title": m.Title}); p != nil {
		return fakeOK{}, p
	}
	id := r.PathValue("id")
	if p := checkIDs(id, m.ID); p != nil {
		return fakeOK{}, p
	}
	c, ok := f.courses[id]
	if !ok {
		return fakeOK{}, problem(http.StatusNotFound, "no course %s", id)
	}
	c.modules = append(c.modules, m.ID)
	return fakeOK{id: m.ID}, nil
}

func (f *fakeServer) publish(r *http.Request) (fakeOK, *fakeProblem) {
	id := r.PathValue("id")
	if p := checkIDs(id); p != nil {
		return fakeOK{}, p
	}
	c, ok := f.courses[id]
	switch {
	case !ok:
		return fakeOK{}, problem(http.StatusNotFound, "no course %s", id)
	case c.published:
		return fakeOK{}, problem(http.StatusConflict, "course %s is published", id)
	case len(c.modules) == 0:
		return fakeOK{}, problem(http.StatusConflict, "course %s has no modules", id)
	}
	c.published = true
	return fakeOK{id: id}, nil
}

func (f *fakeServer) enroll(r *http.Request) (fakeOK, *fakeProblem) {
	var e enrollment
	if p := decode(r, &e); p != nil {
		return fakeOK{}, p
	}
	course := r.PathValue("id")
	if p := checkIDs(course, e.LearnerID); p != nil {
		return fakeOK{}, p
	}
	if c, ok := f.courses[course]; !ok || !c.published {
		return fakeOK{}, problem(http.StatusConflict, "course %s is not published", course)
	}
	if f.users[e.LearnerID] != "learner" {
		return fakeOK{}, problem(http.StatusNotFound, "no learner %s", e.LearnerID)
	}
	key := progressKey{e.LearnerID, course}
	if _, ok := f.progress[key]; ok {
		return fakeOK{id: e.LearnerID, status: http.StatusOK}, nil
	}
	f.progress[key] = []string{}
	return fakeOK{id: e.LearnerID}, nil
}

func (f *fakeServer) complete(r *http.Request) (fakeOK, *fakeProblem) {
	learner, course, module := r.PathValue("learnerId"), r.PathValue("courseId"), r.PathValue("moduleId")
	if p := checkIDs(learner, course, module); p != nil {
		return fakeOK{}, p
	}
	if module == f.failModule {
		return fakeOK{}, problem(http.StatusInternalServerError, "failing %s on purpose", module)
	}
	key := progressKey{learner, course}
	done, ok := f.progress[key]
	if !ok {
		return fakeOK{}, problem(http.StatusConflict, "%s is not enrolled in %s", learner, course)
	}
	modules := f.courses[course].modules
	i := slices.Index(modules, module)
	switch {
	case i < 0:
		return fakeOK{}, problem(http.StatusNotFound, "no module %s in %s", module, course)
	case i < len(done):
		// Already completed: a no-op, as on the real server.
	case i > len(done):
		return fakeOK{}, problem(http.StatusConflict, "%s completes %s before %s", learner, module, modules[len(done)])
	default:
		f.progress[key] = append(done, module)
	}
	return fakeOK{id: learner, extra: map[string]any{"courseCompleted": len(f.progress[key]) == len(modules)}}, nil
}

// required checks that the named fields are non-empty.
func required(required map[string]string) *fakeProblem {
	for name, value := range required {
		if value == "" {
			return problem(http.StatusBadRequest, "%s is required", name)
		}
	}
	return nil
}
