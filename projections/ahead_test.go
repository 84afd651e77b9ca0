package projections_test

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
)

func openLog(t *testing.T) *sqlitelog.Log {
	t.Helper()
	l, err := sqlitelog.Open(filepath.Join(t.TempDir(), "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// copyPrefix appends the events of from up to position upTo to the empty log to, one by one in
// position order, so each keeps its position: an older copy of from.
func copyPrefix(t *testing.T, from, to *sqlitelog.Log, upTo uint64) {
	t.Helper()
	ctx := context.Background()
	events, err := from.ReadAll(ctx, 0, int(upTo))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		res, err := to.Append(ctx, e.StreamID, eventstore.Exact(e.Version-1),
			[]eventstore.EventData{{ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata}})
		if err != nil || res.Position != e.Position {
			t.Fatalf("copy %s v%d: position %d, %v; want %d", e.StreamID, e.Version, res.Position, err, e.Position)
		}
	}
}

// retitle appends a retitling of course id to l.
func retitle(t *testing.T, l *sqlitelog.Log, id, title string) {
	t.Helper()
	codec, err := commands.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	typ, data, err := codec.Encode(course.DetailsUpdated{CourseID: id, Title: title, Category: "cat", Level: course.LevelBeginner,
		At: time.Date(2026, 9, 2, 9, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), "course-"+id, eventstore.Any, []eventstore.EventData{{ID: uuid.New(), Type: typ, Data: data}}); err != nil {
		t.Fatal(err)
	}
}

// After a restore of an older copy of the log, the read models hold events the log no longer
// has, and new events will take their positions. At start this is noticed, reported (the
// projection is ahead of the log, not ready, and no position is claimed), and the read models
// are rebuilt from the log by themselves; then new events are projected as usual.
func TestReadModelsAheadOfTheLogAreRebuiltAtStart(t *testing.T) {
	full := openLog(t)
	head := schoolHistory(t, full, 40, 3, 2)
	store := openStore(t)
	build(t, full, store)

	older := openLog(t)
	copyPrefix(t, full, older, head/2)
	// The rebuilds wait at their first read of the log until the test has looked.
	paused := &pausedLog{Log: older, open: make(chan struct{})}
	rr := startRunner(t, paused, store, cache.NewMemory(1000), projections.Options{BatchSize: 50, DropGrace: 10 * time.Millisecond},
		projections.Courses{}, projections.Learners{})

	t.Run("the_projections_are_reported_ahead_of_the_log_and_claim_no_position", func(t *testing.T) {
		for _, name := range []string{"courses", "learners"} {
			if st := rr.Status()[name]; st != projections.StatusAhead {
				t.Errorf("status of %s = %q, want %q", name, st, projections.StatusAhead)
			}
			if pos := rr.positions.Position(name); pos != 0 {
				t.Errorf("position of %s = %d, want 0 until rebuilt", name, pos)
			}
		}
	})
	close(paused.open)
	t.Run("the_rebuilt_read_models_are_live_and_equal_a_clean_build_of_the_log", func(t *testing.T) {
		waitFor(t, "the rebuilt generations are live", func() bool {
			return rr.Live().Generation("courses").N == 2 && rr.Live().Generation("learners").N == 2
		})
		rr.waitHead(t, older, "courses", "learners")
		for _, name := range []string{"courses", "learners"} {
			if st := rr.settle(t, name); st.Position != head/2 {
				t.Errorf("%s at %d, want the log's head %d", name, st.Position, head/2)
			}
		}
		if diff := cmp.Diff(scratch(t, older), dump(t, rr.Live())); diff != "" {
			t.Errorf("read models after the rebuild differ from a clean build of the log (-want +got):\n%s", diff)
		}
	})
	t.Run("new_events_are_projected_at_the_positions_they_take", func(t *testing.T) {
		retitle(t, older, courseID(0), "Renamed after the restore")
		at := rr.waitHead(t, older, "courses")
		d := get[documents.CourseDetail](t, store, rr.Live().Coll(documents.CourseDetails), courseID(0))
		if d.Title != "Renamed after the restore" || at != head/2+1 {
			t.Errorf("course %s is %q at %d; want the new title at %d", courseID(0), d.Title, at, head/2+1)
		}
	})
}

// pausedLog holds every read of the log until open is closed.
type pausedLog struct {
	projections.Log
	open chan struct{}
}

func (p *pausedLog) wait(ctx context.Context) error {
	select {
	case <-p.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pausedLog) Subscribe(ctx context.Context, after uint64) (eventstore.Subscription, error) {
	if err := p.wait(ctx); err != nil {
		return nil, err
	}
	return p.Log.Subscribe(ctx, after)
}

func (p *pausedLog) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.RecordedEvent, error) {
	if err := p.wait(ctx); err != nil {
		return nil, err
	}
	return p.Log.ReadAll(ctx, after, limit)
}

// loweredLog is a log whose head can be made to go back under a running runner.
type loweredLog struct {
	projections.Log
	cap atomic.Uint64 // 0: the real head
}

func (l *loweredLog) Head(ctx context.Context) (uint64, error) {
	h, err := l.Log.Head(ctx)
	if c := l.cap.Load(); c > 0 && c < h {
		return c, err
	}
	return h, err
}

// A log that goes back under a running process is noticed within a few checks of its head: the
// projection is reported ahead of it, and so not ready.
func TestALogThatGoesBackUnderARunningProcessIsNoticed(t *testing.T) {
	l := openLog(t)
	head := schoolHistory(t, l, 10, 2, 2)
	lowered := &loweredLog{Log: l}
	rr := startRunner(t, lowered, openStore(t), cache.NewMemory(100), projections.Options{HeadCheckEvery: 10 * time.Millisecond},
		projections.Courses{}, projections.Learners{})
	rr.waitHead(t, l, "courses", "learners")
	if st := rr.settle(t, "courses"); st.Status != projections.StatusRunning {
		t.Fatalf("courses is %q before the log goes back", st.Status)
	}
	lowered.cap.Store(head - 5)
	waitFor(t, "both projections are reported ahead of the log", func() bool {
		st := rr.Status()
		return st["courses"] == projections.StatusAhead && st["learners"] == projections.StatusAhead
	})
}

// busyLog answers the next few reads of its head with the head as it was before one more event
// was appended and projected: what a check that read the head, then the positions, would see
// under continuous writes.
type busyLog struct {
	*sqlitelog.Log
	positions atomic.Pointer[projections.Positions]
	armed     atomic.Int32
	appended  atomic.Int32
}

func (b *busyLog) Head(ctx context.Context) (uint64, error) {
	h, err := b.Log.Head(ctx)
	pos := b.positions.Load()
	if err != nil || pos == nil || !fromHeadCheck() || b.armed.Add(-1) < 0 {
		return h, err
	}
	codec, err := commands.NewCodec()
	if err != nil {
		return h, err
	}
	typ, data, err := codec.Encode(course.DetailsUpdated{CourseID: courseID(0), Title: "Busy", Category: "cat",
		Level: course.LevelBeginner, At: time.Date(2026, 9, 2, 9, 0, 0, 0, time.UTC)})
	if err != nil {
		return h, err
	}
	if _, err := b.Log.Append(ctx, "course-"+courseID(0), eventstore.Any, []eventstore.EventData{{ID: uuid.New(), Type: typ, Data: data}}); err != nil {
		return h, err
	}
	b.appended.Add(1)
	for pos.Position("courses") <= h {
		if ctx.Err() != nil {
			return h, ctx.Err()
		}
		time.Sleep(2 * time.Millisecond)
	}
	return h, nil
}

// fromHeadCheck tells whether the runner's check of the head is the caller: the projector reads
// the head too, and must not wait on its own progress.
func fromHeadCheck() bool {
	buf := make([]byte, 16<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "watchHead")
}

// A log that grows between two reads is not a log that went back: a check of the head under
// continuous writes never reports the projections ahead of it.
func TestProjectionsAreNotReportedAheadOfALogUnderContinuousWrites(t *testing.T) {
	l := openLog(t)
	schoolHistory(t, l, 10, 2, 2)
	busy := &busyLog{Log: l}
	rr := startRunner(t, busy, openStore(t), cache.NewMemory(100), projections.Options{HeadCheckEvery: 10 * time.Millisecond},
		projections.Courses{})
	rr.waitHead(t, l, "courses")
	busy.positions.Store(rr.positions)
	busy.armed.Store(20)
	waitFor(t, "the log has grown under twenty checks", func() bool { return busy.armed.Load() < 0 })
	if n := busy.appended.Load(); n < 20 {
		t.Fatalf("only %d events appended between reads; the test did not exercise the check", n)
	}
	time.Sleep(50 * time.Millisecond) // a few more checks, on a quiet log
	if st := rr.Status()["courses"]; st == projections.StatusAhead {
		t.Errorf("courses reported %q under continuous writes", st)
	}
}
