package projections

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/eventstore"
)

// staticLog is a log of n events that never grows.
type staticLog struct{ n uint64 }

func (l staticLog) Subscribe(ctx context.Context, after uint64) (eventstore.Subscription, error) {
	return quietSubscription{}, nil
}

func (l staticLog) ReadAll(_ context.Context, after uint64, limit int) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	for p := after + 1; p <= l.n && len(out) < limit; p++ {
		out = append(out, eventstore.RecordedEvent{Position: p, Type: "Noted"})
	}
	return out, nil
}

func (l staticLog) Head(context.Context) (uint64, error) { return l.n, nil }

// quietSubscription has nothing past the head, so Next waits until its context ends.
type quietSubscription struct{}

func (quietSubscription) Next(ctx context.Context, _ int) ([]eventstore.RecordedEvent, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (quietSubscription) Close() error { return nil }

type noDecoder struct{}

func (noDecoder) Decode(string, []byte) (domain.Event, error) { return nil, nil }

// A rebuild that asks the feed for its first batch before the feed has started, behind where the
// feed will start, and on a log that gets no new event, must still get its batch: it reads the
// log for itself once the feed knows where it starts. It used to wait for an event that never
// came, so that a rebuild resumed after a restart on a quiet log never finished.
func TestAConsumerBehindTheFeedBeforeItStartsIsNotLeftWaiting(t *testing.T) {
	f := newFeed(staticLog{n: 10}, noDecoder{}, 4, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	type answer struct {
		events []Event
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		events, err := f.next(ctx, "learners_g2", 5, 4)
		got <- answer{events, err}
	}()
	for {
		f.mu.Lock()
		_, waiting := f.consumers["learners_g2"]
		f.mu.Unlock()
		if waiting {
			break
		}
		time.Sleep(time.Millisecond)
	}

	ran := make(chan struct{})
	go func() { defer close(ran); f.run(ctx, 10) }()
	select {
	case a := <-got:
		if a.err != nil || len(a.events) != 4 || a.events[0].Position != 6 || a.events[3].Position != 9 {
			t.Errorf("next after 5 = %d events (%v), want positions 6 to 9", len(a.events), a.err)
		}
	case <-time.After(10 * time.Second):
		t.Error("a consumer behind the feed got nothing within 10 s of the feed's start: it was left waiting")
	}
	cancel()
	<-ran
}
