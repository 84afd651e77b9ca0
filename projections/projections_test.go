package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/readstoretest"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type world struct {
	t      *testing.T
	log    *sqlitelog.Log
	cmds   *commands.Handler
	clock  time.Time
	nextID int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	l, err := sqlitelog.Open(filepath.Join(t.TempDir(), "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	w := &world{t: t, log: l, clock: time.Date(2026, 9, 1, 9, 0, 0, 0, time.UTC)}
	w.cmds, err = commands.New(l, func() time.Time { w.clock = w.clock.Add(time.Minute); return w.clock }, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) meta() commands.Meta {
	w.nextID++
	return commands.Meta{CommandID: "cmd-" + string(rune('a'+w.nextID%26)) + time.Now().Format("150405.000000000")}
}

// ok fails the test when a command failed.
func (w *world) ok(_ any, err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatalf("command: %v", err)
	}
}

// scenario drives the commands every read model reacts to.
func (w *world) scenario() {
	ctx := context.Background()
	w.ok(w.cmds.RegisterUser(ctx, w.meta(), commands.RegisterUser{ID: "ada", Name: "Ada", Email: "ada@example.com", Role: "instructor"}))
	w.ok(w.cmds.RegisterUser(ctx, w.meta(), commands.RegisterUser{ID: "bob", Name: "Bob", Email: "bob@example.com", Role: "learner"}))
	w.ok(w.cmds.RegisterUser(ctx, w.meta(), commands.RegisterUser{ID: "cy", Name: "Cy", Email: "cy@example.com", Role: "learner"}))
	for _, id := range []string{"go", "art"} {
		w.ok(w.cmds.CreateCourse(ctx, w.meta(), commands.CreateCourse{ID: id, Title: "Intro to " + id, Category: "cat-" + id, Level: "beginner", InstructorID: "ada"}))
		for _, m := range []string{"m1", "m2"} {
			w.ok(w.cmds.AddModule(ctx, w.meta(), commands.AddModule{CourseID: id, ModuleID: m, Title: "Module " + m}))
		}
		w.ok(w.cmds.PublishCourse(ctx, w.meta(), commands.PublishCourse{ID: id}))
	}
	w.ok(w.cmds.EnrollStudent(ctx, w.meta(), commands.EnrollStudent{CourseID: "go", LearnerID: "bob"}))
	w.ok(w.cmds.EnrollStudent(ctx, w.meta(), commands.EnrollStudent{CourseID: "go", LearnerID: "cy"}))
	w.ok(w.cmds.EnrollStudent(ctx, w.meta(), commands.EnrollStudent{CourseID: "art", LearnerID: "bob"}))
	w.ok(w.cmds.CompleteModule(ctx, w.meta(), commands.CompleteModule{LearnerID: "bob", CourseID: "go", ModuleID: "m1"}))
	w.ok(w.cmds.CompleteModule(ctx, w.meta(), commands.CompleteModule{LearnerID: "bob", CourseID: "go", ModuleID: "m2"}))
	w.ok(w.cmds.IssueCertificate(ctx, w.meta(), commands.IssueCertificate{LearnerID: "bob", CourseID: "go", CertificateID: "cert-bob-go",
		BlobKey: "certificates/cert-bob-go/" + certSum + ".pdf", SHA256: certSum}))
	w.ok(w.cmds.CompleteModule(ctx, w.meta(), commands.CompleteModule{LearnerID: "cy", CourseID: "go", ModuleID: "m1"}))
	w.ok(w.cmds.WithdrawEnrollment(ctx, w.meta(), commands.WithdrawEnrollment{CourseID: "art", LearnerID: "bob"}))
	w.ok(w.cmds.EnrollStudent(ctx, w.meta(), commands.EnrollStudent{CourseID: "art", LearnerID: "bob"}))
	w.ok(w.cmds.WithdrawEnrollment(ctx, w.meta(), commands.WithdrawEnrollment{CourseID: "art", LearnerID: "bob"}))
	name := "Ada Lovelace"
	w.ok(w.cmds.UpdateUser(ctx, w.meta(), commands.UpdateUser{ID: "ada", Name: &name}))
	bob := "Robert"
	w.ok(w.cmds.UpdateUser(ctx, w.meta(), commands.UpdateUser{ID: "bob", Name: &bob}))
	title := "Go, properly"
	w.ok(w.cmds.UpdateCourseDetails(ctx, w.meta(), commands.UpdateCourseDetails{ID: "go", Patch: coursePatch(title)}))
	w.ok(w.cmds.AddModule(ctx, w.meta(), commands.AddModule{CourseID: "go", ModuleID: "m3", Title: "Module m3"}))
}

// certSum is the digest of bob's certificate of go.
var certSum = strings.Repeat("5e", 32)

// run projects the whole log into store, then stops.
func run(t *testing.T, l *sqlitelog.Log, store readstore.Store, c cache.Cache, projectors ...projections.Projector) *projections.Positions {
	t.Helper()
	codec, err := commands.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	positions := projections.NewPositions()
	if len(projectors) == 0 {
		projectors = []projections.Projector{projections.Courses{}, projections.Learners{}}
	}
	var logs syncBuffer
	r, err := projections.NewRunner(l, codec, store, c, positions, prometheus.NewRegistry(),
		slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), projections.Options{BatchSize: 7, RetryDelay: time.Millisecond, MaxRetries: 2}, projectors...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	head, _ := l.Head(ctx)
	wait, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	names := make([]string, len(projectors))
	for i, p := range projectors {
		names[i] = p.Name()
	}
	var runErr error
	werr := positions.Wait(wait, head, names...)
	if werr != nil {
		select {
		case runErr = <-done:
			t.Errorf("runner stopped early: %v", runErr)
		default:
		}
	}
	cancel()
	r.Close()
	if werr == nil {
		if err := <-done; err != nil {
			t.Fatalf("runner: %v", err)
		}
	}
	if werr != nil {
		var buf strings.Builder
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		dl, _ := store.DeadLetters(context.Background(), names[0])
		t.Fatalf("projections did not reach the head %d (at %d and %d, status %v, dead letters %v): %v\n%s\nLOGS:\n%s", head,
			positions.Position(names[0]), positions.Position(names[len(names)-1]), r.Status(), dl, werr, buf.String(), logs.String())
	}
	return positions
}

func openStore(t *testing.T) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func get[T any](t *testing.T, s readstore.Store, coll, id string) T {
	t.Helper()
	d, err := s.Get(context.Background(), coll, id)
	if err != nil {
		t.Fatalf("get %s/%s: %v", coll, id, err)
	}
	var v T
	if err := json.Unmarshal(d.Body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReadModels(t *testing.T) {
	w := newWorld(t)
	w.scenario()
	store := openStore(t)
	run(t, w.log, store, cache.NewMemory(100))

	t.Run("the_catalog_shows_the_instructor_by_their_current_name", func(t *testing.T) {
		e := get[documents.CatalogEntry](t, store, documents.Catalog, "go")
		if e.Instructor.Name != "Ada Lovelace" || e.Title != "Go, properly" || e.Status != "published" {
			t.Errorf("catalog entry = %+v", e.CatalogItem)
		}
		if e.ModuleCount != 3 || e.EnrollmentCount != 2 {
			t.Errorf("go has %d modules and %d enrollments, want 3 and 2", e.ModuleCount, e.EnrollmentCount)
		}
		if diff := cmp.Diff([]string{"go", "properly"}, e.TitleWords); diff != "" {
			t.Errorf("title words (-want +got):\n%s", diff)
		}
	})
	t.Run("course_stats_count_each_status_and_module", func(t *testing.T) {
		got := get[documents.CourseStats](t, store, documents.Stats, "go")
		want := documents.CourseStats{CourseID: "go", Enrolled: 2, Active: 1, Completed: 1, CompletionRate: 0.5,
			ModuleCompletions: []documents.ModuleCompletions{{ModuleID: "m1", Completions: 2}, {ModuleID: "m2", Completions: 1}, {ModuleID: "m3"}}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stats of go (-want +got):\n%s", diff)
		}
		art := get[documents.CourseStats](t, store, documents.Stats, "art")
		if art.Enrolled != 1 || art.Withdrawn != 1 || art.Active != 0 {
			t.Errorf("stats of art = %+v, want 1 enrolled, withdrawn", art)
		}
	})
	t.Run("the_dashboard_follows_renames_titles_and_new_modules", func(t *testing.T) {
		d := get[documents.Dashboard](t, store, documents.Dashboards, "bob")
		if d.Name != "Robert" || len(d.Enrollments) != 2 {
			t.Fatalf("dashboard of bob = %+v", d)
		}
		sort.Slice(d.Enrollments, func(i, j int) bool { return d.Enrollments[i].CourseID < d.Enrollments[j].CourseID })
		art, goCourse := d.Enrollments[0], d.Enrollments[1]
		if goCourse.Title != "Go, properly" || goCourse.Status != "completed" || !slices.Equal(goCourse.CompletedModules, []string{"m1", "m2"}) ||
			goCourse.ModuleCount != 3 || goCourse.CompletedAt == nil {
			t.Errorf("bob in go = %+v", goCourse)
		}
		if want := 2.0 / 3; goCourse.Progress != want {
			t.Errorf("bob's progress in go = %v, want %v after a third module was added", goCourse.Progress, want)
		}
		if art.Status != "withdrawn" || art.Title != "Intro to art" {
			t.Errorf("bob in art = %+v", art)
		}
	})
	t.Run("a_certificate_shows_on_the_dashboard_and_keeps_the_names_it_was_issued_with", func(t *testing.T) {
		d := get[documents.Dashboard](t, store, documents.Dashboards, "bob")
		for _, en := range d.Enrollments {
			want := (*documents.CertificateRef)(nil)
			if en.CourseID == "go" {
				want = &documents.CertificateRef{ID: "cert-bob-go", IssuedAt: en.CompletedAt.Add(time.Minute), URL: "/v1/learners/bob/certificates/go"}
			}
			if diff := cmp.Diff(want, en.Certificate); diff != "" {
				t.Errorf("bob's certificate of %s (-want +got):\n%s", en.CourseID, diff)
			}
		}
		c := get[documents.Certificate](t, store, documents.Certificates, "cert-bob-go")
		want := documents.Certificate{Verification: documents.Verification{LearnerName: "Bob", CourseTitle: "Intro to go",
			CompletedAt: c.IssuedAt.Add(-time.Minute), SHA256: certSum}, CertificateID: "cert-bob-go", LearnerID: "bob", CourseID: "go",
			BlobKey: "certificates/cert-bob-go/" + certSum + ".pdf", IssuedAt: c.IssuedAt}
		if diff := cmp.Diff(want, c); diff != "" {
			t.Errorf("the certificate (-want +got):\n%s", diff)
		}
	})
	t.Run("the_roster_shows_learners_by_their_current_name", func(t *testing.T) {
		r := get[documents.RosterEntry](t, store, documents.Rosters, documents.RosterID("go", "bob"))
		if r.Name != "Robert" || r.Status != "completed" {
			t.Errorf("roster entry of bob in go = %+v", r)
		}
		docs, err := store.Find(context.Background(), readstore.Query{Coll: documents.Rosters,
			Eq: []readstore.Field{{Name: "courseId", Value: "go"}}, Sort: []readstore.Order{{Name: "enrolledAtN"}}})
		if err != nil || len(docs) != 2 || docs[0].ID != "go/bob" || docs[1].ID != "go/cy" {
			t.Errorf("roster of go = %v, %v; want bob then cy", docs, err)
		}
	})
}

// crashingStore writes the documents of a commit but not its checkpoint, then fails: what a
// process killed between the two leaves behind (only possible where the two are not one
// transaction, as on MongoDB).
type crashingStore struct {
	readstore.Store
	after atomic.Int32 // commits that go through before the crash
}

var errCrash = errors.New("crashed between the documents and the checkpoint")

func (s *crashingStore) Commit(ctx context.Context, projection string, checkpoint uint64, writes []readstore.Write) error {
	if strings.HasPrefix(projection, "_") || s.after.Add(-1) >= 0 { // the runner's own records are not batches
		return s.Store.Commit(ctx, projection, checkpoint, writes)
	}
	old, err := s.Store.Checkpoint(ctx, projection)
	if err != nil {
		return err
	}
	if err := s.Store.Commit(ctx, projection, old, writes); err != nil {
		return err
	}
	return errCrash
}

// readModels are the collections of both projectors, public and private.
var readModels = []string{documents.Catalog, documents.CourseDetails, documents.Stats, documents.Dashboards,
	documents.Rosters, documents.Certificates, "courses_people", "learners_people", "learners_courses"}

// dump returns every document of the read models that f finds, a store or the live view, with
// the keys of each body sorted.
func dump(t *testing.T, f readstoretest.Finder) map[string]readstore.Doc {
	t.Helper()
	return readstoretest.Dump(t, f, readModels, readstoretest.SortedKeys())
}

func TestRecovery(t *testing.T) {
	w := newWorld(t)
	w.scenario()
	clean := openStore(t)
	run(t, w.log, clean, cache.NewMemory(100))
	want := dump(t, clean)

	t.Run("re_applying_everything_changes_nothing", func(t *testing.T) {
		ctx := context.Background()
		// Rewind the checkpoints: every event is delivered a second time.
		for _, p := range []string{documents.CoursesProjection, documents.LearnersProjection} {
			if err := clean.Commit(ctx, p, 0, nil); err != nil {
				t.Fatal(err)
			}
		}
		run(t, w.log, clean, cache.NewMemory(100))
		if diff := cmp.Diff(want, dump(t, clean)); diff != "" {
			t.Errorf("read models after a full re-delivery differ from a clean replay (-want +got):\n%s", diff)
		}
	})
	t.Run("a_crash_between_documents_and_checkpoint_converges_to_a_clean_replay", func(t *testing.T) {
		for _, after := range []int{0, 1, 3} {
			store := openStore(t)
			crashing := &crashingStore{Store: store}
			crashing.after.Store(int32(after))
			codec, _ := commands.NewCodec()
			r, err := projections.NewRunner(w.log, codec, crashing, cache.NewMemory(100), projections.NewPositions(),
				prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)),
				projections.Options{BatchSize: 7, MaxRetries: 1, RetryDelay: time.Millisecond}, projections.Courses{}, projections.Learners{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			<-r.Running()
			time.Sleep(50 * time.Millisecond) // let the doomed commits happen; the result is checked, not the time
			cancel()
			r.Close()
			<-done
			// Restart on the real store: it resumes from the checkpoints the crash left.
			run(t, w.log, store, cache.NewMemory(100))
			if diff := cmp.Diff(want, dump(t, store)); diff != "" {
				t.Errorf("after a crash following %d commits, read models differ from a clean replay (-want +got):\n%s", after, diff)
			}
		}
	})
}

// failing refuses one event type, to test dead letters.
type failing struct{ projections.Courses }

func (f failing) Name() string { return "failing" }

func (f failing) Apply(ctx context.Context, tx *projections.Tx, e projections.Event) error {
	if e.Type == "course.published.v1" {
		return errors.New("cannot publish")
	}
	return f.Courses.Apply(ctx, tx, e)
}

func TestDeadLetters(t *testing.T) {
	w := newWorld(t)
	w.scenario()
	store := openStore(t)
	codec, _ := commands.NewCodec()
	positions := projections.NewPositions()
	r, err := projections.NewRunner(w.log, codec, store, cache.NewMemory(100), positions, prometheus.NewRegistry(),
		slog.New(slog.NewTextHandler(io.Discard, nil)), projections.Options{BatchSize: 100, MaxRetries: 2, RetryDelay: time.Millisecond}, failing{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); r.Close(); <-done }()

	var published eventstore.RecordedEvent
	all, _ := w.log.ReadAll(ctx, 0, 1000)
	for _, e := range all {
		if e.Type == "course.published.v1" {
			published = e
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Status()["failing"] != projections.StatusStalled && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := r.Status()["failing"]; got != projections.StatusStalled {
		t.Fatalf("status = %q, want stalled", got)
	}
	letters, err := store.DeadLetters(ctx, "failing")
	if err != nil || len(letters) != 1 {
		t.Fatalf("dead letters = %v, %v; want one", letters, err)
	}
	if l := letters[0]; l.Position != published.Position || l.EventID != published.ID.String() || l.EventType != "course.published.v1" {
		t.Errorf("dead letter = %+v, want the first publish at %d", l, published.Position)
	}
	if cp, _ := store.Checkpoint(ctx, "failing"); cp != published.Position-1 {
		t.Errorf("checkpoint = %d, want %d: the events before the poison one are applied, the rest wait", cp, published.Position-1)
	}
	if pos := positions.Position("failing"); pos != published.Position-1 {
		t.Errorf("position = %d, want %d", pos, published.Position-1)
	}
}

func coursePatch(title string) course.DetailsPatch { return course.DetailsPatch{Title: &title} }

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// failingAfterPut changes documents for an event, then fails on it.
type failingAfterPut struct{ projections.Courses }

func (f failingAfterPut) Name() string { return "failing_after_put" }

func (f failingAfterPut) Apply(ctx context.Context, tx *projections.Tx, e projections.Event) error {
	if err := f.Courses.Apply(ctx, tx, e); err != nil {
		return err
	}
	if e.Type == "course.published.v1" {
		return errors.New("fails after writing")
	}
	return nil
}

func TestAFailingEventLeavesNoTrace(t *testing.T) {
	w := newWorld(t)
	w.scenario()
	store := openStore(t)
	codec, _ := commands.NewCodec()
	r, err := projections.NewRunner(w.log, codec, store, cache.NewMemory(100), projections.NewPositions(), prometheus.NewRegistry(),
		slog.New(slog.NewTextHandler(io.Discard, nil)), projections.Options{BatchSize: 100, MaxRetries: 1, RetryDelay: time.Millisecond}, failingAfterPut{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); r.Close(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for r.Status()["failing_after_put"] != projections.StatusStalled && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	letters, _ := store.DeadLetters(ctx, "failing_after_put")
	if len(letters) != 1 {
		t.Fatalf("dead letters = %v, want the first publish", letters)
	}
	d, err := store.Get(ctx, documents.CourseDetails, "go")
	if err != nil {
		t.Fatal(err)
	}
	var detail documents.CourseDetail
	json.Unmarshal(d.Body, &detail)
	if detail.Status != "draft" || d.Position >= letters[0].Position {
		t.Errorf("course go is %q at position %d; want the draft it was before the failing publish at %d",
			detail.Status, d.Position, letters[0].Position)
	}
}
