package changes_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/changes/changestest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemory(t *testing.T) {
	changestest.Run(t, func(*testing.T) changes.Feed { return changes.NewMemory(changestest.Buffer) })
}

func batch(proj string, pos uint64) changes.Batch {
	return changes.Batch{Projection: proj, Changes: []changes.Change{{Coll: "dashboards", ID: "ada", Position: pos}},
		CommittedAt: time.Unix(int64(pos), 0).UTC()}
}

func TestMemoryDeliversInOrderToEverySubscriber(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	m := changes.NewMemory(8)
	a, _ := m.Subscribe(ctx)
	b, _ := m.Subscribe(ctx)
	for pos := range uint64(5) {
		m.Publish(ctx, batch("learners", pos+1))
	}
	for name, ch := range map[string]<-chan changes.Batch{"a": a, "b": b} {
		for pos := range uint64(5) {
			if got := <-ch; !cmp.Equal(got, batch("learners", pos+1)) {
				t.Errorf("subscriber %s got %+v, want position %d", name, got, pos+1)
			}
		}
	}
	cancel()
	for _, ch := range []<-chan changes.Batch{a, b} {
		for range ch {
		} // closed once ctx ends
	}
}

// A subscriber that falls behind never slows the publisher: it misses batches, and is told so
// with a Resync before the next batch it gets.
func TestMemoryTellsASlowSubscriberToResync(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := changes.NewMemory(2)
	slow, _ := m.Subscribe(ctx)
	for pos := range uint64(5) {
		m.Publish(ctx, batch("learners", pos+1)) // returns at once though nobody reads
	}
	if got := <-slow; got.Resync || got.Changes[0].Position != 1 {
		t.Errorf("first batch %+v, want position 1", got)
	}
	if got := <-slow; got.Resync || got.Changes[0].Position != 2 {
		t.Errorf("second batch %+v, want position 2", got)
	}
	m.Publish(ctx, batch("learners", 6))
	if got := <-slow; !got.Resync {
		t.Errorf("after missing batches 3 to 5: %+v, want a Resync", got)
	}
	if got := <-slow; got.Resync || got.Changes[0].Position != 6 {
		t.Errorf("after the Resync: %+v, want position 6", got)
	}
}
