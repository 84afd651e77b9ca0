package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/opsapi"
	"github.com/edutrack/edutrack/projections/readstore"
)

// schoolHistory appends a school's history to l: courses with modules, then learners who each
// enroll in one course and complete it. It returns the log's head.
func schoolHistory(t testing.TB, l *sqlitelog.Log, learners, courses, modules int) uint64 {
	t.Helper()
	codec, err := commands.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 9, 1, 9, 0, 0, 0, time.UTC)
	ctx := context.Background()
	appendAll := func(stream string, evs ...domain.Event) {
		data := make([]eventstore.EventData, len(evs))
		for i, e := range evs {
			typ, body, err := codec.Encode(e)
			if err != nil {
				t.Error(err)
				return
			}
			data[i] = eventstore.EventData{ID: uuid.New(), Type: typ, Data: body, Metadata: eventstore.Metadata{UserID: "seed"}}
		}
		if _, err := l.Append(ctx, stream, eventstore.NoStream, data); err != nil {
			t.Errorf("append to %s: %v", stream, err)
		}
	}
	appendAll("user-teacher", user.Registered{UserID: "teacher", Name: "Teacher", Email: "t@example.com", Role: domain.Instructor, At: at})
	for c := range courses {
		id := courseID(c)
		evs := []domain.Event{course.Created{CourseID: id, Title: fmt.Sprintf("Course number %d", c), Category: "cat",
			Level: course.LevelBeginner, InstructorID: "teacher", At: at}}
		for m := range modules {
			evs = append(evs, course.ModuleAdded{CourseID: id, ModuleID: moduleID(m), Title: "Module", At: at})
		}
		appendAll("course-"+id, append(evs, course.Published{CourseID: id, At: at})...)
	}
	// Learners append side by side, as they would, which also lets the log commit their appends
	// together instead of one fsync each.
	var wg sync.WaitGroup
	const workers = 16
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < learners; i += workers {
				id, cid := learnerID(i), courseID(i%courses)
				appendAll("user-"+id, user.Registered{UserID: id, Name: "Learner " + id, Email: id + "@example.com", Role: domain.Learner, At: at})
				evs := []domain.Event{learner.Enrolled{LearnerID: id, CourseID: cid, At: at}}
				for m := range modules {
					evs = append(evs, learner.ModuleCompleted{LearnerID: id, CourseID: cid, ModuleID: moduleID(m), At: at})
				}
				appendAll("learner-"+id, append(evs, learner.CourseCompleted{LearnerID: id, CourseID: cid, At: at})...)
			}
		}()
	}
	wg.Wait()
	head, err := l.Head(ctx)
	if err != nil || t.Failed() {
		t.Fatalf("seed the log: head %d, %v", head, err)
	}
	return head
}

func courseID(i int) string  { return fmt.Sprintf("c%03d", i) }
func learnerID(i int) string { return fmt.Sprintf("l%05d", i) }
func moduleID(i int) string  { return fmt.Sprintf("m%02d", i) }

// gatedLog holds back the log reads of a range of positions. The live generations follow the
// head of the log from the feed's window, and only a generation being built (or a projection
// resumed far behind) reads the log itself, so holding reads from behind the head pauses a
// rebuild, and nothing else, where a test wants.
type gatedLog struct {
	projections.Log

	mu       sync.Mutex
	from, to uint64        // a read after a position in [from, to) waits while held
	open     chan struct{} // nil while nothing is held
	afters   []uint64      // every read's position, in order
	held     int           // reads waiting now
}

func (g *gatedLog) hold(from, to uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.from, g.to, g.open = from, to, make(chan struct{})
}

func (g *gatedLog) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open != nil {
		close(g.open)
		g.open = nil
	}
}

func (g *gatedLog) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// reads returns the positions the reads started after, and forgets them.
func (g *gatedLog) reads() []uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.afters
	g.afters = nil
	return out
}

func (g *gatedLog) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.RecordedEvent, error) {
	g.mu.Lock()
	g.afters = append(g.afters, after)
	open := g.open
	held := open != nil && after >= g.from && after < g.to
	if held {
		g.held++
	}
	g.mu.Unlock()
	if held {
		defer func() { g.mu.Lock(); g.held--; g.mu.Unlock() }()
		select {
		case <-open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Log.ReadAll(ctx, after, limit)
}

// running is a Runner started by a test, with what the test reads of it.
type running struct {
	*projections.Runner
	positions *projections.Positions
	stop      func() // stops the runner and waits for Run to return; safe to call twice
	done      chan error
}

// startRunner starts a runner and waits until it runs.
func startRunner(t *testing.T, l projections.Log, store readstore.Store, c cache.Cache, opts projections.Options,
	projectors ...projections.Projector) *running {
	t.Helper()
	r := launch(t, l, store, c, opts, projectors...)
	r.waitRunning(t)
	return r
}

func (r *running) waitRunning(t *testing.T) {
	t.Helper()
	select {
	case <-r.Running():
	case err := <-r.done:
		t.Fatalf("runner stopped while starting: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("runner did not start")
	}
}

// launch starts a runner without waiting for it to run.
func launch(t *testing.T, l projections.Log, store readstore.Store, c cache.Cache, opts projections.Options,
	projectors ...projections.Projector) *running {
	t.Helper()
	codec, err := commands.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	if opts.RetryDelay == 0 {
		opts.RetryDelay = time.Millisecond
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 2
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("runner logs:\n%s", logs.String())
		}
	})
	positions := projections.NewPositions()
	r, err := projections.NewRunner(l, codec, store, c, positions, prometheus.NewRegistry(),
		slog.New(slog.NewTextHandler(logs, nil)), opts, projectors...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, exited := make(chan error, 1), make(chan struct{})
	go func() { done <- r.Run(ctx); close(exited) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			r.Close()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("runner: %v", err)
				}
			case <-exited:
			}
		})
	}
	t.Cleanup(stop)
	return &running{Runner: r, positions: positions, stop: stop, done: done}
}

// waitFor polls cond until it holds; the deadline only guards against a hang, and is long
// because the tests share two cores with others under the race detector.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *running) waitHead(t *testing.T, l projections.Log, names ...string) uint64 {
	t.Helper()
	head, err := l.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.positions.Wait(ctx, head, names...); err != nil {
		t.Fatalf("projections %v did not reach the head %d: %v (status %v)", names, head, err, r.Status())
	}
	return head
}

// scratch builds the read models of the whole log into a fresh store, in batches of another
// size than the runner under test uses, and returns them as dump does.
func scratch(t *testing.T, l *sqlitelog.Log, projectors ...projections.Projector) map[string]readstore.Doc {
	t.Helper()
	store := openStore(t)
	build(t, l, store, projectors...)
	return dump(t, store)
}

// build projects the whole log into store in big batches, then stops: a generation built
// quickly, for a test to start from.
func build(t *testing.T, l *sqlitelog.Log, store readstore.Store, projectors ...projections.Projector) {
	t.Helper()
	if len(projectors) == 0 {
		projectors = []projections.Projector{projections.Courses{}, projections.Learners{}}
	}
	var names []string
	for _, p := range projectors {
		names = append(names, p.Name())
	}
	r := startRunner(t, l, store, cache.NewMemory(100), projections.Options{BatchSize: 1000}, projectors...)
	r.waitHead(t, l, names...)
	r.stop()
}

// settle waits until name reports running, as it does just after the commit that reached the
// head, and returns its state.
func (r *running) settle(t *testing.T, name string) projections.State {
	t.Helper()
	waitFor(t, name+" reports running", func() bool { return r.Status()[name] == projections.StatusRunning })
	return r.state(t, name)
}

func (r *running) state(t *testing.T, name string) projections.State {
	t.Helper()
	st, err := r.State(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// registered is a projection's registration as the read store holds it.
type registered struct {
	Live    projections.Generation   `json:"live"`
	Build   *projections.Generation  `json:"build"`
	Retired []projections.Generation `json:"retired"`
	Last    int                      `json:"last"`
	Skips   []projections.Skip       `json:"skips"`
}

func registrationOf(t *testing.T, store readstore.Store, name string) (registered, readstore.Doc) {
	t.Helper()
	d, err := store.Get(context.Background(), "_projections", name)
	if err != nil {
		t.Fatalf("registration of %s: %v", name, err)
	}
	var reg registered
	if err := json.Unmarshal(d.Body, &reg); err != nil {
		t.Fatal(err)
	}
	return reg, d
}

// normal re-encodes a JSON body with sorted keys, to compare bodies written by different code.
func normal(body []byte) string {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return "invalid JSON: " + string(body)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// readThrough reads a document as the read API does: the cache under the live view's key
// first, else the live view, whose answer then fills the cache.
func readThrough(ctx context.Context, c cache.Cache, live *projections.Live, coll, id string) (cache.Entry, error) {
	key := live.CacheKey(coll, id)
	if e, ok := c.Get(ctx, key); ok {
		return e, nil
	}
	d, err := live.Get(ctx, coll, id)
	if err != nil {
		return cache.Entry{}, err
	}
	e := cache.Entry{Position: d.Position, Body: d.Body}
	c.Set(ctx, key, e)
	return e, nil
}

// failures collects what goroutines other than the test's find wrong.
type failures struct {
	mu   sync.Mutex
	list []string
	n    int
}

func (f *failures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if len(f.list) < 20 {
		f.list = append(f.list, fmt.Sprintf(format, args...))
	}
}

func (f *failures) report(t *testing.T, what string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n > 0 {
		t.Errorf("%d %s, the first:\n%s", f.n, what, strings.Join(f.list, "\n"))
	}
}

// monotonic remembers the latest position of each document one reader has seen.
type monotonic map[string]uint64

func (m monotonic) saw(fails *failures, how, coll, id string, pos uint64) {
	key := coll + "/" + id
	if pos < m[key] {
		fails.add("%s %s at position %d after it was shown at %d", how, key, pos, m[key])
	}
	m[key] = pos
}

// readLoad reads documents through live until stopped, checking that none is missing and none
// goes back: by id from the store, by id the way the read API does (cache first), and in
// listings. It counts its reads in reads.
func readLoad(t *testing.T, live *projections.Live, c cache.Cache, courses, learners []string, rosterOf string,
	rosterMin int, fails *failures, reads *atomic.Int64) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	byID := func(how string, get func(coll, id string) (uint64, []byte, error)) {
		defer wg.Done()
		seen := monotonic{}
		for i := 0; ctx.Err() == nil; i++ {
			for _, doc := range []readstore.Doc{{ID: courses[i%len(courses)]}, {ID: learners[(i*7)%len(learners)]}} {
				coll := documents.CourseDetails
				if strings.HasPrefix(doc.ID, "l") {
					coll = documents.Dashboards
				}
				pos, body, err := get(coll, doc.ID)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					fails.add("%s %s/%s: %v", how, coll, doc.ID, err)
					continue
				}
				var v struct {
					ID        string `json:"id"`
					LearnerID string `json:"learnerId"`
				}
				if err := json.Unmarshal(body, &v); err != nil || (v.ID != doc.ID && v.LearnerID != doc.ID) {
					fails.add("%s %s/%s: body %s", how, coll, doc.ID, body)
				}
				seen.saw(fails, how, coll, doc.ID, pos)
				reads.Add(1)
			}
			time.Sleep(2 * time.Millisecond) // on two cores, leave the projections time to run
		}
	}
	wg.Add(3)
	go byID("get", func(coll, id string) (uint64, []byte, error) {
		d, err := live.Get(ctx, coll, id)
		return d.Position, d.Body, err
	})
	go byID("read through the cache", func(coll, id string) (uint64, []byte, error) {
		e, err := readThrough(ctx, c, live, coll, id)
		return e.Position, e.Body, err
	})
	go func() {
		defer wg.Done()
		seen := monotonic{}
		rosterLen := rosterMin
		for ctx.Err() == nil {
			catalog, err := live.Find(ctx, readstore.Query{Coll: documents.Catalog, Eq: []readstore.Field{{Name: "status", Value: "published"}}})
			if ctx.Err() != nil {
				return
			}
			if err != nil || len(catalog) != len(courses) {
				fails.add("find the published catalog: %d entries, %v; want %d", len(catalog), err, len(courses))
			}
			for _, d := range catalog {
				seen.saw(fails, "find", documents.Catalog, d.ID, d.Position)
			}
			roster, err := live.Find(ctx, readstore.Query{Coll: documents.Rosters, Eq: []readstore.Field{{Name: "courseId", Value: rosterOf}},
				Sort: []readstore.Order{{Name: "enrolledAtN"}}})
			if ctx.Err() != nil {
				return
			}
			if err != nil || len(roster) < rosterLen {
				fails.add("find the roster of %s: %d entries, %v; it had %d", rosterOf, len(roster), err, rosterLen)
			}
			rosterLen = max(rosterLen, len(roster))
			for _, d := range roster {
				seen.saw(fails, "find", documents.Rosters, d.ID, d.Position)
			}
			reads.Add(2)
			time.Sleep(5 * time.Millisecond) // on two cores, leave the projections time to run
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop) // before the stores close, should the test end early
	return stop
}

// writeLoad sends commands, as users would, until stopped: new learners enroll and complete a
// module, seeded learners are renamed, and now and then a course, which rewrites the dashboards
// of its learners.
func writeLoad(t *testing.T, l *sqlitelog.Log, courses, learners int, fails *failures) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	clock := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	cmds, err := commands.New(l, func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			meta := func() commands.Meta { return commands.Meta{CommandID: uuid.NewString()} }
			check := func(what string, err error) {
				if err != nil && ctx.Err() == nil {
					fails.add("%s: %v", what, err)
				}
			}
			for i := 0; ctx.Err() == nil; i++ {
				id, cid := fmt.Sprintf("w%d-%04d", w, i), courseID((i+w)%courses)
				_, err := cmds.RegisterUser(ctx, meta(), commands.RegisterUser{ID: id, Name: "Writer " + id, Email: id + "@example.com", Role: "learner"})
				check("register "+id, err)
				_, err = cmds.EnrollStudent(ctx, meta(), commands.EnrollStudent{CourseID: cid, LearnerID: id})
				check("enroll "+id, err)
				_, err = cmds.CompleteModule(ctx, meta(), commands.CompleteModule{LearnerID: id, CourseID: cid, ModuleID: moduleID(0)})
				check("complete a module", err)
				name := fmt.Sprintf("Learner %d renamed by %d", i, w)
				_, err = cmds.UpdateUser(ctx, meta(), commands.UpdateUser{ID: learnerID((i*13 + w) % learners), Name: &name})
				check("rename a learner", err)
				if w == 0 && i%10 == 0 {
					title := fmt.Sprintf("Course number %d, edition %d", i%courses, i)
					_, err = cmds.UpdateCourseDetails(ctx, meta(), commands.UpdateCourseDetails{ID: cid, Patch: coursePatch(title)})
					check("rename "+cid, err)
				}
				time.Sleep(20 * time.Millisecond) // on two cores, leave the projections time to run
			}
		}()
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop) // before the log closes, should the test end early
	return stop
}

func TestRebuildUnderReadLoad(t *testing.T) {
	const nLearners, nCourses = 240, 4
	w := newWorld(t)
	head0 := schoolHistory(t, w.log, nLearners, nCourses, 4)
	log := &gatedLog{Log: w.log}
	store := openStore(t)
	build(t, w.log, store) // generation 1
	c := cache.NewMemory(1 << 20)
	// A reader that picked the old generation just before the switch may still query it a
	// moment after: the grace covers that moment on a loaded machine.
	const grace = 500 * time.Millisecond
	rr := startRunner(t, log, store, c, projections.Options{BatchSize: 50, DropGrace: grace, ProgressEvery: time.Hour},
		projections.Courses{}, projections.Learners{})
	rr.waitHead(t, w.log, "courses", "learners")
	live := rr.Live()

	var courses, learners []string
	for i := range nCourses {
		courses = append(courses, courseID(i))
	}
	for i := range nLearners {
		learners = append(learners, learnerID(i))
	}
	rosterMin := nLearners / nCourses
	var readFails, writeFails failures
	var reads atomic.Int64
	stopReading := readLoad(t, live, c, courses, learners, courseID(0), rosterMin, &readFails, &reads)
	stopWriting := writeLoad(t, w.log, nCourses, nLearners, &writeFails)

	// The rebuilds wait at their first read until the readers have read the old generation for
	// a while, so the switch certainly happens under reads.
	log.hold(0, head0)
	ctx := context.Background()
	for _, name := range []string{"courses", "learners"} {
		st, err := rr.Rebuild(ctx, name)
		if err != nil {
			t.Fatalf("rebuild %s: %v", name, err)
		}
		if st.Rebuild == nil || st.Rebuild.Generation != 2 || st.Generation != 1 {
			t.Fatalf("rebuild of %s answered %+v; want generation 2 building beside 1", name, st)
		}
	}
	waitFor(t, "both builds wait at their first read", func() bool { return log.waiting() == 2 })
	before := reads.Load()
	waitFor(t, "the readers have read during the rebuild", func() bool { return reads.Load() > before+200 })
	if g := live.Generation("courses"); g.N != 1 {
		t.Fatalf("the live generation of courses is %d while the rebuild waits; want 1", g.N)
	}
	log.release()
	waitFor(t, "both rebuilt generations are live", func() bool {
		return live.Generation("courses").N == 2 && live.Generation("learners").N == 2
	})
	promotedAt := max(rr.positions.Position("courses"), rr.positions.Position("learners"))
	after := reads.Load()
	waitFor(t, "the readers have read the new generations", func() bool { return reads.Load() > after+200 })
	// Keep writing after the switch, so the new generations also take live writes.
	waitFor(t, "the writers have written after the switch", func() bool {
		h, _ := w.log.Head(ctx)
		return h > promotedAt+20
	})
	stopWriting()
	writeFails.report(t, "commands failed")
	waitFor(t, "the old generations are dropped", func() bool {
		a, _ := registrationOf(t, store, "courses")
		b, _ := registrationOf(t, store, "learners")
		return len(a.Retired) == 0 && len(b.Retired) == 0
	})
	dropped := reads.Load()
	waitFor(t, "the readers have read after the drop", func() bool { return reads.Load() > dropped+200 })
	stopReading()
	head := rr.waitHead(t, w.log, "courses", "learners")

	t.Run("no_read_fails_nor_shows_a_document_older_than_one_shown_before", func(t *testing.T) {
		readFails.report(t, "reads went wrong")
		if reads.Load() == 0 {
			t.Error("nothing was read")
		}
	})
	t.Run("the_rebuilt_generations_are_live_and_registered", func(t *testing.T) {
		for _, name := range []string{"courses", "learners"} {
			v := versionOf(name)
			if g := live.Generation(name); g != (projections.Generation{N: 2, Version: v}) {
				t.Errorf("live generation of %s = %+v, want 2 of version %d", name, g, v)
			}
			reg, _ := registrationOf(t, store, name)
			if want := (registered{Live: projections.Generation{N: 2, Version: v}, Last: 2}); !cmp.Equal(want, reg, cmpopts.EquateEmpty()) {
				t.Errorf("registration of %s (-want +got):\n%s", name, cmp.Diff(want, reg, cmpopts.EquateEmpty()))
			}
			st := rr.settle(t, name)
			if st.Generation != 2 || st.Rebuild != nil || st.Position != head || st.Status != projections.StatusRunning {
				t.Errorf("state of %s = %+v; want generation 2 running at %d, no rebuild", name, st, head)
			}
			if cp, _ := store.Checkpoint(ctx, name+"_g2"); cp != head {
				t.Errorf("checkpoint of %s_g2 = %d, want %d", name, cp, head)
			}
		}
	})
	t.Run("the_old_generations_are_dropped_after_the_grace", func(t *testing.T) {
		for _, coll := range readModels {
			docs, err := store.Find(ctx, readstore.Query{Coll: coll})
			if err != nil || len(docs) != 0 {
				t.Errorf("the old %s holds %d documents (%v); want it dropped", coll, len(docs), err)
			}
		}
		if _, err := store.Get(ctx, documents.Dashboards, learners[0]); !errors.Is(err, readstore.ErrNotFound) {
			t.Errorf("get from the old dashboards: %v, want not found", err)
		}
		for _, name := range []string{"courses", "learners"} {
			if cp, err := store.Checkpoint(ctx, name); cp != 0 || err != nil {
				t.Errorf("checkpoint of the old %s = %d, %v; want 0", name, cp, err)
			}
		}
	})
	t.Run("the_rebuilt_read_models_equal_a_build_from_scratch", func(t *testing.T) {
		want, got := scratch(t, w.log), dump(t, live)
		if len(want) < nLearners {
			t.Fatalf("the build from scratch holds only %d documents", len(want))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("rebuilt read models differ from a build from scratch (-want +got):\n%s", diff)
		}
	})
	t.Run("the_cache_serves_the_new_generation_under_its_own_keys", func(t *testing.T) {
		public := map[string]bool{documents.CourseDetails: true, documents.Stats: true, documents.Dashboards: true}
		written := 0
		for key, d := range dump(t, live) {
			coll, _, _ := strings.Cut(key, "/")
			if !public[coll] {
				continue
			}
			newKey := live.CacheKey(coll, d.ID)
			if newKey != projections.CacheKey(coll+"_g2", d.ID) {
				t.Fatalf("cache key of %s is %q; want the key of generation 2", key, newKey)
			}
			e, ok := c.Get(ctx, newKey)
			if d.Position > promotedAt {
				// Written by the new generation after it went live: its commit warmed the cache.
				written++
				if !ok {
					t.Errorf("%s, written at %d after the switch at %d, is not cached under %s", key, d.Position, promotedAt, newKey)
					continue
				}
			}
			if ok && (e.Position != d.Position || normal(e.Body) != string(d.Body)) {
				t.Errorf("cache under %s holds %s at %d; the live generation holds %s at %d", newKey, e.Body, e.Position, d.Body, d.Position)
			}
			got, err := readThrough(ctx, c, live, coll, d.ID)
			if err != nil || got.Position != d.Position || normal(got.Body) != string(d.Body) {
				t.Errorf("the read API path serves %s at %d (%v); want the live generation's document at %d", key, got.Position, err, d.Position)
			}
		}
		if written == 0 {
			t.Error("no document was written after the switch; the writers stopped too early to tell")
		}
	})
}

// coursesV2 is the next code version of the courses projector. It marks the course details it
// builds, so a document shows which generation served it.
// versionOf is the version of the real projector named name.
func versionOf(name string) int {
	if name == "learners" {
		return projections.Learners{}.Version()
	}
	return projections.Courses{}.Version()
}

// coursesVersion is the version of the courses projector, which coursesV2 follows.
var coursesVersion = projections.Courses{}.Version()

type coursesV2 struct{ projections.Courses }

const v2Mark = "[v2] "

func (coursesV2) Version() int { return coursesVersion + 1 }

func (p coursesV2) Apply(ctx context.Context, tx *projections.Tx, e projections.Event) error {
	if err := p.Courses.Apply(ctx, tx, e); err != nil {
		return err
	}
	var id, description string
	switch ev := e.Data.(type) {
	case course.Created:
		id, description = ev.CourseID, ev.Description
	case course.DetailsUpdated:
		id, description = ev.CourseID, ev.Description
	default:
		return nil
	}
	var d documents.CourseDetail
	if ok, err := tx.Get(ctx, documents.CourseDetails, id, &d); err != nil || !ok {
		return err
	}
	d.Description = v2Mark + description
	return tx.Put(documents.CourseDetails, id, d)
}

func detailOf(t *testing.T, body []byte) documents.CourseDetail {
	t.Helper()
	var d documents.CourseDetail
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestVersionChangeBuildsTheNewVersionBesideTheOld(t *testing.T) {
	const nCourses = 6
	w := newWorld(t)
	head0 := schoolHistory(t, w.log, 120, nCourses, 3)
	store := openStore(t)
	build(t, w.log, store) // generation 1, by version 1, then the process stops
	ctx := context.Background()
	v1 := map[string]readstore.Doc{}
	for i := range nCourses {
		d, err := store.Get(ctx, documents.CourseDetails, courseID(i))
		if err != nil {
			t.Fatal(err)
		}
		v1[d.ID] = d
	}

	log := &gatedLog{Log: w.log}
	log.hold(0, head0) // the new version's build waits at its first read until the test has looked
	c := cache.NewMemory(1 << 16)
	rr := startRunner(t, log, store, c, projections.Options{BatchSize: 50, DropGrace: 100 * time.Millisecond, ProgressEvery: time.Hour},
		coursesV2{}, projections.Learners{})
	live := rr.Live()
	waitFor(t, "the new version's build waits at its first read", func() bool { return log.waiting() == 1 })
	// A change while the new version builds: the old generation, frozen, does not take it.
	renamed := "Course number 0, renamed during the deploy"
	if _, err := w.cmds.UpdateCourseDetails(ctx, w.meta(), commands.UpdateCourseDetails{ID: courseID(0), Patch: coursePatch(renamed)}); err != nil {
		t.Fatal(err)
	}
	rr.waitHead(t, w.log, "learners")

	t.Run("while_the_new_version_builds_the_old_generation_serves_frozen", func(t *testing.T) {
		if g := live.Generation("courses"); g != (projections.Generation{N: 1, Version: coursesVersion}) {
			t.Errorf("live generation = %+v, want 1 of version %d", g, coursesVersion)
		}
		st := rr.state(t, "courses")
		if st.Generation != 1 || st.Version != coursesVersion || !st.Frozen || st.Status != projections.StatusRebuilding ||
			st.Rebuild == nil || st.Rebuild.Generation != 2 || st.Rebuild.Version != coursesVersion+1 || st.Position != head0 {
			t.Errorf("state = %+v (rebuild %+v); want generation 1 frozen at %d, generation 2 of version 2 building", st, st.Rebuild, head0)
		}
		reg, _ := registrationOf(t, store, "courses")
		want := registered{Live: projections.Generation{N: 1, Version: coursesVersion}, Build: &projections.Generation{N: 2, Version: coursesVersion + 1}, Last: 2}
		if diff := cmp.Diff(want, reg, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("registration (-want +got):\n%s", diff)
		}
		for id, old := range v1 {
			// Through the read API's path, which fills the cache with generation 1's entries.
			e, err := readThrough(ctx, c, live, documents.CourseDetails, id)
			if err != nil || e.Position != old.Position || normal(e.Body) != normal(old.Body) {
				t.Errorf("course %s is served at %d (%v); want generation 1's document at %d, unchanged", id, e.Position, err, old.Position)
			}
		}
	})

	log.release()
	waitFor(t, "the new version is live", func() bool { return live.Generation("courses").N == 2 })

	t.Run("once_caught_up_the_new_version_serves_from_a_warm_cache", func(t *testing.T) {
		if g := live.Generation("courses"); g != (projections.Generation{N: 2, Version: coursesVersion + 1}) {
			t.Errorf("live generation = %+v, want 2 of version 2", g)
		}
		for id := range v1 {
			// Warmed by the switch, before anyone read it.
			e, ok := c.Get(ctx, live.CacheKey(documents.CourseDetails, id))
			if !ok {
				t.Errorf("course %s is not in the cache under generation 2's key after the switch", id)
			} else if d := detailOf(t, e.Body); !strings.HasPrefix(d.Description, v2Mark) {
				t.Errorf("the cache holds course %s under generation 2's key without version 2's mark: %s", id, e.Body)
			}
			got, err := readThrough(ctx, c, live, documents.CourseDetails, id)
			if err != nil {
				t.Fatal(err)
			}
			if d := detailOf(t, got.Body); !strings.HasPrefix(d.Description, v2Mark) {
				t.Errorf("the read API path serves generation 1's course %s after the switch: %s", id, got.Body)
			}
		}
		// Generation 2's cache is trusted from the switch on, here and in the processes that
		// follow: entries in its keys from before (an interrupted switch's) are not.
		fence, known := rr.positions.CacheFence("courses")
		if !known || fence < head0 {
			t.Errorf("fence after the switch = %d, %v; want at least the switch's position %d", fence, known, head0)
		}
		for id := range v1 {
			if e, _ := c.Get(ctx, live.CacheKey(documents.CourseDetails, id)); e.ValidAsOf() < fence {
				t.Errorf("course %s was warmed known current as of %d, before the fence %d", id, e.ValidAsOf(), fence)
			}
		}
		if f, _ := followed(t, store, fence).CacheFence("courses"); f < fence {
			t.Errorf("a follower's fence = %d; want at least %d", f, fence)
		}
	})
	rr.waitHead(t, w.log, "courses", "learners")
	t.Run("the_new_version_takes_the_changes_the_old_one_missed", func(t *testing.T) {
		d, err := live.Get(ctx, documents.CourseDetails, courseID(0))
		if err != nil {
			t.Fatal(err)
		}
		if got := detailOf(t, d.Body); got.Title != renamed || !strings.HasPrefix(got.Description, v2Mark) {
			t.Errorf("course %s = %q %q, want %q by version 2", courseID(0), got.Title, got.Description, renamed)
		}
	})
	waitFor(t, "the old generation is dropped", func() bool {
		reg, _ := registrationOf(t, store, "courses")
		return len(reg.Retired) == 0
	})
	t.Run("the_registration_records_version_2_and_the_old_generation_is_dropped", func(t *testing.T) {
		reg, _ := registrationOf(t, store, "courses")
		if want := (registered{Live: projections.Generation{N: 2, Version: coursesVersion + 1}, Last: 2}); !cmp.Equal(want, reg, cmpopts.EquateEmpty()) {
			t.Errorf("registration (-want +got):\n%s", cmp.Diff(want, reg, cmpopts.EquateEmpty()))
		}
		if docs, err := store.Find(ctx, readstore.Query{Coll: documents.CourseDetails}); err != nil || len(docs) != 0 {
			t.Errorf("generation 1's course details hold %d documents (%v); want them dropped", len(docs), err)
		}
		if cp, _ := store.Checkpoint(ctx, "courses"); cp != 0 {
			t.Errorf("generation 1's checkpoint = %d, want 0", cp)
		}
		if g := live.Generation("learners"); g.N != 1 {
			t.Errorf("learners, whose version did not change, are at generation %d; want 1", g.N)
		}
	})
	t.Run("the_new_version_equals_its_build_from_scratch", func(t *testing.T) {
		if diff := cmp.Diff(scratch(t, w.log, coursesV2{}, projections.Learners{}), dump(t, live)); diff != "" {
			t.Errorf("version 2's read models differ from its build from scratch (-want +got):\n%s", diff)
		}
	})
	rr.stop()

	t.Run("starting_again_with_the_same_version_does_not_rebuild", func(t *testing.T) {
		again := startRunner(t, w.log, store, cache.NewMemory(100), projections.Options{BatchSize: 50}, coursesV2{}, projections.Learners{})
		defer again.stop()
		st := again.state(t, "courses")
		if st.Generation != 2 || st.Version != coursesVersion+1 || st.Rebuild != nil || st.Frozen {
			t.Errorf("state = %+v; want generation 2 of version 2 live, nothing building", st)
		}
		if g := again.Live().Generation("courses"); g != (projections.Generation{N: 2, Version: coursesVersion + 1}) {
			t.Errorf("live generation = %+v, want 2 of version 2", g)
		}
		if reg, _ := registrationOf(t, store, "courses"); reg.Last != 2 || reg.Build != nil {
			t.Errorf("registration = %+v; want no new generation", reg)
		}
	})
}

func TestRebuildResumesAfterACrash(t *testing.T) {
	w := newWorld(t)
	head0 := schoolHistory(t, w.log, 200, 5, 4)
	store := openStore(t)
	build(t, w.log, store) // generation 1
	log := &gatedLog{Log: w.log}
	opts := projections.Options{BatchSize: 50, DropGrace: time.Hour, ProgressEvery: time.Hour}
	first := startRunner(t, log, store, cache.NewMemory(1000), opts, projections.Courses{}, projections.Learners{})
	first.waitHead(t, w.log, "courses", "learners")
	ctx := context.Background()

	// The build reads the first half of the log, then waits: the crash comes mid-rebuild.
	stopAt := head0 / 2
	log.hold(stopAt, head0)
	if _, err := first.Rebuild(ctx, "courses"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the build waits halfway", func() bool { return log.waiting() == 1 })
	st := first.state(t, "courses")
	if st.Rebuild == nil || st.Rebuild.Position < stopAt || st.Rebuild.Position >= head0 || st.Generation != 1 {
		t.Fatalf("state before the crash = %+v (rebuild %+v); want generation 2 built past %d, not promoted", st, st.Rebuild, stopAt)
	}
	crashedAt := st.Rebuild.Position
	first.stop()
	if cp, _ := store.Checkpoint(ctx, "courses_g2"); cp != crashedAt {
		t.Fatalf("checkpoint of the build after the crash = %d, want %d", cp, crashedAt)
	}
	log.reads()

	// The restarted runner is held while it makes the build's indexes, early in its start, so
	// that the operations are asked in the middle of it.
	starting := &startGate{Store: store, entered: make(chan struct{}), open: make(chan struct{})}
	second := launch(t, log, starting, cache.NewMemory(1000), opts, projections.Courses{}, projections.Learners{})
	t.Run("the_build_resumes_from_its_checkpoint", func(t *testing.T) {
		select {
		case <-starting.entered:
		case <-time.After(60 * time.Second):
			t.Fatal("the restart never made the build's indexes")
		}
		if st := second.state(t, "courses"); st.Rebuild != nil && st.Rebuild.Position < crashedAt {
			t.Errorf("while the restart starts, the rebuild shows at %d; want it at its checkpoint %d, not starting over", st.Rebuild.Position, crashedAt)
		}
		close(starting.open)
		second.waitRunning(t)
		st := second.state(t, "courses")
		if st.Generation != 1 || st.Rebuild == nil || st.Rebuild.Generation != 2 || st.Rebuild.Position != crashedAt {
			t.Fatalf("state after the restart = %+v (rebuild %+v); want generation 2 building from %d", st, st.Rebuild, crashedAt)
		}
		waitFor(t, "the build reads the log again", func() bool { return log.waiting() == 1 })
		for _, after := range log.reads() {
			if after < crashedAt {
				t.Errorf("after the restart the build read the log after %d; want nothing before its checkpoint %d", after, crashedAt)
			}
		}
		if g := second.Live().Generation("courses"); g.N != 1 {
			t.Errorf("live generation %d while the build resumes; want 1", g.N)
		}
	})
	log.release()
	waitFor(t, "the resumed build is live", func() bool { return second.Live().Generation("courses").N == 2 })
	second.waitHead(t, w.log, "courses", "learners")
	t.Run("the_resumed_build_equals_a_build_from_scratch", func(t *testing.T) {
		if diff := cmp.Diff(scratch(t, w.log), dump(t, second.Live())); diff != "" {
			t.Errorf("read models after a resumed rebuild differ from a build from scratch (-want +got):\n%s", diff)
		}
	})
	// The process stops again within the grace: the replaced generation is not dropped yet.
	second.stop()
	if reg, _ := registrationOf(t, store, "courses"); len(reg.Retired) != 1 || reg.Retired[0].N != 1 {
		t.Fatalf("registration after the switch = %+v; want generation 1 retired, not dropped yet", reg)
	}
	t.Run("a_replaced_generation_left_by_a_stop_is_dropped_at_the_next_start", func(t *testing.T) {
		third := startRunner(t, w.log, store, cache.NewMemory(1000), opts, projections.Courses{}, projections.Learners{})
		defer third.stop()
		reg, _ := registrationOf(t, store, "courses")
		if want := (registered{Live: projections.Generation{N: 2, Version: coursesVersion}, Last: 2}); !cmp.Equal(want, reg, cmpopts.EquateEmpty()) {
			t.Errorf("registration (-want +got):\n%s", cmp.Diff(want, reg, cmpopts.EquateEmpty()))
		}
		if docs, _ := store.Find(ctx, readstore.Query{Coll: documents.Catalog}); len(docs) != 0 {
			t.Errorf("generation 1's catalog holds %d documents; want it dropped", len(docs))
		}
		if cp, _ := store.Checkpoint(ctx, "courses"); cp != 0 {
			t.Errorf("generation 1's checkpoint = %d, want 0", cp)
		}
		if st := third.state(t, "courses"); st.Generation != 2 || st.Rebuild != nil {
			t.Errorf("state = %+v; want generation 2, nothing building", st)
		}
	})
}

// startGate holds the first making of a generation-2 index until open is closed: a runner
// caught in the middle of its start.
type startGate struct {
	readstore.Store
	once    sync.Once
	entered chan struct{}
	open    chan struct{}
}

func (s *startGate) EnsureIndexes(ctx context.Context, indexes []readstore.Index) error {
	for _, ix := range indexes {
		if strings.HasSuffix(ix.Coll, "_g2") {
			s.once.Do(func() { close(s.entered) })
			select {
			case <-s.open:
			case <-ctx.Done():
				return ctx.Err()
			}
			break
		}
	}
	return s.Store.EnsureIndexes(ctx, indexes)
}

// poisoned cannot apply the publication of one course: the event an operator skips.
type poisoned struct {
	projections.Courses
	course string
}

func (poisoned) Name() string { return "poisoned" }

func (p poisoned) Apply(ctx context.Context, tx *projections.Tx, e projections.Event) error {
	if ev, ok := e.Data.(course.Published); ok && ev.CourseID == p.course {
		return errors.New("cannot publish " + ev.CourseID)
	}
	return p.Courses.Apply(ctx, tx, e)
}

// flaky fails on the publication of course go until its bug is fixed.
type flaky struct {
	projections.Courses
	fixed    *atomic.Bool
	attempts *atomic.Int32
}

func (flaky) Name() string { return "flaky" }

func (p flaky) Apply(ctx context.Context, tx *projections.Tx, e projections.Event) error {
	if ev, ok := e.Data.(course.Published); ok && ev.CourseID == "go" {
		p.attempts.Add(1)
		if !p.fixed.Load() {
			return errors.New("bug: cannot publish go")
		}
	}
	return p.Courses.Apply(ctx, tx, e)
}

// publication finds the event that published a course.
func publication(t *testing.T, l *sqlitelog.Log, courseID string) eventstore.RecordedEvent {
	t.Helper()
	all, err := l.ReadAll(context.Background(), 0, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.Type == "course.published.v1" && e.StreamID == "course-"+courseID {
			return e
		}
	}
	t.Fatalf("course %s was never published", courseID)
	return eventstore.RecordedEvent{}
}

func (r *running) waitStalled(t *testing.T, name string) {
	t.Helper()
	waitFor(t, name+" stalls", func() bool { return r.Status()[name] == projections.StatusStalled })
}

func TestSkip(t *testing.T) {
	w := newWorld(t)
	w.scenario()
	store := openStore(t)
	rr := startRunner(t, w.log, store, cache.NewMemory(100), projections.Options{BatchSize: 100}, poisoned{course: "art"})
	ctx := context.Background()
	poison := publication(t, w.log, "art")
	rr.waitStalled(t, "poisoned")
	st := rr.state(t, "poisoned")
	if st.Status != projections.StatusStalled || st.DeadLetters != 1 || st.Position != poison.Position-1 {
		t.Fatalf("state = %+v; want stalled before %d with one dead letter", st, poison.Position)
	}

	t.Run("a_skip_at_another_position_is_refused_and_changes_nothing", func(t *testing.T) {
		_, before := registrationOf(t, store, "poisoned")
		for _, pos := range []uint64{poison.Position - 1, poison.Position + 1} {
			if err := rr.Skip(ctx, "poisoned", pos, "wrong event"); !errors.Is(err, projections.ErrNotStalled) {
				t.Errorf("skip at %d: %v, want ErrNotStalled", pos, err)
			}
		}
		if err := rr.Skip(ctx, "nobody", poison.Position, ""); !errors.Is(err, projections.ErrUnknownProjection) {
			t.Errorf("skip in an unknown projection: %v, want ErrUnknownProjection", err)
		}
		if _, after := registrationOf(t, store, "poisoned"); !cmp.Equal(before, after) {
			t.Errorf("a refused skip changed the registration from %s to %s", before.Body, after.Body)
		}
		time.Sleep(20 * time.Millisecond) // a wrongly resumed projection would move now
		got := rr.state(t, "poisoned")
		if got.Status != projections.StatusStalled || got.DeadLetters != 1 || len(got.Skipped) != 0 || got.Position != poison.Position-1 {
			t.Errorf("state after a refused skip = %+v; want it stalled as before", got)
		}
	})
	t.Run("a_skip_at_the_stalled_position_is_recorded_and_the_projection_goes_on", func(t *testing.T) {
		if err := rr.Skip(ctx, "poisoned", poison.Position, "art is published by hand"); err != nil {
			t.Fatal(err)
		}
		head := rr.waitHead(t, w.log, "poisoned")
		st := rr.settle(t, "poisoned")
		want := []projections.Skip{{Version: coursesVersion, Position: poison.Position, EventID: poison.ID.String(), EventType: "course.published.v1",
			Error: "cannot publish art", Reason: "art is published by hand"}}
		if diff := cmp.Diff(want, st.Skipped, cmpopts.IgnoreFields(projections.Skip{}, "At")); diff != "" {
			t.Errorf("skipped (-want +got):\n%s", diff)
		}
		if st.Status != projections.StatusRunning || st.Position != head || st.DeadLetters != 0 {
			t.Errorf("state = %+v; want running at %d with no pending dead letter", st, head)
		}
		if cp, _ := store.Checkpoint(ctx, "poisoned"); cp != head {
			t.Errorf("checkpoint = %d, want %d", cp, head)
		}
		letters, err := rr.DeadLetters(ctx, "poisoned")
		if err != nil || len(letters) != 1 || letters[0].Position != poison.Position || letters[0].State != "skipped" || letters[0].Generation != 1 {
			t.Errorf("dead letters = %+v, %v; want the publication of art, skipped", letters, err)
		}
		if reg, _ := registrationOf(t, store, "poisoned"); len(reg.Skips) != 1 || reg.Skips[0].Position != poison.Position {
			t.Errorf("registration skips = %+v; want the skip recorded in the store", reg.Skips)
		}
		art := get[documents.CourseDetail](t, store, documents.CourseDetails, "art")
		goCourse := get[documents.CourseDetail](t, store, documents.CourseDetails, "go")
		if art.Status != "draft" || goCourse.Status != "published" {
			t.Errorf("art is %s and go %s; want the skipped publication of art not applied, and go's applied", art.Status, goCourse.Status)
		}
	})
	t.Run("a_rebuild_by_the_same_code_passes_over_the_skipped_event", func(t *testing.T) {
		if _, err := rr.Rebuild(ctx, "poisoned"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the rebuild is live", func() bool { return rr.Live().Generation("poisoned").N == 2 })
		head := rr.waitHead(t, w.log, "poisoned")
		if st := rr.settle(t, "poisoned"); st.Status != projections.StatusRunning || st.Position != head || st.DeadLetters != 0 {
			t.Errorf("state = %+v; want generation 2 running at %d", st, head)
		}
		if letters, _ := store.DeadLetters(ctx, "poisoned_g2"); len(letters) != 0 {
			t.Errorf("generation 2 recorded dead letters %+v; want the skip to hold for it", letters)
		}
		d, err := rr.Live().Get(ctx, documents.CourseDetails, "art")
		if err != nil || detailOf(t, d.Body).Status != "draft" {
			t.Errorf("art in generation 2: %s, %v; want the draft", d.Body, err)
		}
	})
}

func TestRetry(t *testing.T) {
	w := newWorld(t)
	w.scenario()
	store := openStore(t)
	p := flaky{fixed: &atomic.Bool{}, attempts: &atomic.Int32{}}
	rr := startRunner(t, w.log, store, cache.NewMemory(100), projections.Options{BatchSize: 100}, p)
	ctx := context.Background()
	poison := publication(t, w.log, "go")
	rr.waitStalled(t, "flaky")

	t.Run("a_retry_before_the_fix_stalls_again", func(t *testing.T) {
		tried := p.attempts.Load()
		if err := rr.Retry(ctx, "flaky"); err != nil {
			t.Fatal(err)
		}
		rr.waitStalled(t, "flaky")
		if p.attempts.Load() <= tried {
			t.Error("the retry did not send the event again")
		}
		st := rr.state(t, "flaky")
		if st.DeadLetters != 1 || st.Position != poison.Position-1 {
			t.Errorf("state = %+v; want stalled before %d with one dead letter", st, poison.Position)
		}
	})
	t.Run("a_retry_after_the_fix_applies_the_event", func(t *testing.T) {
		p.fixed.Store(true)
		if err := rr.Retry(ctx, "flaky"); err != nil {
			t.Fatal(err)
		}
		head := rr.waitHead(t, w.log, "flaky")
		if st := rr.settle(t, "flaky"); st.Status != projections.StatusRunning || st.Position != head || st.DeadLetters != 0 || len(st.Skipped) != 0 {
			t.Errorf("state = %+v; want running at %d, nothing pending nor skipped", st, head)
		}
		letters, err := rr.DeadLetters(ctx, "flaky")
		if err != nil || len(letters) != 1 || letters[0].Position != poison.Position || letters[0].State != "applied" {
			t.Errorf("dead letters = %+v, %v; want the publication of go, applied", letters, err)
		}
		if d := get[documents.CourseDetail](t, store, documents.CourseDetails, "go"); d.Status != "published" {
			t.Errorf("go is %s, want published", d.Status)
		}
	})
	t.Run("a_retry_or_skip_when_not_stalled_is_refused", func(t *testing.T) {
		if err := rr.Retry(ctx, "flaky"); !errors.Is(err, projections.ErrNotStalled) {
			t.Errorf("retry: %v, want ErrNotStalled", err)
		}
		if err := rr.Skip(ctx, "flaky", poison.Position, ""); !errors.Is(err, projections.ErrNotStalled) {
			t.Errorf("skip: %v, want ErrNotStalled", err)
		}
		if err := rr.Retry(ctx, "nobody"); !errors.Is(err, projections.ErrUnknownProjection) {
			t.Errorf("retry of an unknown projection: %v, want ErrUnknownProjection", err)
		}
	})
}

func TestRebuildIsRefused(t *testing.T) {
	w := newWorld(t)
	head0 := schoolHistory(t, w.log, 40, 3, 2)
	store := openStore(t)
	ctx := context.Background()
	codec, _ := commands.NewCodec()
	idle, err := projections.NewRunner(w.log, codec, store, cache.NewMemory(100), projections.NewPositions(), prometheus.NewRegistry(),
		slog.New(slog.DiscardHandler), projections.Options{}, projections.Courses{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("while_the_projections_are_not_running", func(t *testing.T) {
		if _, err := idle.Rebuild(ctx, "courses"); !errors.Is(err, projections.ErrNotRunning) {
			t.Errorf("rebuild: %v, want ErrNotRunning", err)
		}
	})

	log := &gatedLog{Log: w.log}
	rr := startRunner(t, log, store, cache.NewMemory(100), projections.Options{BatchSize: 10}, projections.Courses{})
	rr.waitHead(t, w.log, "courses")
	log.hold(0, head0)
	if _, err := rr.Rebuild(ctx, "courses"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the build waits", func() bool { return log.waiting() == 1 })
	t.Run("while_a_rebuild_is_under_way", func(t *testing.T) {
		_, before := registrationOf(t, store, "courses")
		if _, err := rr.Rebuild(ctx, "courses"); !errors.Is(err, projections.ErrRebuilding) {
			t.Errorf("second rebuild: %v, want ErrRebuilding", err)
		}
		if _, after := registrationOf(t, store, "courses"); !cmp.Equal(before, after) {
			t.Errorf("a refused rebuild changed the registration from %s to %s", before.Body, after.Body)
		}
	})
	t.Run("of_an_unknown_projection", func(t *testing.T) {
		if _, err := rr.Rebuild(ctx, "nobody"); !errors.Is(err, projections.ErrUnknownProjection) {
			t.Errorf("rebuild: %v, want ErrUnknownProjection", err)
		}
	})
	log.release()
	waitFor(t, "the rebuild is live", func() bool { return rr.Live().Generation("courses").N == 2 })
}

func TestRebuildCanBeWatchedAndIsRefusedAgainWhileItStarts(t *testing.T) {
	w := newWorld(t)
	schoolHistory(t, w.log, 20, 2, 2)
	store := openStore(t)
	starting := &startGate{Store: store, entered: make(chan struct{}), open: make(chan struct{})}
	rr := startRunner(t, w.log, starting, cache.NewMemory(100), projections.Options{BatchSize: 10}, projections.Courses{})
	rr.waitHead(t, w.log, "courses")
	ctx := context.Background()

	rebuilt := make(chan error, 1)
	go func() {
		_, err := rr.Rebuild(ctx, "courses")
		rebuilt <- err
	}()
	<-starting.entered // the rebuild is held while it makes the new generation's indexes
	if _, err := rr.Rebuild(ctx, "courses"); !errors.Is(err, projections.ErrRebuilding) {
		t.Errorf("a second rebuild while the first starts: %v, want ErrRebuilding", err)
	}
	// Meanwhile an operator looks at the projection, once, and then does nothing the rebuild
	// could synchronise with: under the race detector, a look into a generation that is still
	// being set up is reported when the rebuild goes on setting it up.
	finish := make(chan struct{})
	looked := make(chan error, 1)
	go func() {
		_, err := rr.State(ctx, "courses")
		<-finish
		looked <- err
	}()
	time.Sleep(200 * time.Millisecond) // time for the look; unlike a channel, a sleep orders nothing
	close(starting.open)
	if err := <-rebuilt; err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	close(finish)
	if err := <-looked; err != nil {
		t.Errorf("state while the rebuild started: %v", err)
	}
	waitFor(t, "the rebuild is live", func() bool { return rr.Live().Generation("courses").N == 2 })
}

// call sends one request to the admin routes and decodes the answer into out.
func call(t *testing.T, h http.Handler, method, path, contentType, body string, out any) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s answered %d %q: %v", method, path, rec.Code, rec.Body, err)
		}
	}
	return rec
}

type problemBody struct {
	Status int    `json:"status"`
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// wantProblem checks that a request was answered with a problem document.
func wantProblem(t *testing.T, h http.Handler, method, path, contentType, body string, status int, field string) {
	t.Helper()
	var p problemBody
	rec := call(t, h, method, path, contentType, body, &p)
	if rec.Code != status || p.Status != status || p.Field != field || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s %s %s: %d %s %+v; want a %d problem naming field %q", method, path, body, rec.Code,
			rec.Header().Get("Content-Type"), p, status, field)
	}
}

func TestAdminRoutes(t *testing.T) {
	w := newWorld(t)
	head0 := schoolHistory(t, w.log, 40, 3, 2)
	store := openStore(t)
	log := &gatedLog{Log: w.log}
	rr := startRunner(t, log, store, cache.NewMemory(100), projections.Options{BatchSize: 10},
		poisoned{course: courseID(1)}, projections.Learners{})
	router := chi.NewRouter()
	opsapi.Routes(router, rr.Runner, slog.New(slog.DiscardHandler))
	rr.waitHead(t, w.log, "learners")
	rr.waitStalled(t, "poisoned")
	poison := publication(t, w.log, courseID(1))
	const base = "/v1/admin/projections"

	t.Run("the_list_names_every_projection", func(t *testing.T) {
		for _, path := range []string{base, base + "/"} {
			var list struct{ Items []projections.State }
			rec := call(t, router, http.MethodGet, path, "", "", &list)
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("GET %s: %d %v", path, rec.Code, rec.Header())
			}
			if len(list.Items) != 2 || list.Items[0].Name != "poisoned" || list.Items[1].Name != "learners" ||
				list.Items[0].Status != projections.StatusStalled || list.Items[0].DeadLetters != 1 {
				t.Errorf("GET %s items = %+v", path, list.Items)
			}
		}
	})
	t.Run("a_rebuild_is_accepted_once", func(t *testing.T) {
		log.hold(0, head0)
		var st projections.State
		rec := call(t, router, http.MethodPost, base+"/learners/rebuild", "", "", &st)
		if rec.Code != http.StatusAccepted || rec.Header().Get("Location") != base+"/learners" {
			t.Errorf("POST rebuild: %d, Location %q", rec.Code, rec.Header().Get("Location"))
		}
		if st.Name != "learners" || st.Rebuild == nil || st.Rebuild.Generation != 2 {
			t.Errorf("POST rebuild answered %+v; want generation 2 building", st)
		}
		waitFor(t, "the build waits", func() bool { return log.waiting() == 1 })
		wantProblem(t, router, http.MethodPost, base+"/learners/rebuild", "", "", http.StatusConflict, "")
		var got projections.State
		call(t, router, http.MethodGet, base+"/learners", "", "", &got)
		if got.Rebuild == nil || got.Rebuild.Generation != 2 || got.Generation != 1 {
			t.Errorf("GET learners = %+v; want generation 2 still building beside 1", got)
		}
	})
	t.Run("an_unknown_projection_is_not_found", func(t *testing.T) {
		wantProblem(t, router, http.MethodPost, base+"/nobody/rebuild", "", "", http.StatusNotFound, "")
		wantProblem(t, router, http.MethodGet, base+"/nobody", "", "", http.StatusNotFound, "")
		wantProblem(t, router, http.MethodPost, base+"/nobody/retry", "", "", http.StatusNotFound, "")
		wantProblem(t, router, http.MethodPost, base+"/nobody/skip", "application/json", `{"position":3}`, http.StatusNotFound, "")
	})
	t.Run("a_bad_skip_is_refused_and_changes_nothing", func(t *testing.T) {
		_, before := registrationOf(t, store, "poisoned")
		skip := base + "/poisoned/skip"
		pos := poison.Position
		wantProblem(t, router, http.MethodPost, skip, "application/json", fmt.Sprintf(`{"position":%d,"reasn":"typo"}`, pos), http.StatusBadRequest, "reasn")
		wantProblem(t, router, http.MethodPost, skip, "application/json", `{"reason":"no position"}`, http.StatusBadRequest, "position")
		wantProblem(t, router, http.MethodPost, skip, "application/json", `{"position":0}`, http.StatusBadRequest, "position")
		wantProblem(t, router, http.MethodPost, skip, "application/json", `{"position":"12"}`, http.StatusBadRequest, "position")
		wantProblem(t, router, http.MethodPost, skip, "application/json", fmt.Sprintf(`{"position":%d,"reason":%q}`, pos, strings.Repeat("x", 1001)),
			http.StatusBadRequest, "reason")
		wantProblem(t, router, http.MethodPost, skip, "text/plain", fmt.Sprintf(`{"position":%d}`, pos), http.StatusUnsupportedMediaType, "")
		wantProblem(t, router, http.MethodPost, skip, "application/json", fmt.Sprintf(`{"position":%d}`, pos+1), http.StatusConflict, "")
		wantProblem(t, router, http.MethodPost, base+"/learners/retry", "", "", http.StatusConflict, "")
		if _, after := registrationOf(t, store, "poisoned"); !cmp.Equal(before, after) {
			t.Errorf("a refused skip changed the registration from %s to %s", before.Body, after.Body)
		}
		var letters struct{ Items []projections.DeadLetter }
		call(t, router, http.MethodGet, base+"/poisoned/dead-letters", "", "", &letters)
		if len(letters.Items) != 1 || letters.Items[0].Position != pos || letters.Items[0].State != "pending" {
			t.Errorf("dead letters = %+v; want the poison event, pending", letters.Items)
		}
		if st := rr.state(t, "poisoned"); st.Status != projections.StatusStalled || len(st.Skipped) != 0 {
			t.Errorf("state = %+v; want it stalled, nothing skipped", st)
		}
	})
	// The rebuild ends before the skip: the skipped projection, far behind, reads the log range
	// the gate holds.
	log.release()
	waitFor(t, "the rebuild is live", func() bool { return rr.Live().Generation("learners").N == 2 })
	t.Run("a_skip_at_the_stalled_position_is_done", func(t *testing.T) {
		var st projections.State
		body, _ := json.Marshal(map[string]any{"position": poison.Position, "reason": "published by hand"})
		rec := call(t, router, http.MethodPost, base+"/poisoned/skip", "application/json; charset=utf-8", string(body), &st)
		if rec.Code != http.StatusOK || len(st.Skipped) != 1 || st.Skipped[0].Position != poison.Position || st.Skipped[0].Reason != "published by hand" {
			t.Errorf("POST skip: %d %+v", rec.Code, st)
		}
		rr.waitHead(t, w.log, "poisoned")
	})
}
