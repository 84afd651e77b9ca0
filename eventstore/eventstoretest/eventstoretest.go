// Package eventstoretest is the contract every eventstore.Store adapter must meet. Each adapter's
// tests call Run with a function that opens its store; the suite uses stream names unique to each
// run, so it can share a server with other data.
package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/edutrack/edutrack/eventstore"
)

// Opener opens the store under test. Each call after a Close must reach the same data, so the
// suite can check what survives a reopen.
type Opener func() (eventstore.Store, error)

// Run runs the contract suite. newStore is called once per test and returns an Opener for fresh
// (or shared, but then unaffected by the suite's own streams) data.
func Run(t *testing.T, newStore func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"appends_and_reads_a_stream_in_order", appendsAndReads},
		{"refuses_a_wrong_expected_version", refusesWrongVersion},
		{"appends_nothing_twice_for_the_same_event_ids", idempotent},
		{"refuses_an_append_that_repeats_only_some_ids", refusesPartialDuplicates},
		{"orders_the_global_log_by_commit", ordersGlobalLog},
		{"reads_the_global_log_in_batches", readsInBatches},
		{"subscribes_from_a_position_then_follows_live", subscribesCatchUpThenLive},
		{"serves_many_concurrent_writers", concurrentWriters},
		{"keeps_everything_across_a_reopen", reopens},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func mustOpen(t *testing.T, open Opener) eventstore.Store {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// stream returns a stream id no other test uses.
func stream(kind string) string { return kind + "-" + strings.ReplaceAll(uuid.NewString(), "-", "") }

func events(n int, tag string) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = eventstore.EventData{
			ID:   uuid.New(),
			Type: "test.happened.v1",
			Data: []byte(fmt.Sprintf(`{"tag":%q,"n":%d}`, tag, i)),
			Metadata: eventstore.Metadata{
				CorrelationID: "corr-" + tag, CausationID: "cause-" + tag, UserID: "user-1", RequestID: "req-" + tag,
			},
		}
	}
	return out
}

// data strips what the store assigns, to compare with what was appended.
func data(recorded []eventstore.RecordedEvent) []eventstore.EventData {
	out := make([]eventstore.EventData, len(recorded))
	for i, e := range recorded {
		out[i] = eventstore.EventData{ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata}
	}
	return out
}

func appendsAndReads(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	c := ctx(t)
	id := stream("order")
	first, second := events(3, "a"), events(2, "b")
	before := time.Now().Add(-time.Second)
	r1, err := s.Append(c, id, eventstore.NoStream, first)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if r1.Version != 3 {
		t.Errorf("version after 3 events = %d, want 3", r1.Version)
	}
	r2, err := s.Append(c, id, eventstore.Exact(3), second)
	if err != nil {
		t.Fatalf("append at version 3: %v", err)
	}
	if r2.Version != 5 || r2.Position <= r1.Position {
		t.Errorf("second append = %+v after %+v, want version 5 and a later position", r2, r1)
	}
	got, err := s.ReadStream(c, id, 1, 0)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	if diff := cmp.Diff(append(first, second...), data(got)); diff != "" {
		t.Errorf("stream differs from what was appended (-want +got):\n%s", diff)
	}
	for i, e := range got {
		if e.Version != uint64(i+1) || e.StreamID != id {
			t.Errorf("event %d: stream %q version %d, want %q version %d", i, e.StreamID, e.Version, id, i+1)
		}
		if e.RecordedAt.Before(before) || e.RecordedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("event %d recorded at %v, not around now", i, e.RecordedAt)
		}
	}
	if got[4].Position != r2.Position {
		t.Errorf("last event at position %d, append said %d", got[4].Position, r2.Position)
	}
	tail, err := s.ReadStream(c, id, 4, 1)
	if err != nil || len(tail) != 1 || tail[0].Version != 4 {
		t.Errorf("read from version 4, limit 1 = %v, %v; want the one event at version 4", tail, err)
	}
	none, err := s.ReadStream(c, id, 6, 0)
	if err != nil || len(none) != 0 {
		t.Errorf("read past the end = %v, %v; want nothing", none, err)
	}
	missing, err := s.ReadStream(c, stream("missing"), 1, 0)
	if err != nil || len(missing) != 0 {
		t.Errorf("read a stream that does not exist = %v, %v; want nothing", missing, err)
	}
	head, err := s.Head(c)
	if err != nil || head < r2.Position {
		t.Errorf("head = %d, %v; want at least %d", head, err, r2.Position)
	}
}

func refusesWrongVersion(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	c := ctx(t)
	id := stream("version")
	if _, err := s.Append(c, id, eventstore.Exact(1), events(1, "x")); !errors.Is(err, eventstore.ErrConcurrency) {
		t.Errorf("exact version 1 on a new stream: err = %v, want ErrConcurrency", err)
	}
	if _, err := s.Append(c, id, eventstore.NoStream, events(2, "a")); err != nil {
		t.Fatalf("no-stream append to a new stream: %v", err)
	}
	for _, exp := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Exact(1), eventstore.Exact(3)} {
		if _, err := s.Append(c, id, exp, events(1, "x")); !errors.Is(err, eventstore.ErrConcurrency) {
			t.Errorf("append expecting %s at version 2: err = %v, want ErrConcurrency", exp, err)
		}
	}
	if r, err := s.Append(c, id, eventstore.Any, events(1, "b")); err != nil || r.Version != 3 {
		t.Errorf("append expecting any = %+v, %v; want version 3", r, err)
	}
	if r, err := s.Append(c, id, eventstore.Exact(3), events(1, "c")); err != nil || r.Version != 4 {
		t.Errorf("append expecting version 3 = %+v, %v; want version 4", r, err)
	}
	got, err := s.ReadStream(c, id, 1, 0)
	if err != nil || len(got) != 4 {
		t.Errorf("stream holds %d events (%v), want 4: refused appends must add nothing", len(got), err)
	}
}

func idempotent(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	c := ctx(t)
	id := stream("idem")
	evs := events(3, "once")
	first, err := s.Append(c, id, eventstore.NoStream, evs)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if _, err := s.Append(c, id, eventstore.Exact(3), events(1, "later")); err != nil {
		t.Fatalf("append a later event: %v", err)
	}
	for _, exp := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Any} {
		again, err := s.Append(c, id, exp, evs)
		if err != nil {
			t.Errorf("retry expecting %s: %v, want the first result", exp, err)
		}
		if again != first {
			t.Errorf("retry expecting %s = %+v, want the first result %+v", exp, again, first)
		}
	}
	got, err := s.ReadStream(c, id, 1, 0)
	if err != nil || len(got) != 4 {
		t.Errorf("stream holds %d events (%v), want 4: a retry must append nothing", len(got), err)
	}
}

func refusesPartialDuplicates(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	c := ctx(t)
	id := stream("partial")
	evs := events(2, "a")
	if _, err := s.Append(c, id, eventstore.NoStream, evs); err != nil {
		t.Fatalf("append: %v", err)
	}
	mixed := append(events(1, "new"), evs[1])
	if _, err := s.Append(c, id, eventstore.Any, mixed); !errors.Is(err, eventstore.ErrDuplicateEvent) {
		t.Errorf("append reusing one id of an earlier append: err = %v, want ErrDuplicateEvent", err)
	}
	got, _ := s.ReadStream(c, id, 1, 0)
	if len(got) != 2 {
		t.Errorf("stream holds %d events, want 2", len(got))
	}
}

// own keeps the events of the given streams, for stores shared with other data.
func own(all []eventstore.RecordedEvent, streams map[string]bool) []eventstore.RecordedEvent {
	var out []eventstore.RecordedEvent
	for _, e := range all {
		if streams[e.StreamID] {
			out = append(out, e)
		}
	}
	return out
}

func readAfter(t *testing.T, s eventstore.Store, after uint64, batch int) []eventstore.RecordedEvent {
	t.Helper()
	var all []eventstore.RecordedEvent
	for {
		evs, err := s.ReadAll(ctx(t), after, batch)
		if err != nil {
			t.Fatalf("read log after %d: %v", after, err)
		}
		if len(evs) == 0 {
			return all
		}
		if len(evs) > batch {
			t.Fatalf("read log with limit %d returned %d events", batch, len(evs))
		}
		all = append(all, evs...)
		after = evs[len(evs)-1].Position
	}
}

func ordersGlobalLog(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	c := ctx(t)
	start, _ := s.Head(c)
	a, b := stream("glob-a"), stream("glob-b")
	var want []eventstore.EventData
	for i := range 5 {
		for _, id := range []string{a, b} {
			evs := events(2, fmt.Sprintf("%s-%d", id, i))
			if _, err := s.Append(c, id, eventstore.Any, evs); err != nil {
				t.Fatalf("append: %v", err)
			}
			want = append(want, evs...)
		}
	}
	got := own(readAfter(t, s, start, 1000), map[string]bool{a: true, b: true})
	if diff := cmp.Diff(want, data(got)); diff != "" {
		t.Errorf("global log is not in commit order (-want +got):\n%s", diff)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Position <= got[i-1].Position {
			t.Errorf("position %d follows %d: positions must grow", got[i].Position, got[i-1].Position)
		}
	}
}

func readsInBatches(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	c := ctx(t)
	start, _ := s.Head(c)
	id := stream("batches")
	evs := events(25, "b")
	if _, err := s.Append(c, id, eventstore.NoStream, evs); err != nil {
		t.Fatalf("append: %v", err)
	}
	got := own(readAfter(t, s, start, 7), map[string]bool{id: true})
	if diff := cmp.Diff(evs, data(got)); diff != "" {
		t.Errorf("reading in batches of 7 lost or reordered events (-want +got):\n%s", diff)
	}
	mid := got[9].Position
	rest := own(readAfter(t, s, mid, 1000), map[string]bool{id: true})
	if diff := cmp.Diff(evs[10:], data(rest)); diff != "" {
		t.Errorf("reading after position of event 10 (-want +got):\n%s", diff)
	}
}

func subscribesCatchUpThenLive(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	c := ctx(t)
	start, _ := s.Head(c)
	id := stream("sub")
	stored := events(50, "stored")
	if _, err := s.Append(c, id, eventstore.NoStream, stored); err != nil {
		t.Fatalf("append: %v", err)
	}
	sub, err := s.Subscribe(c, start)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()

	var live []eventstore.EventData
	var wg sync.WaitGroup
	wg.Add(1)
	writeErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			evs := events(1, fmt.Sprintf("live-%d", i))
			live = append(live, evs...)
			if _, err := s.Append(c, id, eventstore.Any, evs); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	var got []eventstore.RecordedEvent
	for len(got) < 100 {
		evs, err := sub.Next(c, 16)
		if err != nil {
			t.Fatalf("next after %d events: %v", len(got), err)
		}
		if len(evs) == 0 || len(evs) > 16 {
			t.Fatalf("next returned %d events, want 1 to 16", len(evs))
		}
		got = append(got, own(evs, map[string]bool{id: true})...)
	}
	wg.Wait()
	select {
	case err := <-writeErr:
		t.Fatalf("live append: %v", err)
	default:
	}
	if diff := cmp.Diff(append(stored, live...), data(got)); diff != "" {
		t.Errorf("subscription lost, repeated or reordered events (-want +got):\n%s", diff)
	}

	// A subscription from the middle starts right after that position.
	mid, err := s.Subscribe(c, got[59].Position)
	if err != nil {
		t.Fatalf("subscribe from the middle: %v", err)
	}
	defer mid.Close()
	evs, err := mid.Next(c, 1000)
	if err != nil || len(own(evs, map[string]bool{id: true})) == 0 || evs[0].Position <= got[59].Position {
		t.Fatalf("next from the middle = %d events, %v", len(evs), err)
	}
	if first := own(evs, map[string]bool{id: true})[0]; first.ID != got[60].ID {
		t.Errorf("subscription from position %d starts with %v, want %v", got[59].Position, first.ID, got[60].ID)
	}

	// Next honours its context while waiting for a commit that does not come.
	idle, err := s.Subscribe(c, ^uint64(0)>>1)
	if err != nil {
		t.Fatalf("subscribe at the end: %v", err)
	}
	defer idle.Close()
	short, cancel := context.WithTimeout(c, 50*time.Millisecond)
	defer cancel()
	if _, err := idle.Next(short, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("next with nothing to read: err = %v, want the context's deadline", err)
	}
}

func concurrentWriters(t *testing.T, open Opener) {
	s := mustOpen(t, open)
	c := ctx(t)
	const writers, appends = 32, 20
	shared := stream("contended")
	var wg sync.WaitGroup
	var mu sync.Mutex
	own := map[string][]uint64{}
	conflicts := 0
	errs := make(chan error, writers*2)
	for w := range writers {
		wg.Add(2)
		go func() { // each writer has its own stream
			defer wg.Done()
			id := fmt.Sprintf("%s-w%d", shared, w)
			for i := range appends {
				r, err := s.Append(c, id, eventstore.Exact(uint64(i)), events(1, id))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				own[id] = append(own[id], r.Version)
				mu.Unlock()
			}
		}()
		go func() { // and all compete for one stream, re-reading on conflict
			defer wg.Done()
			for {
				evs, err := s.ReadStream(c, shared, 1, 0)
				if err != nil {
					errs <- err
					return
				}
				_, err = s.Append(c, shared, eventstore.Exact(uint64(len(evs))), events(1, "shared"))
				if errors.Is(err, eventstore.ErrConcurrency) {
					mu.Lock()
					conflicts++
					mu.Unlock()
					continue
				}
				if err != nil {
					errs <- err
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent append: %v", err)
	}
	for id, versions := range own {
		for i, v := range versions {
			if v != uint64(i+1) {
				t.Fatalf("stream %s got versions %v, want 1..%d", id, versions, appends)
			}
		}
	}
	got, err := s.ReadStream(c, shared, 1, 0)
	if err != nil || len(got) != writers {
		t.Fatalf("contended stream holds %d events (%v), want %d", len(got), err, writers)
	}
	for i, e := range got {
		if e.Version != uint64(i+1) {
			t.Errorf("contended stream event %d has version %d", i, e.Version)
		}
	}
	t.Logf("%d conflicts surfaced and retried", conflicts)
}

func reopens(t *testing.T, open Opener) {
	c := ctx(t)
	id := stream("reopen")
	s, err := open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	evs := events(3, "before")
	r, err := s.Append(c, id, eventstore.NoStream, evs)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := s.Append(c, id, eventstore.Any, events(1, "closed")); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("append after close: err = %v, want ErrClosed", err)
	}
	s2 := mustOpen(t, open)
	got, err := s2.ReadStream(c, id, 1, 0)
	if err != nil {
		t.Fatalf("read after reopen: %v", err)
	}
	if diff := cmp.Diff(evs, data(got)); diff != "" {
		t.Errorf("stream after reopen (-want +got):\n%s", diff)
	}
	if head, _ := s2.Head(c); head < r.Position {
		t.Errorf("head after reopen = %d, want at least %d", head, r.Position)
	}
	if _, err := s2.Append(c, id, eventstore.NoStream, events(1, "again")); !errors.Is(err, eventstore.ErrConcurrency) {
		t.Errorf("no-stream append after reopen: err = %v, want ErrConcurrency", err)
	}
	r2, err := s2.Append(c, id, eventstore.Exact(3), events(1, "after"))
	if err != nil || r2.Version != 4 || r2.Position <= r.Position {
		t.Errorf("append after reopen = %+v, %v; want version 4 after position %d", r2, err, r.Position)
	}
	if again, err := s2.Append(c, id, eventstore.Any, evs); err != nil || again != r {
		t.Errorf("retry after reopen = %+v, %v; want the first result %+v", again, err, r)
	}
}
