// Package changestest is the contract every changes.Feed meets.
package changestest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/projections/changes"
)

// Buffer is how many unread batches a subscriber of a feed under test may hold at most before
// it falls behind; newFeed gives its feeds a buffer this size or smaller.
const Buffer = 16

// wait bounds every wait for a batch. It only turns a hang into a failure: the suite runs under
// the race detector on busy machines, where a healthy feed may take a second.
const wait = 30 * time.Second

// Run runs the contract. newFeed returns a feed that no other test publishes on (a fresh one, or
// one on its own channel) and whose subscribers hold at most Buffer batches. The suite checks for
// leaked goroutines, so it runs its tests one at a time: do not run it beside parallel tests.
func Run(t *testing.T, newFeed func(t *testing.T) changes.Feed) {
	ctx := context.Background()

	t.Run("delivers_every_batch_in_publish_order_to_every_subscriber", func(t *testing.T) {
		f := newFeed(t)
		a, b := subscribe(t, ctx, f), subscribe(t, ctx, f)
		var want []changes.Batch
		for pos := range uint64(Buffer) {
			want = append(want, batch(pos+1))
			publish(t, f, want[pos])
		}
		for name, ch := range map[string]<-chan changes.Batch{"first": a, "second": b} {
			if diff := cmp.Diff(want, receive(t, ch, len(want)), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("the %s subscriber got (-want +got):\n%s", name, diff)
			}
		}
	})

	t.Run("gives_a_late_subscriber_only_the_batches_published_after_it_subscribed", func(t *testing.T) {
		f := newFeed(t)
		early := subscribe(t, ctx, f)
		publish(t, f, batch(1))
		late := subscribe(t, ctx, f)
		publish(t, f, batch(2))
		if diff := cmp.Diff([]changes.Batch{batch(1), batch(2)}, receive(t, early, 2), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("the early subscriber got (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]changes.Batch{batch(2)}, receive(t, late, 1), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("the late subscriber got (-want +got):\n%s", diff)
		}
	})

	t.Run("carries_batches_exactly", func(t *testing.T) {
		f := newFeed(t)
		ch := subscribe(t, ctx, f)
		at := time.Date(2026, 9, 1, 9, 30, 15, 123456789, time.FixedZone("CEST", 2*60*60))
		want := []changes.Batch{
			{Projection: "learners", CommittedAt: at, Changes: []changes.Change{
				{Coll: "dashboards", ID: "ada", Position: 1},
				{Coll: "dashboards", ID: "bob:ü \"quoted\"\n", Position: 1<<64 - 1},
				{Coll: "dashboards", ID: "", Position: 0},
			}},
			{Projection: "courses", Resync: true, CommittedAt: at.Add(time.Nanosecond)},
			{Resync: true},
			{Projection: "courses", CommittedAt: at.UTC(), Changes: []changes.Change{
				{Coll: "course_details", ID: "go", Position: 1<<53 + 1},
				{Coll: "course_stats", ID: "go", Position: 1<<53 + 1},
			}},
		}
		for _, b := range want {
			publish(t, f, b)
		}
		// cmp compares times with their Equal method: the same instant, whatever its zone.
		if diff := cmp.Diff(want, receive(t, ch, len(want)), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("received (-published +received):\n%s", diff)
		}
	})

	t.Run("closes_the_channel_when_the_context_ends_and_leaks_no_goroutine", func(t *testing.T) {
		f := newFeed(t)
		// A subscriber that stays through it all, and a first batch that sets up whatever the
		// feed keeps for publishing, before the goroutines are counted.
		stays := subscribe(t, ctx, f)
		publish(t, f, batch(1))
		receive(t, stays, 1)
		before := goleak.IgnoreCurrent()

		subCtx, cancel := context.WithCancel(ctx)
		a, b := subscribe(t, subCtx, f), subscribe(t, subCtx, f)
		publish(t, f, batch(2))
		cancel()
		drain(t, a)
		drain(t, b)
		publish(t, f, batch(3)) // past the ended subscriptions: must neither panic nor block
		ended, cancel := context.WithCancel(ctx)
		cancel()
		drain(t, subscribe(t, ended, f))
		if diff := cmp.Diff([]changes.Batch{batch(2), batch(3)}, receive(t, stays, 2), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("the subscriber that stayed got (-want +got):\n%s", diff)
		}
		if err := goleak.Find(before); err != nil {
			t.Errorf("goroutines remain after the subscriptions ended: %v", err)
		}
	})

	t.Run("tells_a_subscriber_that_fell_behind_to_resync_and_never_blocks_publish", func(t *testing.T) {
		f := newFeed(t)
		ch := subscribe(t, ctx, f)
		// Many times the buffer, from two projections, and nobody reads: each Publish returns.
		const n = 64 * Buffer
		for pos := range uint64(n) {
			publish(t, f, batch(pos+1))
		}
		// Then someone reads, while batches keep coming until one of them arrives: a feed may
		// still deliver some of those above, but the first published after the reader started
		// must arrive.
		got := make(chan []changes.Batch, 1)
		go func() {
			var seen []changes.Batch
			for b := range ch {
				seen = append(seen, b)
				if !b.Resync && (len(b.Changes) == 0 || b.Changes[0].Position > n) {
					break
				}
			}
			got <- seen
		}()
		next := uint64(n + 1)
		var seen []changes.Batch
		deadline := time.After(wait)
	wait:
		for {
			select {
			case seen = <-got:
				break wait
			case <-deadline:
				t.Fatalf("no batch published after the subscriber fell behind arrived within %s", wait)
			case <-time.After(10 * time.Millisecond):
				publish(t, f, batch(next))
				next++
			}
		}
		checkResynced(t, seen, n)
	})
}

// checkResynced checks what a subscriber that fell behind received: batches in publish order
// from the first, a Resync naming no projection wherever batches are missing, and at least one.
func checkResynced(t *testing.T, seen []changes.Batch, published uint64) {
	t.Helper()
	var last uint64
	resynced, resyncs := false, 0
	for i, b := range seen {
		if b.Resync {
			if b.Projection != "" || len(b.Changes) != 0 {
				t.Errorf("batch %d is a Resync of projection %q with %d changes; want one that names no projection "+
					"(the batches missed may be of any) and carries no change", i, b.Projection, len(b.Changes))
			}
			resynced = true
			resyncs++
			continue
		}
		if len(b.Changes) == 0 {
			t.Fatalf("batch %d carries no change and is no Resync; the suite published none such", i)
		}
		pos := b.Changes[0].Position
		switch {
		case pos <= last:
			t.Fatalf("batch %d is at position %d after %d: out of publish order\n%s", i, pos, last, positions(seen))
		case pos != last+1 && !resynced:
			t.Fatalf("batch %d is at position %d after %d without a Resync between them\n%s", i, pos, last, positions(seen))
		}
		if diff := cmp.Diff(batch(pos), b, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("batch %d (-published +received):\n%s", i, diff)
		}
		last, resynced = pos, false
	}
	if resyncs == 0 {
		t.Fatalf("a subscriber that left %d batches unread got every one and no Resync; its buffer is over %d\n%s",
			published, Buffer, positions(seen))
	}
	if first := seen[0]; first.Resync || first.Changes[0].Position != 1 {
		t.Errorf("the first batch received is %s; want the first published: the buffer holds the oldest", positions(seen[:1]))
	}
}

// positions shows a run of batches briefly: their positions, and R for a Resync.
func positions(bs []changes.Batch) string {
	out := ""
	for _, b := range bs {
		if b.Resync {
			out += "R "
		} else {
			out += fmt.Sprintf("%d ", b.Changes[0].Position)
		}
	}
	return out
}

// batch is the batch at pos of the suite's publisher, from two projections in turn.
func batch(pos uint64) changes.Batch {
	proj, coll := "learners", "dashboards"
	if pos%2 == 0 {
		proj, coll = "courses", "course_details"
	}
	return changes.Batch{Projection: proj, Changes: []changes.Change{{Coll: coll, ID: fmt.Sprint("doc-", pos%5), Position: pos}},
		CommittedAt: time.Unix(1_800_000_000+int64(pos), int64(pos)).UTC()}
}

// subscribe subscribes until ctx ends, or the test does.
func subscribe(t *testing.T, ctx context.Context, f changes.Feed) <-chan changes.Batch {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	ch, err := f.Subscribe(ctx)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return ch
}

// publish publishes b, failing the test if it fails or hangs.
func publish(t *testing.T, f changes.Feed, b changes.Batch) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f.Publish(context.Background(), b) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	case <-time.After(wait):
		t.Fatalf("publish did not return within %s", wait)
	}
}

// receive reads n batches from ch.
func receive(t *testing.T, ch <-chan changes.Batch, n int) []changes.Batch {
	t.Helper()
	var out []changes.Batch
	timeout := time.After(wait)
	for len(out) < n {
		select {
		case b, ok := <-ch:
			if !ok {
				t.Fatalf("the channel closed after %d batches; want %d", len(out), n)
			}
			out = append(out, b)
		case <-timeout:
			t.Fatalf("got %d batches within %s; want %d: %s", len(out), wait, n, positions(out))
		}
	}
	return out
}

// drain reads ch until it closes.
func drain(t *testing.T, ch <-chan changes.Batch) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("the channel did not close within %s of its context's end", wait)
		}
	}
}
