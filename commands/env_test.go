package commands_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
)

// The sqlitelog writer and syncer are goroutines; every test closes its log in Cleanup.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Hour)
)

// clock is the handler's fake time: givens happen at t0, the command under test at t1.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// env is one test's world: a fresh SQLite log in a temp dir and a handler over it.
type env struct {
	t     *testing.T
	store *sqlitelog.Log
	codec *eventstore.Codec
	clock *clock
	h     *commands.Handler
}

var commandSeq atomic.Int64

func newEnv(t *testing.T, opts commands.Options) *env {
	t.Helper()
	store, err := sqlitelog.Open(filepath.Join(t.TempDir(), "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("close log: %v", err)
		}
	})
	codec, err := commands.NewCodec()
	if err != nil {
		t.Fatalf("codec: %v", err)
	}
	e := &env{t: t, store: store, codec: codec, clock: &clock{now: t0}}
	e.h = e.handler(store, opts)
	return e
}

// handler returns another Handler over store (with its own cache), on e's clock.
func (e *env) handler(store commands.Store, opts commands.Options) *commands.Handler {
	e.t.Helper()
	h, err := commands.New(store, e.clock.Now, opts)
	if err != nil {
		e.t.Fatalf("new handler: %v", err)
	}
	return h
}

// meta returns the metadata of a new command, every id unique to it.
func meta() commands.Meta {
	n := commandSeq.Add(1)
	return commands.Meta{
		CommandID:     fmt.Sprintf("cmd-%d", n),
		CorrelationID: fmt.Sprintf("corr-%d", n),
		RequestID:     fmt.Sprintf("req-%d", n),
		Actor:         domain.Actor{UserID: fmt.Sprintf("user-%d", n)},
	}
}

// metadataOf is what every event appended by a command sent with m must carry.
func metadataOf(m commands.Meta) eventstore.Metadata {
	return eventstore.Metadata{CorrelationID: m.CorrelationID, CausationID: m.CommandID, UserID: m.Actor.UserID, RequestID: m.RequestID}
}

func (e *env) read(stream string) []eventstore.RecordedEvent {
	e.t.Helper()
	recs, err := e.store.ReadStream(context.Background(), stream, 1, 0)
	if err != nil {
		e.t.Fatalf("read %s: %v", stream, err)
	}
	return recs
}

func (e *env) decode(recs []eventstore.RecordedEvent) []domain.Event {
	e.t.Helper()
	var out []domain.Event
	for _, r := range recs {
		ev, err := e.codec.Decode(r.Type, r.Data)
		if err != nil {
			e.t.Fatalf("decode %s v%d: %v", r.StreamID, r.Version, err)
		}
		out = append(out, ev)
	}
	return out
}

func (e *env) head() uint64 {
	e.t.Helper()
	h, err := e.store.Head(context.Background())
	if err != nil {
		e.t.Fatalf("head: %v", err)
	}
	return h
}

// answer is what any command answers; only CompleteModule sets CourseCompleted.
type answer struct {
	commands.Result
	CourseCompleted bool
}

// action sends one command through h.
type action func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error)

func plain(r commands.Result, err error) (answer, error) { return answer{Result: r}, err }

func registerUser(c commands.RegisterUser) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.RegisterUser(ctx, m, c))
	}
}

func updateUser(c commands.UpdateUser) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.UpdateUser(ctx, m, c))
	}
}

func createCourse(c commands.CreateCourse) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.CreateCourse(ctx, m, c))
	}
}

func updateCourse(c commands.UpdateCourseDetails) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.UpdateCourseDetails(ctx, m, c))
	}
}

func addModule(courseID, moduleID, title string) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.AddModule(ctx, m, commands.AddModule{CourseID: courseID, ModuleID: moduleID, Title: title}))
	}
}

func publish(courseID string) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.PublishCourse(ctx, m, commands.PublishCourse{ID: courseID}))
	}
}

func archive(courseID string) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.ArchiveCourse(ctx, m, commands.ArchiveCourse{ID: courseID}))
	}
}

func enroll(learnerID, courseID string) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.EnrollStudent(ctx, m, commands.EnrollStudent{CourseID: courseID, LearnerID: learnerID}))
	}
}

func withdraw(learnerID, courseID string) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.WithdrawEnrollment(ctx, m, commands.WithdrawEnrollment{CourseID: courseID, LearnerID: learnerID}))
	}
}

func complete(learnerID, courseID, moduleID string) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		r, err := h.CompleteModule(ctx, m, commands.CompleteModule{LearnerID: learnerID, CourseID: courseID, ModuleID: moduleID})
		return answer{Result: r.Result, CourseCompleted: r.CourseCompleted}, err
	}
}

// Short forms of the givens most tests share.

func registered(id, role string) action {
	return registerUser(commands.RegisterUser{ID: id, Name: "Name of " + id, Email: id + "@example.com", Role: role})
}

func created(courseID string) action {
	return createCourse(commands.CreateCourse{ID: courseID, Title: "Go", Description: "Learn Go.", Category: "programming",
		Level: "beginner", InstructorID: "ins"})
}

// do runs actions with fresh metadata through h, failing the test on any error.
func (e *env) do(h *commands.Handler, actions ...action) []answer {
	e.t.Helper()
	var out []answer
	for i, a := range actions {
		ans, err := a(context.Background(), h, meta())
		if err != nil {
			e.t.Fatalf("given step %d: %v", i, err)
		}
		out = append(out, ans)
	}
	return out
}
