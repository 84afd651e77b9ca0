package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	userevents "github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/readstore/readstoretest"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
)

// projectionsCLI runs `edutrack projections args...` against the admin API at base, with the
// test servers' key in its environment, as an operator on the server's machine has it.
func projectionsCLI(t *testing.T, base string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	env := envOf(map[string]string{"EDUTRACK_ADMIN_URL": base, "EDUTRACK_JWT_KEY": testKey})
	err = run(ctx, append([]string{"projections"}, args...), env, &out, &errOut, nil)
	return out.String(), errOut.String(), err
}

// tableRows splits the CLI's table into its header and rows, each cut into its fields.
func tableRows(t *testing.T, out string) (header string, rows [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatalf("no table in %q", out)
	}
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return strings.Join(strings.Fields(lines[0]), " "), rows
}

// projectionState asks the admin API for one projection's state.
func projectionState(client *http.Client, base, name string) (projections.State, error) {
	var st projections.State
	resp, err := client.Get(base + "/v1/admin/projections/" + name)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET state of %s: %s %s", name, resp.Status, body)
	}
	err = json.Unmarshal(body, &st)
	return st, err
}

// projectionStates asks the admin API for every projection's state.
func projectionStates(client *http.Client, base string) ([]projections.State, error) {
	var out struct {
		Items []projections.State `json:"items"`
	}
	resp, err := client.Get(base + "/v1/admin/projections")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET projections: %s %s", resp.Status, body)
	}
	err = json.Unmarshal(body, &out)
	return out.Items, err
}

// waitCaughtUp waits until both projections run at head or past it, with no rebuild going on.
func waitCaughtUp(t *testing.T, client *http.Client, base string, head uint64) {
	t.Helper()
	var last []projections.State
	var err error
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if last, err = projectionStates(client, base); err != nil {
			continue
		}
		done := len(last) == 3 // courses, learners, snapshots
		for _, st := range last {
			done = done && st.Position >= head && st.Rebuild == nil && st.Status == projections.StatusRunning
		}
		if done {
			return
		}
	}
	t.Fatalf("projections did not catch up with position %d within 2 minutes: %+v (%v)", head, last, err)
}

// waitLive polls name's state until generation gen is live and nothing is being built, and
// returns that state.
func waitLive(t *testing.T, client *http.Client, base, name string, gen int) projections.State {
	t.Helper()
	var st projections.State
	var err error
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		st, err = projectionState(client, base, name)
		if err == nil && st.Generation == gen && st.Rebuild == nil {
			return st
		}
		if err == nil && (st.Generation > gen || (st.Rebuild != nil && st.Rebuild.Status == projections.StatusStalled)) {
			t.Fatalf("waiting for generation %d of %s: %+v", gen, name, st)
		}
	}
	var rebuild any
	if st.Rebuild != nil {
		rebuild = *st.Rebuild
	}
	t.Fatalf("generation %d of %s not live within 2 minutes: %+v, rebuild %+v (%v)", gen, name, st, rebuild, err)
	return st
}

// The versions of the projectors, as the list shows them.
var (
	coursesV  = strconv.Itoa(projections.Courses{}.Version())
	learnersV = strconv.Itoa(projections.Learners{}.Version())
	snapsV    = strconv.Itoa(projections.Snapshots{}.Version())
)

func TestProjectionsCommand(t *testing.T) {
	t.Parallel()
	s := start(t, t.TempDir(), &logTracker{})
	seed(t, s)
	checkCaughtUp(t, s)
	paths := readPaths(t, s)
	before := make(map[string]answer, len(paths))
	for _, p := range paths {
		before[p] = fresh(t, s, p)
	}
	head := strconv.FormatUint(s.log.pos, 10)

	t.Run("lists_every_projection_running_at_the_head", func(t *testing.T) {
		stdout, stderr, err := projectionsCLI(t, s.base, "list")
		if err != nil || stderr != "" {
			t.Fatalf("list: %v, stderr %q", err, stderr)
		}
		header, rows := tableRows(t, stdout)
		if want := "NAME VERSION GENERATION POSITION HEAD LAG STATUS DEAD LETTERS REBUILD"; header != want {
			t.Errorf("header %q, want %q", header, want)
		}
		want := [][]string{
			{"courses", coursesV, "1", head, head, "0", "running", "0", "-"},
			{"learners", learnersV, "1", head, head, "0", "running", "0", "-"},
			{"snapshots", snapsV, "1", head, head, "0", "running", "0", "-"},
		}
		if diff := cmp.Diff(want, rows); diff != "" {
			t.Errorf("list (-want +got):\n%s\n%s", diff, stdout)
		}
	})

	t.Run("lists_as_JSON_with_the_same_states", func(t *testing.T) {
		stdout, _, err := projectionsCLI(t, s.base, "list", "-json")
		if err != nil {
			t.Fatalf("list -json: %v", err)
		}
		states := decodeStrict[[]projections.State](t, []byte(stdout))
		if len(states) != 3 {
			t.Fatalf("list -json: %d states, want 3: %s", len(states), stdout)
		}
		for i, name := range []string{"courses", "learners", "snapshots"} {
			st := states[i]
			if st.Name != name || strconv.Itoa(st.Version) != map[string]string{"courses": coursesV, "learners": learnersV, "snapshots": snapsV}[name] || st.Generation != 1 || st.Position != s.log.pos || st.Head != s.log.pos ||
				st.Lag != 0 || st.Status != projections.StatusRunning || st.DeadLetters != 0 || st.Rebuild != nil || st.Frozen {
				t.Errorf("state %d = %+v, want %s at generation 1, running at position and head %d", i, st, name, s.log.pos)
			}
			plausible(t, name+" checkedAt", st.CheckedAt, time.Now())
		}
	})

	t.Run("rebuilds_courses_in_plain_lines_and_returns_once_generation_2_is_live", func(t *testing.T) {
		stdout, stderr, err := projectionsCLI(t, s.base, "rebuild", "courses")
		if err != nil {
			t.Fatalf("rebuild courses: %v\nstdout %q\nstderr %q", err, stdout, stderr)
		}
		if want := "rebuilding courses: generation 2, beside live generation 1\n"; stderr != want {
			t.Errorf("stderr %q, want %q", stderr, want)
		}
		// Not a terminal: no progress bar, whose redraws would show as carriage returns and escapes.
		if strings.ContainsAny(stdout, "\r\x1b") {
			t.Errorf("stdout %q holds terminal control characters", stdout)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		if want := "courses: generation 2 is live at position " + head; lines[len(lines)-1] != want {
			t.Errorf("last line %q, want %q; stdout %q", lines[len(lines)-1], want, stdout)
		}
		for _, l := range lines[:len(lines)-1] {
			if !strings.HasPrefix(l, "courses generation 2: position ") {
				t.Errorf("progress line %q, want one of the form \"courses generation 2: position N of M, ...\"", l)
			}
		}
	})

	t.Run("lists_generation_2_of_courses_after_the_rebuild", func(t *testing.T) {
		stdout, _, err := projectionsCLI(t, s.base, "list")
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		_, rows := tableRows(t, stdout)
		want := [][]string{
			{"courses", coursesV, "2", head, head, "0", "running", "0", "-"},
			{"learners", learnersV, "1", head, head, "0", "running", "0", "-"},
			{"snapshots", snapsV, "1", head, head, "0", "running", "0", "-"},
		}
		if diff := cmp.Diff(want, rows); diff != "" {
			t.Errorf("list (-want +got):\n%s\n%s", diff, stdout)
		}
	})

	t.Run("answers_every_read_as_before_the_rebuild", func(t *testing.T) {
		for _, p := range paths {
			a, b := fresh(t, s, p), before[p]
			if !bytes.Equal(a.body, b.body) || a.header.Get("ETag") != b.header.Get("ETag") {
				t.Errorf("GET %s after the rebuild: ETag %s\n%s\nwant ETag %s\n%s", p, a.header.Get("ETag"), a.body, b.header.Get("ETag"), b.body)
			}
		}
	})

	t.Run("refuses_to_rebuild_an_unknown_projection_naming_it", func(t *testing.T) {
		stdout, _, err := projectionsCLI(t, s.base, "rebuild", "grades")
		if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "no such projection: grades") {
			t.Errorf("rebuild grades: %v, want a 404 naming grades", err)
		}
		if stdout != "" {
			t.Errorf("rebuild grades printed %q", stdout)
		}
	})

	t.Run("refuses_wrong_argument_counts_and_unknown_commands_with_usage", func(t *testing.T) {
		for _, tc := range []struct {
			args    []string
			wantErr string
		}{
			{nil, "projections: no command given"},
			{[]string{"list", "courses"}, "projections list: want 0 argument(s), got 1"},
			{[]string{"rebuild"}, "projections rebuild: want 1 argument(s), got 0"},
			{[]string{"rebuild", "courses", "learners"}, "projections rebuild: want 1 argument(s), got 2"},
			{[]string{"dead-letters"}, "projections dead-letters: want 1 argument(s), got 0"},
			{[]string{"skip", "courses"}, "projections skip: want 2 argument(s), got 1"},
			{[]string{"retry"}, "projections retry: want 1 argument(s), got 0"},
			{[]string{"reset", "courses"}, `projections: unknown command "reset"`},
			{[]string{"list", "-verbose"}, "flag provided but not defined: -verbose"},
		} {
			stdout, stderr, err := projectionsCLI(t, s.base, tc.args...)
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("projections %q: %v, want %q", tc.args, err, tc.wantErr)
			}
			if !strings.Contains(stderr, "usage: edutrack projections") || !strings.Contains(stderr, "-server") {
				t.Errorf("projections %q: stderr %q, want the usage with the flags", tc.args, stderr)
			}
			if stdout != "" {
				t.Errorf("projections %q: stdout %q, want nothing", tc.args, stdout)
			}
		}
	})

	t.Run("refuses_a_skip_when_not_stalled_with_the_server's_conflict", func(t *testing.T) {
		_, _, err := projectionsCLI(t, s.base, "skip", "courses", "5", "-reason", "testing")
		if want := "409 Conflict: the projection is not stalled at position 5"; err == nil || err.Error() != want {
			t.Errorf("skip courses 5: %v, want %q", err, want)
		}
		for _, pos := range []string{"0", "five", "1.5"} {
			_, _, err := projectionsCLI(t, s.base, "skip", "courses", pos)
			if err == nil || !strings.Contains(err.Error(), "POSITION "+strconv.Quote(pos)) {
				t.Errorf("skip courses %s: %v, want the position refused", pos, err)
			}
		}
	})

	t.Run("refuses_a_retry_when_not_stalled", func(t *testing.T) {
		_, _, err := projectionsCLI(t, s.base, "retry", "courses")
		if want := "409 Conflict: the projection is not stalled"; err == nil || err.Error() != want {
			t.Errorf("retry courses: %v, want %q", err, want)
		}
	})

	t.Run("lists_no_dead_letters", func(t *testing.T) {
		for _, name := range []string{"courses", "learners"} {
			stdout, _, err := projectionsCLI(t, s.base, "dead-letters", name)
			if err != nil {
				t.Fatalf("dead-letters %s: %v", name, err)
			}
			header, rows := tableRows(t, stdout)
			if want := "POSITION GENERATION STATE TYPE EVENT ID AT ERROR"; header != want || len(rows) != 0 {
				t.Errorf("dead-letters %s: %q, want the header %q and no rows", name, stdout, want)
			}
			stdout, _, err = projectionsCLI(t, s.base, "dead-letters", "-json", name)
			if err != nil || stdout != "[]\n" {
				t.Errorf("dead-letters -json %s: %q (%v), want []", name, stdout, err)
			}
		}
		if _, _, err := projectionsCLI(t, s.base, "dead-letters", "grades"); err == nil || !strings.Contains(err.Error(), "no such projection: grades") {
			t.Errorf("dead-letters grades: %v, want a 404 naming grades", err)
		}
	})

	t.Run("takes_the_server_from_the_flag_over_the_environment", func(t *testing.T) {
		var out, errOut bytes.Buffer
		env := envOf(map[string]string{"EDUTRACK_ADMIN_URL": "http://127.0.0.1:1", "EDUTRACK_JWT_KEY": testKey})
		if err := run(t.Context(), []string{"projections", "-server", s.base + "/", "list"}, env, &out, &errOut, nil); err != nil {
			t.Errorf("list -server %s: %v", s.base, err)
		}
		if !strings.HasPrefix(out.String(), "NAME") {
			t.Errorf("list -server %s printed %q", s.base, out.String())
		}
	})

	t.Run("fails_naming_a_server_that_does_not_answer", func(t *testing.T) {
		gone := closedPort(t)
		_, _, err := projectionsCLI(t, gone, "list")
		if err == nil || !strings.Contains(err.Error(), "cannot reach the EduTrack server at "+gone) {
			t.Errorf("list against %s: %v, want it named unreachable", gone, err)
		}
	})

	t.Run("says_so_when_the_server_runs_no_projections", func(t *testing.T) {
		base := serveRoles(t, "write,read")
		_, _, err := projectionsCLI(t, base, "list")
		if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "project role") {
			t.Errorf("list against a process without the project role: %v, want a 404 that points at the role", err)
		}
	})
}

// closedPort returns the URL of a loopback port that was open a moment ago and is closed now.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// serveRoles runs the program with only these roles on a fresh data dir until the test ends.
func serveRoles(t *testing.T, roles string) string {
	t.Helper()
	env := testEnv(t.TempDir())
	env["EDUTRACK_ROLES"], env["EDUTRACK_LOG_LEVEL"] = roles, "error"
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, envOf(env), io.Discard, io.Discard, func(a string) { addr <- a })
	}()
	select {
	case a := <-addr:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve with roles %s: %v", roles, err)
			}
		})
		return "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("serve with roles %s returned before serving: %v", roles, err)
	}
	return ""
}

// The rebuild tests share one log, large enough that rebuilding the learners takes a few
// seconds: long enough to kill a process in the middle of it, and to read all along.
type school struct {
	dir      string // holds events.db and, once built, read.db; both closed
	head     uint64
	courses  []string
	learners []string
	modules  int
}

// firstCourse is the course learner i has completed only some modules of; the writers of the
// tests complete the rest.
func (s *school) firstCourse(i int) string { return s.courses[i%len(s.courses)] }

// completed is how many modules of its first course learner i had completed in the log.
func (s *school) completed(i int) int { return i % s.modules }

// raceEnabled reports whether the test binary runs under the race detector, which makes both
// filling the log and projecting it about ten times slower.
func raceEnabled() bool {
	if bi, found := debug.ReadBuildInfo(); found {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// fillSchool writes a school's history straight into a new log in dir: an instructor, courses
// with their modules, and learners who each enrolled in two courses, completed one and part
// of the other. Appending each stream's events together is far faster than a command each,
// and the events are those the commands would record.
func fillSchool(t *testing.T, dir string, learners int) *school {
	t.Helper()
	l, err := sqlitelog.Open(filepath.Join(dir, "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	codec, err := commands.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// One instant for every event: rosters list by enrollment time, then id, so each roster's
	// first page keeps the same learners however the appends interleave.
	at := time.Now().UTC()
	appendNew := func(stream string, evs ...domain.Event) error {
		data := make([]eventstore.EventData, len(evs))
		for i, e := range evs {
			typ, body, err := codec.Encode(e)
			if err != nil {
				return err
			}
			data[i] = eventstore.EventData{ID: uuid.New(), Type: typ, Data: body, Metadata: eventstore.Metadata{UserID: "seed"}}
		}
		_, err := l.Append(ctx, stream, eventstore.NoStream, data)
		return err
	}
	s := &school{dir: dir, modules: 8}
	moduleID := func(k int) string { return fmt.Sprintf("m%d", k+1) }
	if err := appendNew("user-ins", userevents.Registered{UserID: "ins", Name: "Grace Hopper", Email: "grace@example.com",
		Role: domain.Instructor, At: at}); err != nil {
		t.Fatal(err)
	}
	for c := range 10 {
		id := fmt.Sprintf("c%02d", c)
		s.courses = append(s.courses, id)
		evs := []domain.Event{course.Created{CourseID: id, Title: "Course " + id, Description: "About " + id, Category: "programming",
			Level: course.LevelBeginner, InstructorID: "ins", At: at}}
		for k := range s.modules {
			evs = append(evs, course.ModuleAdded{CourseID: id, ModuleID: moduleID(k), Title: "Module " + moduleID(k), At: at})
		}
		if err := appendNew("course-"+id, append(evs, course.Published{CourseID: id, At: at})...); err != nil {
			t.Fatal(err)
		}
	}
	for i := range learners {
		s.learners = append(s.learners, fmt.Sprintf("l%04d", i))
	}
	// Concurrent appends share the log's group commits.
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	const workers = 16
	for w := range workers {
		wg.Go(func() {
			for i := w; i < learners && failed.Load() == nil; i += workers {
				id := s.learners[i]
				err := appendNew("user-"+id, userevents.Registered{UserID: id, Name: "Learner " + id, Email: id + "@example.com",
					Role: domain.Learner, At: at})
				first, second := s.firstCourse(i), s.courses[(i+3)%len(s.courses)]
				evs := []domain.Event{learner.Enrolled{LearnerID: id, CourseID: first, At: at}}
				for k := range s.completed(i) {
					evs = append(evs, learner.ModuleCompleted{LearnerID: id, CourseID: first, ModuleID: moduleID(k), At: at})
				}
				evs = append(evs, learner.Enrolled{LearnerID: id, CourseID: second, At: at})
				for k := range s.modules {
					evs = append(evs, learner.ModuleCompleted{LearnerID: id, CourseID: second, ModuleID: moduleID(k), At: at})
				}
				evs = append(evs, learner.CourseCompleted{LearnerID: id, CourseID: second, At: at})
				if err == nil {
					err = appendNew("learner-"+id, evs...)
				}
				if err != nil {
					failed.Store(&err)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatalf("fill the log: %v", *err)
	}
	if s.head, err = l.Head(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// copyStore copies a store of from, which no process has open, into to: "events" is the event
// log, "read" the read models.
func copyStore(t *testing.T, from, to, store string) {
	t.Helper()
	for _, name := range []string{store + ".db", store + ".db-wal"} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if errors.Is(err, os.ErrNotExist) && name != store+".db" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// buildEdutrack builds the program into dir, with the race detector when the tests run with it
// (which also finds the packages compiled already), and with the flags of go build given.
func buildEdutrack(dir string, flags ...string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go tool is needed to build edutrack for the process tests: %w", err)
	}
	bin := filepath.Join(dir, "edutrack")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, flags...)
	cmd := exec.Command(goTool, append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// child is `edutrack serve` run as a process of its own.
type child struct {
	t         *testing.T
	base      string
	client    *http.Client // signs each request as the test server helpers' clients do
	transport *http.Transport
	logs      *syncBuffer
	cmd       *exec.Cmd
	exited    chan struct{}
	err       error // what Wait returned, once exited is closed
}

var servingLine = regexp.MustCompile(`msg="edutrack serving" addr=(\S+)`)

// startChild starts bin serving dir on a free port, with the settings of extra besides the
// tests' own; the test's cleanup kills it if it still runs.
func startChild(t *testing.T, bin, dir string, extra ...map[string]string) *child {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = os.Environ()
	env := testEnv(dir)
	for _, e := range extra {
		maps.Copy(env, e)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// A killed process's projector lease must expire before the next one may project.
	cmd.Env = append(cmd.Env, "EDUTRACK_LOG_LEVEL=info", "EDUTRACK_LEASE_TTL=1s")
	transport := &http.Transport{}
	c := &child{t: t, logs: &syncBuffer{}, cmd: cmd, exited: make(chan struct{}), transport: transport,
		client: &http.Client{Transport: callerTransport{transport}, Timeout: 30 * time.Second}}
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			cmd.Process.Kill()
			<-c.exited
		}
		c.transport.CloseIdleConnections()
	})
	for deadline := time.Now().Add(time.Minute); ; {
		if m := servingLine.FindStringSubmatch(c.logs.String()); m != nil {
			c.base = "http://" + m[1]
			return c
		}
		select {
		case <-c.exited:
			t.Fatalf("edutrack exited before serving: %v\n%s", c.err, c.logs)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("edutrack not serving after a minute:\n%s", c.logs)
		}
	}
}

// stop sends SIGTERM and wants a clean exit with nothing logged as an error.
func (c *child) stop() {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		c.t.Fatalf("edutrack did not stop within a minute of SIGTERM:\n%s", c.logs)
	}
	c.transport.CloseIdleConnections()
	if c.err != nil {
		c.t.Errorf("edutrack exited with %v, want 0:\n%s", c.err, c.logs)
	}
	c.checkLogs()
}

// kill sends SIGKILL: the process ends wherever it is, with no chance to finish anything.
func (c *child) kill() {
	c.t.Helper()
	c.cmd.Process.Kill()
	<-c.exited
	c.transport.CloseIdleConnections()
	var exit *exec.ExitError
	if !errors.As(c.err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		c.t.Errorf("edutrack ended with %v, want killed by SIGKILL", c.err)
	}
	c.checkLogs()
}

func (c *child) checkLogs() {
	c.t.Helper()
	for line := range strings.Lines(c.logs.String()) {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "DATA RACE") {
			c.t.Errorf("edutrack logged: %s", line)
		}
	}
}

// TestRebuild rebuilds the learners' read models of a log of thousands of events: once
// killing the process halfway, once under steady reads and writes. Both subtests keep both
// cores busy for seconds, so the test runs on its own rather than beside the others, whose
// reads would then wait past their consistency limit.
func TestRebuild(t *testing.T) {
	// With the race detector every event costs about ten times as much.
	learners := 3600
	if raceEnabled() {
		learners = 480
	}
	built := make(chan error, 1)
	var bin string
	binDir := t.TempDir()
	go func() {
		var err error
		bin, err = buildEdutrack(binDir)
		built <- err
	}()
	began := time.Now()
	sch := fillSchool(t, t.TempDir(), learners)
	t.Logf("filled the log with %d events in %s", sch.head, time.Since(began).Round(time.Millisecond))
	// Generation 1, built once from position 0: where both subtests start, and what a clean
	// build of the log is.
	began = time.Now()
	s := startWith(t, sch.dir, &logTracker{pos: sch.head}, nil)
	waitCaughtUp(t, s.client, s.base, sch.head)
	s.stop()
	t.Logf("built generation 1 in %s", time.Since(began).Round(time.Millisecond))
	buildErr := <-built

	t.Run("resumes_where_it_stopped_after_a_kill_-9_and_ends_equal_to_a_clean_build", func(t *testing.T) {
		t.Parallel()
		if buildErr != nil {
			t.Fatal(buildErr)
		}
		dir, clean := t.TempDir(), t.TempDir()
		for _, store := range []string{"events", "read"} {
			copyStore(t, sch.dir, dir, store)
			copyStore(t, sch.dir, clean, store)
		}
		c := startChild(t, bin, dir)
		waitCaughtUp(t, c.client, c.base, sch.head)

		_, stderr, err := projectionsCLI(t, c.base, "rebuild", "-detach", "learners")
		if want := "rebuilding learners: generation 2, beside live generation 1\n"; err != nil || stderr != want {
			t.Fatalf("rebuild -detach learners: %v, stderr %q, want %q", err, stderr, want)
		}
		stdout, _, err := projectionsCLI(t, c.base, "list")
		if _, rows := tableRows(t, stdout); err != nil || len(rows) != 3 || len(rows[1]) < 11 || rows[1][0] != "learners" ||
			rows[1][2] != "1" || rows[1][6] != "rebuilding" || strings.Join(rows[1][8:11], " ") != "generation 2 at" {
			t.Errorf("list while rebuilding: %v\n%s\nwant learners at generation 1, rebuilding, generation 2 at some position", err, stdout)
		}
		if _, _, err := projectionsCLI(t, c.base, "rebuild", "learners"); err == nil || err.Error() != "409 Conflict: the projection is already being rebuilt" {
			t.Errorf("a second rebuild while one runs: %v, want 409, already being rebuilt", err)
		}
		// Kill as soon as the new generation has committed something, well before it is done.
		var killedAt uint64
		for deadline := time.Now().Add(time.Minute); killedAt == 0; time.Sleep(2 * time.Millisecond) {
			st, err := projectionState(c.client, c.base, "learners")
			switch {
			case err != nil:
				t.Fatal(err)
			case st.Rebuild == nil:
				t.Fatalf("the rebuild finished before the kill; the log of %d events is too small: %+v", sch.head, st)
			case time.Now().After(deadline):
				t.Fatalf("the rebuild committed nothing within a minute: %+v", st)
			}
			killedAt = st.Rebuild.Position
		}
		c.kill()
		t.Logf("killed at rebuild position %d of %d", killedAt, sch.head)

		c = startChild(t, bin, dir)
		resumed := c
		t.Cleanup(func() {
			if t.Failed() {
				var lines []string
				for line := range strings.Lines(resumed.logs.String()) {
					if !strings.Contains(line, "msg=request ") {
						lines = append(lines, line)
					}
				}
				t.Logf("the resumed process's log, but for its access lines:\n%s", strings.Join(lines[max(0, len(lines)-200):], ""))
			}
		})
		// Until the runner has started (after the killed process's lease ran out), the
		// projection reports itself starting, at generation 0.
		var first projections.State
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Millisecond) {
			if first, err = projectionState(c.client, c.base, "learners"); err != nil {
				t.Fatal(err)
			}
			if first.Status != projections.StatusStarting || first.Generation != 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("learners still starting a minute after the restart: %+v\n%s", first, c.logs)
			}
		}
		if first.Generation != 1 || first.Rebuild == nil || first.Rebuild.Generation != 2 || first.Rebuild.Position < killedAt {
			t.Fatalf("first state after the restart: %+v (rebuild %+v), want generation 2 still being built beside 1, from position %d or later",
				first, first.Rebuild, killedAt)
		}
		t.Logf("resumed at rebuild position %d", first.Rebuild.Position)
		if st := waitLive(t, c.client, c.base, "learners", 2); st.Position != sch.head {
			t.Errorf("generation 2 live at position %d, want %d", st.Position, sch.head)
		}
		waitCaughtUp(t, c.client, c.base, sch.head)
		c.stop()
		compareReadModels(t, dir, clean, sch.head)
	})

	t.Run("answers_every_read_meanwhile_never_older_and_ends_equal_to_a_clean_build", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		copyStore(t, sch.dir, dir, "events")
		copyStore(t, sch.dir, dir, "read")
		// Authenticated, so that each learner reads their own dashboard (as the test client
		// signs it) and no read is a disclosure written to the log.
		s := startWith(t, dir, &logTracker{pos: sch.head}, nil)
		waitCaughtUp(t, s.client, s.base, sch.head)

		load := &readLoad{base: s.base, client: s.client, dashboards: map[string]uint64{},
			rosters: map[string]map[string]float64{}, written: map[string]bool{}}
		var paths []string
		for _, id := range sch.learners {
			paths = append(paths, "/v1/learners/"+id+"/dashboard")
		}
		for _, id := range sch.courses {
			paths = append(paths, "/v1/courses/"+id+"/roster?limit=100")
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		const readers = 3
		for r := range readers {
			wg.Go(func() {
				for i := r; ; i += readers {
					select {
					case <-stop:
						return
					default:
					}
					load.read(paths[i%len(paths)])
				}
			})
		}
		// Writers complete the modules the learners left, each of its own learners, and read
		// their own writes back.
		const writers = 2
		var lastWrite atomic.Uint64
		for w := range writers {
			wg.Go(func() {
				var mine []int
				done, left := map[int]int{}, 0
				for i := w; i < len(sch.learners); i += writers {
					mine = append(mine, i)
					done[i] = sch.completed(i)
					left += sch.modules - done[i]
				}
				for j := 0; left > 0; j = (j + 1) % len(mine) {
					select {
					case <-stop:
						return
					default:
					}
					i := mine[j]
					if done[i] == sch.modules {
						continue
					}
					done[i]++
					left--
					if pos := load.write(sch.learners[i], sch.firstCourse(i), done[i]); pos > 0 {
						for last := lastWrite.Load(); pos > last && !lastWrite.CompareAndSwap(last, pos); last = lastWrite.Load() {
						}
					}
				}
			})
		}
		stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
		t.Cleanup(stopLoad)
		// A few answers of generation 1 first, which generation 2's must not be older than.
		for load.reads.Load() < 20 {
			time.Sleep(5 * time.Millisecond)
		}

		load.phase.Store(phaseRebuilding)
		r := s.send(http.MethodPost, "/v1/admin/projections/learners/rebuild", "", nil)
		if st := decodeStrict[projections.State](t, r.body); r.status != http.StatusAccepted || st.Rebuild == nil || st.Rebuild.Generation != 2 {
			t.Fatalf("POST rebuild: %d %s, want 202 with generation 2 being built", r.status, r.body)
		}
		if d := s.problemDetails(s.send(http.MethodPost, "/v1/admin/projections/learners/rebuild", "", nil), http.StatusConflict, ""); d.Detail != "the projection is already being rebuilt" {
			t.Errorf("a second rebuild while one runs: %+v, want it refused as already being rebuilt", d)
		}
		waitLive(t, s.client, s.base, "learners", 2)
		load.phase.Store(phaseSwitched)
		for after := load.reads.Load(); load.reads.Load() < after+60; {
			time.Sleep(5 * time.Millisecond)
		}
		stopLoad()
		for _, p := range load.problems {
			t.Error(p)
		}
		t.Logf("%d reads, %d of them while the rebuild ran; %d writes, %d reads of them retried after a 503", load.reads.Load(),
			load.during.Load(), load.writes.Load(), load.retried.Load())
		if load.during.Load() == 0 || load.writes.Load() == 0 {
			t.Errorf("%d reads and %d writes while the rebuild ran; the test did not load it", load.during.Load(), load.writes.Load())
		}

		s.log.pos = max(sch.head, lastWrite.Load())
		waitCaughtUp(t, s.client, s.base, s.log.pos)
		// Every document is compared below; through the API, the rosters and the dashboards
		// of the learners written meanwhile, and of every tenth one.
		var sample []string
		for i, p := range paths {
			if !strings.HasSuffix(p, "/dashboard") || i%10 == 0 || load.wrote(strings.Split(p, "/")[3]) {
				sample = append(sample, p)
			}
		}
		answers := map[string]answer{}
		for _, p := range sample {
			answers[p] = fresh(t, s, p)
		}
		s.stop()
		clean := t.TempDir()
		copyStore(t, dir, clean, "events")
		b := startWith(t, clean, &logTracker{pos: s.log.pos}, nil)
		waitCaughtUp(t, b.client, b.base, s.log.pos)
		for _, p := range sample {
			a, want := fresh(t, b, p), answers[p]
			if !bytes.Equal(a.body, want.body) || a.header.Get("ETag") != want.header.Get("ETag") {
				t.Errorf("GET %s after the rebuild: ETag %s\n%s\na clean build answers ETag %s\n%s", p,
					want.header.Get("ETag"), want.body, a.header.Get("ETag"), a.body)
			}
		}
		b.stop()
		compareReadModels(t, dir, clean, s.log.pos)
	})
}

// Phases of a readLoad.
const (
	phaseBefore int32 = iota
	phaseRebuilding
	phaseSwitched
)

// readLoad reads dashboards and rosters over and over, and writes, recording every answer that
// fails or is older than one already answered.
type readLoad struct {
	base   string
	client *http.Client
	phase  atomic.Int32
	reads  atomic.Int64
	during atomic.Int64 // reads that began and ended while the rebuild ran
	writes atomic.Int64
	// retried counts reads of a write's position that the projection had not reached within
	// the consistency wait, which a loaded machine under the race detector can stretch past.
	retried atomic.Int64

	mu         sync.Mutex
	dashboards map[string]uint64             // path -> the highest position answered
	rosters    map[string]map[string]float64 // path -> learner -> the highest progress answered
	written    map[string]bool               // learners a write changed
	problems   []string
}

func (l *readLoad) wrote(learnerID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written[learnerID]
}

func (l *readLoad) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 20 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

// get reads path and wants a 200. A read with minPosition that the projection has not
// reached within the server's consistency wait answers 503 with Retry-After, as the API says;
// with retry, get retries it as a client would, for a minute at most.
func (l *readLoad) get(path string, retry bool) (http.Header, []byte, bool) {
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := l.client.Get(l.base + path)
		if err != nil {
			l.problem("GET %s: %v", path, err)
			return nil, nil, false
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if retry && resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" && time.Now().Before(deadline) {
			l.retried.Add(1)
			continue
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			l.problem("GET %s: %d %s (%v)", path, resp.StatusCode, bytes.TrimSpace(body), err)
			return nil, nil, false
		}
		return resp.Header, body, true
	}
}

// read reads path once. What an answer must not be older than is what answers completed
// before the request went out: concurrent requests may finish in either order.
func (l *readLoad) read(path string) {
	phase := l.phase.Load()
	l.mu.Lock()
	floor := l.dashboards[path]
	seen := maps.Clone(l.rosters[path])
	l.mu.Unlock()
	header, body, ok := l.get(path, false)
	if !ok {
		return
	}
	if strings.HasSuffix(path, "/dashboard") {
		pos, err := strconv.ParseUint(strings.TrimSuffix(strings.Trim(header.Get("ETag"), `"`), "-gzip"), 10, 64)
		switch {
		case err != nil:
			l.problem("GET %s: ETag %q is not a position", path, header.Get("ETag"))
		case pos < floor:
			l.problem("GET %s: position %d, after %d was answered", path, pos, floor)
		}
		l.mu.Lock()
		l.dashboards[path] = max(l.dashboards[path], pos)
		l.mu.Unlock()
	} else {
		var page listPage[rosterItem]
		if err := json.Unmarshal(body, &page); err != nil {
			l.problem("GET %s: %s: %v", path, body, err)
			return
		}
		got := map[string]float64{}
		for _, it := range page.Items {
			got[it.LearnerID] = it.Progress
		}
		// Nobody enrolls or withdraws meanwhile, so the first page keeps its learners.
		for id, progress := range seen {
			if p, found := got[id]; !found || p < progress {
				l.problem("GET %s: learner %s at progress %v (listed: %t), after %v was answered", path, id, p, found, progress)
			}
		}
		l.mu.Lock()
		if l.rosters[path] == nil {
			l.rosters[path] = map[string]float64{}
		}
		for id, p := range got {
			l.rosters[path][id] = max(l.rosters[path][id], p)
		}
		l.mu.Unlock()
	}
	l.reads.Add(1)
	if phase == phaseRebuilding && l.phase.Load() == phaseRebuilding {
		l.during.Add(1)
	}
}

// write completes module k of courseID for learnerID, then reads the learner's dashboard at
// the write's position, which must show it; it returns the position.
func (l *readLoad) write(learnerID, courseID string, k int) uint64 {
	path := completePath(learnerID, courseID, fmt.Sprintf("m%d", k))
	resp, err := l.client.Post(l.base+path, "application/json", nil)
	if err != nil {
		l.problem("POST %s: %v", path, err)
		return 0
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var res result
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &res) != nil {
		l.problem("POST %s: %d %s", path, resp.StatusCode, body)
		return 0
	}
	l.writes.Add(1)
	l.mu.Lock()
	l.written[learnerID] = true
	l.mu.Unlock()
	dashboard := "/v1/learners/" + learnerID + "/dashboard?minPosition=" + strconv.FormatUint(res.Position, 10)
	_, body, ok := l.get(dashboard, true)
	if !ok {
		return res.Position
	}
	var d dashboardView
	if err := json.Unmarshal(body, &d); err != nil {
		l.problem("GET %s: %s: %v", dashboard, body, err)
		return res.Position
	}
	for _, e := range d.Enrollments {
		if e.CourseID == courseID && len(e.CompletedModules) != k {
			l.problem("GET %s after completing module %d: %v completed in %s", dashboard, k, e.CompletedModules, courseID)
		}
	}
	return res.Position
}

// liveColls returns the stored name of each read model of the live generations in store, by its
// plain name: "dashboards_g2" for "dashboards" once the learners' generation 2 is live.
func liveColls(t *testing.T, store *sqlitestore.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range []projections.Projector{projections.Courses{}, projections.Learners{}} {
		doc, err := store.Get(context.Background(), "_projections", p.Name())
		if err != nil {
			t.Fatalf("registration of %s: %v", p.Name(), err)
		}
		var reg struct {
			Live struct {
				N int `json:"n"`
			} `json:"live"`
		}
		if err := json.Unmarshal(doc.Body, &reg); err != nil || reg.Live.N == 0 {
			t.Fatalf("registration of %s: %s (%v)", p.Name(), doc.Body, err)
		}
		for _, c := range p.ReadModels() {
			out[c] = c
			// Generation 1 keeps the plain names; the store layout names the others so.
			if reg.Live.N > 1 {
				out[c] = fmt.Sprintf("%s_g%d", c, reg.Live.N)
			}
		}
	}
	return out
}

// compareReadModels wants every document of the live generations in got's read store equal to
// the one in want's, both built up to head.
func compareReadModels(t *testing.T, got, want string, head uint64) {
	t.Helper()
	open := func(dir string) *sqlitestore.Store {
		s, err := sqlitestore.Open(filepath.Join(dir, "read.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	gotStore, wantStore := open(got), open(want)
	gotColls, wantColls := liveColls(t, gotStore), liveColls(t, wantStore)
	// Bodies are compared as stored: both stores were written by the same code.
	readModels := slices.Sorted(maps.Keys(wantColls))
	wantDocs := readstoretest.Dump(t, wantStore, readModels, readstoretest.StoredAs(wantColls))
	gotDocs := readstoretest.Dump(t, gotStore, readModels, readstoretest.StoredAs(gotColls))
	if diff := cmp.Diff(wantDocs, gotDocs); diff != "" {
		t.Errorf("the live generations %v after the resumed rebuild differ from a clean build %v (-clean +rebuilt):\n%s",
			gotColls, wantColls, diff)
	}
	for _, p := range []projections.Projector{projections.Courses{}, projections.Learners{}} {
		name, first := p.Name(), p.ReadModels()[0]
		key := name + strings.TrimPrefix(gotColls[first], wantColls[first]) // the generation's suffix, as its collections have
		for _, st := range []struct {
			store *sqlitestore.Store
			key   string
		}{{gotStore, key}, {wantStore, name}} {
			if cp, err := st.store.Checkpoint(context.Background(), st.key); err != nil || cp != head {
				t.Errorf("checkpoint %s: %d (%v), want %d", st.key, cp, err, head)
			}
		}
	}
	if len(wantDocs) < 1000 {
		t.Errorf("the clean build holds %d documents; the comparison compared next to nothing", len(wantDocs))
	}
	t.Logf("%d documents equal to a clean build; live collections %v", len(wantDocs), gotColls)
}
