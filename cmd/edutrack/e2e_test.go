//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edutrack/edutrack/internal/testferret"
	"github.com/edutrack/edutrack/internal/testredis"
	"github.com/edutrack/edutrack/projections/documents"
)

// The multi-process test runs the built binary as production runs it, on loopback: one write
// process, projector processes sharing the lease, two read API processes, a real redis-server
// as the shared cache and FerretDB (in this process) as the read store. Every process shares one
// data dir: the write process writes events.db and the others follow it.
//
// It is Linux-only: each child gets Pdeathsig, so that a test binary killed by -timeout leaves
// no server running, and the fencing check pauses a process with SIGSTOP.

const (
	e2eLeaseTTL = 2 * time.Second
	// e2eTakeoverBound is far above the 4/3 of the TTL the lease promises: the rest is room for
	// -race on busy cores, not a speed claim.
	e2eTakeoverBound = 15 * time.Second
	// e2eReadDeadline bounds one read's retries of 503s and refused connections.
	e2eReadDeadline = 30 * time.Second
	// e2eModules is how many modules each course has.
	e2eModules = 8
)

// e2eProcess is one `edutrack serve` child process.
type e2eProcess struct {
	name   string
	cmd    *exec.Cmd
	logs   *syncBuffer
	base   string // http://host:port
	exited chan struct{}
	err    error // what Wait returned; read it once exited is closed
}

func (p *e2eProcess) pid() int { return p.cmd.Process.Pid }

func (p *e2eProcess) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill is kill -9: the process gets no chance to release its lease or finish a batch.
func (p *e2eProcess) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// waitLog waits until p has logged want; it fails the test if p exits first or bound passes.
func (p *e2eProcess) waitLog(t *testing.T, want string, bound time.Duration) {
	t.Helper()
	for start := time.Now(); !strings.Contains(p.logs.String(), want); time.Sleep(20 * time.Millisecond) {
		if !p.running() {
			t.Fatalf("%s exited (%v) before logging %q", p.name, p.err, want)
		}
		if time.Since(start) > bound {
			t.Fatalf("%s has not logged %q within %s", p.name, want, bound)
		}
	}
}

// e2eDeployment is the processes of one test and the engines they share.
type e2eDeployment struct {
	bin    string
	env    []string // every process's environment, but EDUTRACK_ROLES
	client *http.Client
	stats  e2eReadStats

	mu      sync.Mutex
	procs   []*e2eProcess // every process started, for the cleanup and the logs
	writer  *e2eProcess
	readers []*e2eProcess // the read processes now serving
}

// e2eReadStats counts how the reads went, for the log.
type e2eReadStats struct {
	mu                      sync.Mutex
	reads, retried503, down int
	longest                 time.Duration
}

func newE2EDeployment(t *testing.T) *e2eDeployment {
	began := time.Now()
	// buildEdutrack (projections_test.go) builds with -race when the test runs with it, so the
	// children are checked too.
	bin, err := buildEdutrack(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %s (race detector: %t)", bin, time.Since(began).Round(time.Millisecond), raceEnabled())
	redisAddr := testredis.Start(t)
	mongoURI := testferret.Start(t)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EDUTRACK_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		// Port 0: each process picks a free port and logs it, so no other process can take a
		// port between our choosing it and the child binding it.
		"EDUTRACK_HTTP_ADDR=127.0.0.1:0",
		"EDUTRACK_DATA_DIR="+t.TempDir(),
		"EDUTRACK_MONGO_URI="+mongoURI,
		"EDUTRACK_REDIS_URL=redis://"+redisAddr+"/0",
		// Every request acts as an admin, and one admin drives the whole load: the per-user
		// budget, shared through Redis, would throttle it.
		"EDUTRACK_AUTH=disabled",
		"EDUTRACK_RATE_LIMIT_IP=off",
		"EDUTRACK_RATE_LIMIT_USER=off",
		"EDUTRACK_LEASE_TTL="+e2eLeaseTTL.String(),
		"EDUTRACK_SHUTDOWN_TIMEOUT=10s",
		// The processes share the log and its anchor key; set here, the default in the user's
		// config dir, which is the real home's, is never reached.
		"EDUTRACK_ANCHOR_KEY="+testAnchorKey,
	)
	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	d := &e2eDeployment{bin: bin, env: env, client: &http.Client{Transport: transport, Timeout: 20 * time.Second}}
	// Registered after the engines' cleanups, so it runs first: no child outlives FerretDB.
	t.Cleanup(func() {
		for _, p := range d.all() {
			p.kill()
		}
		transport.CloseIdleConnections()
		if t.Failed() {
			for _, p := range d.all() {
				t.Logf("--- %s (pid %d, %v), last lines:\n%s", p.name, p.pid(), p.err, tail(p.logs.String(), 6000))
			}
		}
	})
	return d
}

func (d *e2eDeployment) all() []*e2eProcess {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.procs)
}

func (d *e2eDeployment) reader(i int) *e2eProcess {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.readers[i]
}

// envWith is the shared environment with roles, without the variables named in without.
func (d *e2eDeployment) envWith(roles string, without ...string) []string {
	env := []string{"EDUTRACK_ROLES=" + roles}
	for _, kv := range d.env {
		if name, _, _ := strings.Cut(kv, "="); !slices.Contains(without, name) {
			env = append(env, kv)
		}
	}
	return env
}

// start runs `edutrack serve` with env and returns once it answers /healthz.
func (d *e2eDeployment) start(t *testing.T, name string, env []string) *e2eProcess {
	t.Helper()
	cmd := exec.Command(d.bin, "serve")
	cmd.Env = env
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &e2eProcess{name: name, cmd: cmd, logs: logs, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for p.base == "" {
		if m := servingLine.FindStringSubmatch(logs.String()); m != nil {
			p.base = "http://" + m[1]
			break
		}
		if !p.running() {
			t.Fatalf("%s exited before serving: %v\n%s", name, p.err, logs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not serving after 60s:\n%s", name, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		a, err := d.do(t.Context(), http.MethodGet, p.base+"/healthz", nil)
		if err == nil && a.status == http.StatusOK {
			return p
		}
		if !p.running() || time.Now().After(deadline) {
			t.Fatalf("%s does not answer /healthz (%v, %d):\n%s", name, err, a.status, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// e2eAnswer is one HTTP answer.
type e2eAnswer struct {
	status     int
	retryAfter string
	body       []byte
}

func (d *e2eDeployment) do(ctx context.Context, method, url string, body any) (e2eAnswer, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return e2eAnswer{}, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return e2eAnswer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return e2eAnswer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return e2eAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: data}, err
}

// command sends a command to the write process and returns the log position its answer names:
// a read with minPosition at it must show the command. It is safe in any goroutine.
func (d *e2eDeployment) command(ctx context.Context, method, path string, body any) (uint64, error) {
	a, err := d.do(ctx, method, d.writer.base+path, body)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if a.status != http.StatusOK && a.status != http.StatusCreated {
		return 0, fmt.Errorf("%s %s: status %d: %s", method, path, a.status, a.body)
	}
	var res struct {
		Position uint64 `json:"position"`
	}
	if err := json.Unmarshal(a.body, &res); err != nil || res.Position == 0 {
		return 0, fmt.Errorf("%s %s: answer %s names no position (%v)", method, path, a.body, err)
	}
	return res.Position, nil
}

func (d *e2eDeployment) mustCommand(t *testing.T, method, path string, body any) uint64 {
	t.Helper()
	pos, err := d.command(t.Context(), method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

// read GETs path with minPosition=pos from whichever process target names at the time, as a
// client honouring Retry-After would: a 503 (the read models have not reached pos within the
// consistency wait, as while a standby projector takes over) is retried after Retry-After, and a
// failed connection (the process is being restarted) shortly after, until e2eReadDeadline. Any
// other status but 200 is an error.
func (d *e2eDeployment) read(ctx context.Context, target func() *e2eProcess, path string, pos uint64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, e2eReadDeadline)
	defer cancel()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	path += sep + "minPosition=" + strconv.FormatUint(pos, 10)
	start := time.Now()
	var last string
	for {
		p := target()
		a, err := d.do(ctx, http.MethodGet, p.base+path, nil)
		wait := 100 * time.Millisecond
		switch {
		case err != nil:
			last = err.Error()
			d.count(func(s *e2eReadStats) { s.down++ })
		case a.status == http.StatusOK:
			took := time.Since(start)
			d.count(func(s *e2eReadStats) { s.reads++; s.longest = max(s.longest, took) })
			return a.body, nil
		case a.status == http.StatusServiceUnavailable:
			last = fmt.Sprintf("503 %s", a.body)
			d.count(func(s *e2eReadStats) { s.retried503++ })
			if secs, err := strconv.Atoi(a.retryAfter); err == nil && secs > 0 {
				wait = time.Duration(secs) * time.Second
			}
		default:
			return nil, fmt.Errorf("%s: GET %s: status %d: %s", p.name, path, a.status, a.body)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: GET %s: no answer within %s; last: %s", p.name, path, e2eReadDeadline, last)
		case <-time.After(wait):
		}
	}
}

func (d *e2eDeployment) count(f func(*e2eReadStats)) {
	d.stats.mu.Lock()
	defer d.stats.mu.Unlock()
	f(&d.stats)
}

// readSame reads path at pos through every read process (and extra) at once, wants the same
// JSON from each, and returns it. At once, so that each read runs as soon as its process has
// reached pos, which is when a cache that lags the store would show.
func (d *e2eDeployment) readSame(t *testing.T, path string, pos uint64, extra ...*e2eProcess) []byte {
	t.Helper()
	targets := []func() *e2eProcess{func() *e2eProcess { return d.reader(0) }, func() *e2eProcess { return d.reader(1) }}
	for _, p := range extra {
		targets = append(targets, func() *e2eProcess { return p })
	}
	bodies, errs := make([][]byte, len(targets)), make([]error, len(targets))
	var wg sync.WaitGroup
	for i, target := range targets {
		wg.Go(func() { bodies[i], errs[i] = d.read(t.Context(), target, path, pos) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	first := targets[0]().name
	for i, body := range bodies[1:] {
		if diff := jsonDiff(bodies[0], body); diff != "" {
			other := targets[i+1]().name
			t.Errorf("GET %s at minPosition %d: %s and %s answer differently (-%s +%s):\n%s", path, pos, first, other, first, other, diff)
		}
	}
	return bodies[0]
}

func jsonDiff(a, b []byte) string {
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		return fmt.Sprintf("not JSON: %s", a)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		return fmt.Sprintf("not JSON: %s", b)
	}
	return cmp.Diff(va, vb)
}

// projectionStatuses is what GET /v1/admin/projections of projector process p says of each
// projection: its status and position.
func (d *e2eDeployment) projectionStatuses(t *testing.T, p *e2eProcess) map[string]e2eProjection {
	t.Helper()
	a, err := d.do(t.Context(), http.MethodGet, p.base+"/v1/admin/projections", nil)
	if err != nil || a.status != http.StatusOK {
		t.Fatalf("%s: GET /v1/admin/projections: %v, %d %s", p.name, err, a.status, a.body)
	}
	var list struct {
		Items []e2eProjection `json:"items"`
	}
	if err := json.Unmarshal(a.body, &list); err != nil {
		t.Fatalf("%s: GET /v1/admin/projections: %v in %s", p.name, err, a.body)
	}
	out := map[string]e2eProjection{}
	for _, it := range list.Items {
		out[it.Name] = it
	}
	return out
}

type e2eProjection struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	Position uint64 `json:"position"`
}

// e2eModel is what the acknowledged commands say the read models hold.
type e2eModel struct {
	courses   []string
	learners  []string
	published map[string]bool
	modules   map[string][]string
	enrolled  map[string][]string                   // course -> learners
	done      map[string]map[string]map[string]bool // course -> learner -> completed modules
	names     map[string]string                     // learner -> name
	renames   map[string]int                        // learner -> renames so far
}

func newE2EModel() *e2eModel {
	return &e2eModel{published: map[string]bool{}, modules: map[string][]string{}, enrolled: map[string][]string{},
		done: map[string]map[string]map[string]bool{}, names: map[string]string{}, renames: map[string]int{}}
}

func (m *e2eModel) completed(course, learner string) bool {
	return len(m.done[course][learner]) == len(m.modules[course])
}

// moduleDone is how many learners completed module of course.
func (m *e2eModel) moduleDone(course, module string) int {
	n := 0
	for _, mods := range m.done[course] {
		if mods[module] {
			n++
		}
	}
	return n
}

func (m *e2eModel) coursesOf(learner string) []string {
	var out []string
	for _, c := range m.courses {
		if slices.Contains(m.enrolled[c], learner) {
			out = append(out, c)
		}
	}
	return out
}

func (m *e2eModel) stats(c string) documents.CourseStats {
	s := documents.CourseStats{CourseID: c, Enrolled: len(m.enrolled[c]), ModuleCompletions: []documents.ModuleCompletions{}}
	for _, l := range m.enrolled[c] {
		if m.completed(c, l) {
			s.Completed++
		}
	}
	s.Active = s.Enrolled - s.Completed
	s.CompletionRate = documents.Rate(s.Completed, s.Enrolled)
	for _, mod := range m.modules[c] {
		s.ModuleCompletions = append(s.ModuleCompletions, documents.ModuleCompletions{ModuleID: mod, Completions: m.moduleDone(c, mod)})
	}
	return s
}

// e2eDetails is what the test checks of a course's details.
type e2eDetails struct {
	ID, Status                                    string
	Modules                                       []string
	ModuleCount, EnrollmentCount, CompletionCount int
}

func (m *e2eModel) details(c string) e2eDetails {
	s := m.stats(c)
	status := "draft"
	if m.published[c] {
		status = "published"
	}
	return e2eDetails{ID: c, Status: status, Modules: m.modules[c], ModuleCount: len(m.modules[c]),
		EnrollmentCount: s.Active + s.Completed, CompletionCount: s.Completed}
}

// e2eRosterRow is what the test checks of a roster item.
type e2eRosterRow struct {
	LearnerID, Name, Status string
	Progress                float64
	Completed               bool // has a completedAt
}

func (m *e2eModel) roster(c string) []e2eRosterRow {
	var rows []e2eRosterRow
	for _, l := range m.enrolled[c] {
		row := e2eRosterRow{LearnerID: l, Name: m.names[l], Status: "active",
			Progress: documents.Rate(len(m.done[c][l]), len(m.modules[c]))}
		if m.completed(c, l) {
			row.Status, row.Completed = "completed", true
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b e2eRosterRow) int { return strings.Compare(a.LearnerID, b.LearnerID) })
	return rows
}

// e2eCatalogRow is what the test checks of a catalog item.
type e2eCatalogRow struct {
	ID                           string
	ModuleCount, EnrollmentCount int
}

func (m *e2eModel) catalog() []e2eCatalogRow {
	var rows []e2eCatalogRow
	for _, c := range m.courses {
		if m.published[c] {
			d := m.details(c)
			rows = append(rows, e2eCatalogRow{ID: c, ModuleCount: d.ModuleCount, EnrollmentCount: d.EnrollmentCount})
		}
	}
	slices.SortFunc(rows, func(a, b e2eCatalogRow) int { return strings.Compare(a.ID, b.ID) })
	return rows
}

func decodeDetails(t *testing.T, body []byte) e2eDetails {
	t.Helper()
	var d documents.CourseDetail
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("course details %s: %v", body, err)
	}
	out := e2eDetails{ID: d.ID, Status: d.Status, ModuleCount: d.ModuleCount, EnrollmentCount: d.EnrollmentCount,
		CompletionCount: d.CompletionCount}
	for _, mod := range d.Modules {
		out.Modules = append(out.Modules, mod.ID)
	}
	return out
}

func decodeRoster(body []byte) ([]e2eRosterRow, error) {
	var page struct {
		Items      []documents.RosterItem `json:"items"`
		NextCursor string                 `json:"nextCursor"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("roster %s: %w", body, err)
	}
	if page.NextCursor != "" {
		return nil, fmt.Errorf("roster of at most 8 learners has a next page: %s", body)
	}
	var rows []e2eRosterRow
	for _, it := range page.Items {
		rows = append(rows, e2eRosterRow{LearnerID: it.LearnerID, Name: it.Name, Status: it.Status, Progress: it.Progress,
			Completed: it.CompletedAt != nil})
	}
	slices.SortFunc(rows, func(a, b e2eRosterRow) int { return strings.Compare(a.LearnerID, b.LearnerID) })
	return rows, nil
}

// checkCourse reads course c's stats, details and roster at pos through every read process (and
// extra), wants the same from each, and compares them with the model. The stats come first:
// every command on a course changes them, and they are served from the cache.
func (d *e2eDeployment) checkCourse(t *testing.T, m *e2eModel, c string, pos uint64, extra ...*e2eProcess) {
	t.Helper()
	var s documents.CourseStats
	if body := d.readSame(t, "/v1/courses/"+c+"/stats", pos, extra...); json.Unmarshal(body, &s) != nil {
		t.Fatalf("stats of %s: %s", c, body)
	}
	if diff := cmp.Diff(m.stats(c), s, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("stats of %s at minPosition %d (-acknowledged +read):\n%s", c, pos, diff)
	}
	if diff := cmp.Diff(m.details(c), decodeDetails(t, d.readSame(t, "/v1/courses/"+c, pos, extra...)), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("details of %s at minPosition %d (-acknowledged +read):\n%s", c, pos, diff)
	}
	rows, err := decodeRoster(d.readSame(t, "/v1/courses/"+c+"/roster?limit=100", pos, extra...))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m.roster(c), rows, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("roster of %s at minPosition %d (-acknowledged +read):\n%s", c, pos, diff)
	}
}

// checkAll checks every course and the catalog at pos.
func (d *e2eDeployment) checkAll(t *testing.T, m *e2eModel, pos uint64, extra ...*e2eProcess) {
	t.Helper()
	for _, c := range m.courses {
		d.checkCourse(t, m, c, pos, extra...)
	}
	d.checkCatalog(t, m, pos, extra...)
}

func (d *e2eDeployment) checkCatalog(t *testing.T, m *e2eModel, pos uint64, extra ...*e2eProcess) {
	t.Helper()
	var page struct {
		Items []documents.CatalogItem `json:"items"`
	}
	if body := d.readSame(t, "/v1/courses?limit=100", pos, extra...); json.Unmarshal(body, &page) != nil {
		t.Fatalf("catalog: %s", body)
	}
	var got []e2eCatalogRow
	for _, it := range page.Items {
		got = append(got, e2eCatalogRow{ID: it.ID, ModuleCount: it.ModuleCount, EnrollmentCount: it.EnrollmentCount})
	}
	slices.SortFunc(got, func(a, b e2eCatalogRow) int { return strings.Compare(a.ID, b.ID) })
	if diff := cmp.Diff(m.catalog(), got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("catalog at minPosition %d (-acknowledged +read):\n%s", pos, diff)
	}
}

// e2eAck is one command acknowledged during the load, and what a read at its position must show
// at least: later commands may have moved the documents further.
type e2eAck struct {
	pos     uint64
	course  string // whose roster (and, for a completion, stats) the command changed
	learner string
	module  string // the module completed; empty for a rename
	// A completion: modules the learner had completed in the course, and learners who had
	// completed the module. A rename: the learner's rename count.
	learnerDone, moduleDone, rename int
}

// e2eAcks is the load's acknowledged commands.
type e2eAcks struct {
	mu      sync.Mutex
	list    []e2eAck
	claimed [2]int // per read process, how many of list it had when it last claimed one
}

// claim returns the latest command that read process i has not claimed yet, if any.
func (a *e2eAcks) claim(i int) (e2eAck, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.claimed[i] == len(a.list) {
		return e2eAck{}, false
	}
	a.claimed[i] = len(a.list)
	return a.list[len(a.list)-1], true
}

func (a *e2eAcks) add(x e2eAck) {
	a.mu.Lock()
	a.list = append(a.list, x)
	a.mu.Unlock()
}

func (a *e2eAcks) latest() (e2eAck, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.list) == 0 {
		return e2eAck{}, 0
	}
	return a.list[len(a.list)-1], len(a.list)
}

func e2eName(learner string, rename int) string {
	return fmt.Sprintf("Learner %s v%d", learner, rename)
}

// renameOf is the rename count in a name e2eName made.
func renameOf(name string) int {
	_, v, _ := strings.Cut(name, " v")
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

// verify reads what ack changed through target, at ack's position, and says what is older than
// the ack.
func (d *e2eDeployment) verify(ctx context.Context, target func() *e2eProcess, a e2eAck) error {
	if a.module != "" {
		// The stats, a cached document, first: right after the wait for the position is when a
		// cache that lags the store would show.
		body, err := d.read(ctx, target, "/v1/courses/"+a.course+"/stats", a.pos)
		if err != nil {
			return err
		}
		var s documents.CourseStats
		if err := json.Unmarshal(body, &s); err != nil {
			return fmt.Errorf("stats of %s: %w in %s", a.course, err, body)
		}
		done := -1
		for _, mc := range s.ModuleCompletions {
			if mc.ModuleID == a.module {
				done = mc.Completions
			}
		}
		if done < a.moduleDone {
			return fmt.Errorf("stats of %s at minPosition %d count %d completions of %s, older than the acknowledged %d",
				a.course, a.pos, done, a.module, a.moduleDone)
		}
	}
	body, err := d.read(ctx, target, "/v1/courses/"+a.course+"/roster?limit=100", a.pos)
	if err != nil {
		return err
	}
	rows, err := decodeRoster(body)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(rows, func(r e2eRosterRow) bool { return r.LearnerID == a.learner })
	switch {
	case i < 0:
		return fmt.Errorf("roster of %s at minPosition %d lacks %s: %s", a.course, a.pos, a.learner, body)
	case a.module == "" && renameOf(rows[i].Name) < a.rename:
		return fmt.Errorf("roster of %s at minPosition %d names %s %q, older than the acknowledged %q",
			a.course, a.pos, a.learner, rows[i].Name, e2eName(a.learner, a.rename))
	case a.module != "" && rows[i].Progress < documents.Rate(a.learnerDone, e2eModules):
		return fmt.Errorf("roster of %s at minPosition %d shows %s at progress %v, older than the acknowledged %v",
			a.course, a.pos, a.learner, rows[i].Progress, documents.Rate(a.learnerDone, e2eModules))
	}
	return nil
}

// TestMultiProcessDeployment drives commands at the write process and reads through the read
// processes at each command's position; kills the projector holding the lease and a read
// process under load, and pauses the next holder past its lease; and checks that every read
// process answers the same, that no acknowledged command is lost, and that the read models
// equal a build from scratch. Learner dashboards are not read: with authentication disabled
// every caller is an admin, whose read of a learner's records is a disclosure that a read
// process beside the embedded log cannot record (it answers 503); the rosters and the course
// stats show the same progress.
func TestMultiProcessDeployment(t *testing.T) {
	d := newE2EDeployment(t)
	m := newE2EModel()
	m.courses = []string{"go", "sql", "k8s"}
	for i := range 8 {
		m.learners = append(m.learners, fmt.Sprintf("l%d", i+1))
	}
	d.writer = d.start(t, "write", d.envWith("write"))
	var projector, standby *e2eProcess // the lease's holder and the one waiting
	var lastPos uint64

	ok := t.Run("a_second_projector_waits_while_the_first_holds_the_lease", func(t *testing.T) {
		projector = d.start(t, "project-1", d.envWith("project"))
		projector.waitLog(t, "projector lease acquired", 30*time.Second)
		standby = d.start(t, "project-2", d.envWith("project"))
		standby.waitLog(t, "another process holds the projector lease; waiting", 30*time.Second)
		if line := lastLine(standby.logs.String(), "waiting"); !strings.Contains(line, fmt.Sprintf("/%d/", projector.pid())) {
			t.Errorf("%s waits for a holder other than %s (pid %d): %s", standby.name, projector.name, projector.pid(), line)
		}
		if strings.Contains(standby.logs.String(), "projector lease acquired") {
			t.Fatalf("%s acquired the lease %s holds", standby.name, projector.name)
		}
		// The holder reports its projections running (once it has started them); the one
		// waiting, not started.
		for deadline := time.Now().Add(30 * time.Second); ; {
			st := d.projectionStatuses(t, projector)
			if st["courses"].Status == "running" && st["learners"].Status == "running" && st["snapshots"].Status == "running" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s, holding the lease, reports %v, want every projection running", projector.name, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
		waiting := d.projectionStatuses(t, standby)
		if len(waiting) != 3 {
			t.Errorf("%s lists %d projections, want 3 (courses, learners, snapshots): %v", standby.name, len(waiting), waiting)
		}
		for name, p := range waiting {
			if p.Status != "starting" {
				t.Errorf("%s, waiting for the lease, reports projection %s %q, want starting", standby.name, name, p.Status)
			}
		}
		readers := []*e2eProcess{d.start(t, "read-1", d.envWith("read")), d.start(t, "read-2", d.envWith("read"))}
		d.mu.Lock()
		d.readers = readers
		d.mu.Unlock()
	})
	if !ok {
		return
	}

	ok = t.Run("reads_at_a_command's_position_show_it_and_every_read_process_answers_the_same", func(t *testing.T) {
		start := time.Now()
		lastPos = d.mustCommand(t, "POST", "/v1/users", map[string]string{"id": "ins", "name": "Grace Hopper", "email": "grace@example.com", "role": "instructor"})
		for _, l := range m.learners {
			m.names[l] = e2eName(l, 0)
			lastPos = d.mustCommand(t, "POST", "/v1/users", map[string]string{"id": l, "name": m.names[l], "email": l + "@example.com", "role": "learner"})
		}
		// Each check reads at the position of the last command of a group that changed what it
		// reads.
		checks := 0
		for _, c := range m.courses {
			pos := d.mustCommand(t, "POST", "/v1/courses", map[string]string{"id": c, "title": "Course " + c, "description": "About " + c + ".",
				"category": "programming", "level": "beginner", "instructorId": "ins"})
			for i := range e2eModules {
				mod := fmt.Sprintf("m%d", i+1)
				pos = d.mustCommand(t, "POST", "/v1/courses/"+c+"/modules", map[string]string{"id": mod, "title": "Module " + mod})
				m.modules[c] = append(m.modules[c], mod)
			}
			d.checkCourse(t, m, c, pos)
			pos = d.mustCommand(t, "POST", "/v1/courses/"+c+"/publish", nil)
			m.published[c] = true
			d.checkCourse(t, m, c, pos)
			d.checkCatalog(t, m, pos)
			checks += 3
			lastPos = pos
		}
		// Each learner takes two courses and completes their first module of each.
		for i, l := range m.learners {
			for _, c := range []string{m.courses[i%3], m.courses[(i+1)%3]} {
				lastPos = d.mustCommand(t, "POST", "/v1/courses/"+c+"/enrollments", map[string]string{"learnerId": l})
				m.enrolled[c] = append(m.enrolled[c], l)
				if m.done[c] == nil {
					m.done[c] = map[string]map[string]bool{}
				}
				m.done[c][l] = map[string]bool{}
				lastPos = d.mustCommand(t, "POST", "/v1/learners/"+l+"/courses/"+c+"/modules/m1/complete", nil)
				m.done[c][l]["m1"] = true
			}
			for _, c := range []string{m.courses[i%3], m.courses[(i+1)%3]} {
				d.checkCourse(t, m, c, lastPos)
				checks++
			}
		}
		t.Logf("%d commands, %d checks through both read processes, in %s", lastPos, checks, time.Since(start).Round(time.Millisecond))
		// The waiting projector follows the read models meanwhile.
		deadline := time.Now().Add(10 * time.Second)
		for {
			st := d.projectionStatuses(t, standby)
			if st["courses"].Position >= lastPos && st["learners"].Position >= lastPos {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s, waiting, does not follow the read models to %d: %v", standby.name, lastPos, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if !ok {
		return
	}

	acks := &e2eAcks{}
	ok = t.Run("a_projector_and_a_read_process_killed_mid-load_lose_nothing", func(t *testing.T) {
		// What is left to complete, in an order of its own, with a learner's rename every fourth
		// command: a rename touches a learner's dashboard and every roster they are on.
		type completion struct{ course, learner, module string }
		var todo []completion
		for _, c := range m.courses {
			for _, l := range m.enrolled[c] {
				for _, mod := range m.modules[c][1:] {
					todo = append(todo, completion{c, l, mod})
				}
			}
		}
		rng := rand.New(rand.NewPCG(7, 11))
		rng.Shuffle(len(todo), func(i, j int) { todo[i], todo[j] = todo[j], todo[i] })
		d.count(func(s *e2eReadStats) { s.reads, s.retried503, s.down, s.longest = 0, 0, 0, 0 })

		stop := make(chan struct{})
		var wg sync.WaitGroup
		// halt stops the load and the readers, and waits for them: at the end, or when the
		// test fails first.
		halt := sync.OnceFunc(func() {
			close(stop)
			wg.Wait()
		})
		defer halt()
		// The load: one client sending commands to the write process one after another.
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var a e2eAck
				var err error
				if i%4 != 3 && len(todo) > 0 {
					x := todo[0]
					todo = todo[1:]
					a.pos, err = d.command(t.Context(), "POST", "/v1/learners/"+x.learner+"/courses/"+x.course+"/modules/"+x.module+"/complete", nil)
					m.done[x.course][x.learner][x.module] = true
					a.course, a.learner, a.module = x.course, x.learner, x.module
					a.learnerDone, a.moduleDone = len(m.done[x.course][x.learner]), m.moduleDone(x.course, x.module)
				} else {
					l := m.learners[(i/4)%len(m.learners)]
					m.renames[l]++
					m.names[l] = e2eName(l, m.renames[l])
					a.pos, err = d.command(t.Context(), "PATCH", "/v1/users/"+l, map[string]string{"name": m.names[l]})
					a.course, a.learner, a.rename = m.coursesOf(l)[(i/4/len(m.learners))%2], l, m.renames[l]
				}
				if err != nil {
					t.Errorf("load: %v", err)
					return
				}
				acks.add(a)
				// A steady load, not a flood: FerretDB, in the test process, serves every
				// process's reads and writes.
				time.Sleep(100 * time.Millisecond)
			}
		})
		// The readers: a few clients of each read process, each reading what the latest
		// acknowledged command that no other has taken changed, at its position.
		var verified [2]struct {
			sync.Mutex
			pos uint64 // the latest position checked
			n   int    // commands checked
		}
		for i := range 2 {
			for range 3 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						a, ok := acks.claim(i)
						if !ok {
							time.Sleep(10 * time.Millisecond)
							continue
						}
						if err := d.verify(t.Context(), func() *e2eProcess { return d.reader(i) }, a); err != nil {
							t.Errorf("read process %d: %v", i+1, err)
							return
						}
						verified[i].Lock()
						verified[i].pos = max(verified[i].pos, a.pos)
						verified[i].n++
						verified[i].Unlock()
					}
				})
			}
		}
		waitAcks := func(n int) uint64 {
			t.Helper()
			deadline := time.Now().Add(60 * time.Second)
			for {
				a, got := acks.latest()
				if got >= n {
					return a.pos
				}
				if t.Failed() || time.Now().After(deadline) {
					t.Fatalf("the load has %d commands acknowledged, want %d", got, n)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		waitAcks(30)

		// kill -9 the lease's holder and a read process while commands keep coming.
		killed := time.Now()
		projector.kill()
		d.reader(1).kill()
		restarted := d.start(t, "read-2-restarted", d.envWith("read"))
		d.mu.Lock()
		d.readers[1] = restarted
		d.mu.Unlock()
		standby.waitLog(t, "projector lease acquired", e2eTakeoverBound)
		takeover := time.Since(killed)
		t.Logf("%s took the lease over %s after %s was killed (TTL %s)", standby.name, takeover.Round(time.Millisecond), projector.name, e2eLeaseTTL)
		projector, standby = standby, d.start(t, "project-3", d.envWith("project"))
		standby.waitLog(t, "another process holds the projector lease; waiting", 30*time.Second)
		if line := lastLine(standby.logs.String(), "waiting"); !strings.Contains(line, fmt.Sprintf("/%d/", projector.pid())) {
			t.Errorf("%s waits for a holder other than %s (pid %d): %s", standby.name, projector.name, projector.pid(), line)
		}

		// Reads at the positions of commands acknowledged from now on succeed in both read
		// processes, the restarted one included.
		_, n := acks.latest()
		mark := waitAcks(n + 30)
		deadline := time.Now().Add(60 * time.Second)
		for {
			caughtUp := true
			for i := range verified {
				verified[i].Lock()
				caughtUp = caughtUp && verified[i].pos >= mark
				verified[i].Unlock()
			}
			if caughtUp {
				break
			}
			if t.Failed() || time.Now().After(deadline) {
				t.Fatalf("the read processes have not read at position %d within 60s", mark)
			}
			time.Sleep(10 * time.Millisecond)
		}
		halt()
		a, n := acks.latest()
		lastPos = a.pos
		d.count(func(s *e2eReadStats) {
			t.Logf("load: %d commands acknowledged up to position %d, of which the read processes checked %d and %d at their positions, "+
				"in %d reads (the longest %s, retries included) that retried %d answers 503 and %d failed connections",
				n, lastPos, verified[0].n, verified[1].n, s.reads, s.longest.Round(time.Millisecond), s.retried503, s.down)
		})
	})
	if !ok {
		return
	}

	ok = t.Run("every_acknowledged_command_is_reflected_in_every_read_process", func(t *testing.T) {
		d.checkAll(t, m, lastPos)
	})
	if !ok {
		return
	}

	ok = t.Run("a_projector_paused_past_its_lease_exits_on_resuming_and_the_read_models_stay_right", func(t *testing.T) {
		next := 0
		rename := func() {
			l := m.learners[next%len(m.learners)]
			next++
			m.renames[l]++
			m.names[l] = e2eName(l, m.renames[l])
			lastPos = d.mustCommand(t, "PATCH", "/v1/users/"+l, map[string]string{"name": m.names[l]})
		}
		if err := syscall.Kill(projector.pid(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		paused := time.Now()
		acquired := strings.Count(standby.logs.String(), "projector lease acquired")
		for strings.Count(standby.logs.String(), "projector lease acquired") == acquired {
			if !standby.running() || time.Since(paused) > e2eTakeoverBound {
				syscall.Kill(projector.pid(), syscall.SIGCONT)
				t.Fatalf("%s has not taken over within %s of %s pausing", standby.name, e2eTakeoverBound, projector.name)
			}
			rename()
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s took the lease over %s after %s paused", standby.name, time.Since(paused).Round(time.Millisecond), projector.name)
		if err := syscall.Kill(projector.pid(), syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		resumed := time.Now()
		select {
		case <-projector.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s still runs 30s after resuming without its lease", projector.name)
		}
		if projector.err == nil {
			t.Errorf("%s exited 0 after losing its lease, want an error", projector.name)
		}
		if line := lastLine(projector.logs.String(), "edutrack stopped on an error"); !strings.Contains(line, "lease") {
			t.Errorf("%s exited (%v) with %q, want an error about the lease", projector.name, projector.err, line)
		}
		t.Logf("%s exited %s after resuming: %s", projector.name, time.Since(resumed).Round(time.Millisecond),
			lastLine(projector.logs.String(), "edutrack stopped on an error"))
		projector, standby = standby, nil
		for range 5 {
			rename()
		}
		d.checkAll(t, m, lastPos)
	})
	if !ok {
		return
	}

	var scratch *e2eProcess
	ok = t.Run("the_read_models_equal_a_build_from_scratch", func(t *testing.T) {
		// A process of its own on the embedded read store and cache, following the same log.
		scratch = d.start(t, "from-scratch", d.envWith("project,read", "EDUTRACK_MONGO_URI", "EDUTRACK_REDIS_URL"))
		d.checkAll(t, m, lastPos, scratch)
	})
	if !ok {
		return
	}

	t.Run("every_process_stops_cleanly_on_SIGTERM_and_none_raced", func(t *testing.T) {
		survivors := []*e2eProcess{d.writer, projector, d.reader(0), d.reader(1), scratch}
		for _, p := range survivors {
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Errorf("SIGTERM %s: %v", p.name, err)
			}
		}
		for _, p := range survivors {
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("%s still runs 30s after SIGTERM", p.name)
			}
			if p.err != nil {
				t.Errorf("%s exited with %v:\n%s", p.name, p.err, tail(p.logs.String(), 3000))
			}
			for _, line := range strings.Split(p.logs.String(), "\n") {
				if strings.Contains(line, "level=ERROR") {
					t.Errorf("%s logged an error: %s", p.name, line)
				}
			}
		}
		for _, p := range d.all() {
			if strings.Contains(p.logs.String(), "WARNING: DATA RACE") {
				t.Errorf("%s reported a data race:\n%s", p.name, p.logs)
			}
		}
	})
}

// lastLine is the last line of logs that contains want.
func lastLine(logs, want string) string {
	lines := strings.Split(logs, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], want) {
			return lines[i]
		}
	}
	return ""
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
