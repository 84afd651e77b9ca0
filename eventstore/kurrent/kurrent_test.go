package kurrent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/eventstoretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestContract runs the port's contract against a real server. The suite names its streams
// with fresh UUIDs, keeps to its own streams when it reads the global log, and starts those
// reads at the head it finds, so it shares a server with other data and other runs; every
// Opener of a test reaches the same server, which is what the reopen test needs.
func TestContract(t *testing.T) {
	url := os.Getenv("EDUTRACK_ESDB_URL")
	if url == "" {
		t.Skip("EDUTRACK_ESDB_URL is not set: the KurrentDB contract suite needs a running KurrentDB/EventStoreDB " +
			"(e.g. EDUTRACK_ESDB_URL='kurrentdb://localhost:2113?tls=false')")
	}
	eventstoretest.Run(t, func(t *testing.T) eventstoretest.Opener {
		return func() (eventstore.Store, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := Open(ctx, url, Options{Logger: quietLogger(t)})
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	})
}

// TestContractOnProtocolFake runs the same contract through the real client against the
// protocol fake, so the adapter's logic is checked on every run here, where no server can.
func TestContractOnProtocolFake(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstoretest.Opener {
		f := startFake(t)
		f.appendSystem("$stats-127.0.0.1:2113", "$statsCollected") // the log never starts empty
		return func() (eventstore.Store, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := Open(ctx, f.url(), Options{Logger: quietLogger(t)})
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	})
}

func TestOpen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Run("fails_when_nobody_listens", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		lis.Close()
		s, err := Open(ctx, "kurrentdb://"+addr+"?tls=false&maxDiscoverAttempts=1", Options{Logger: quietLogger(t)})
		if err == nil {
			s.Close()
			t.Fatal("open succeeded without a server")
		}
	})
	t.Run("refuses_a_bad_connection_string_without_echoing_the_password", func(t *testing.T) {
		for _, conn := range []string{"kurrentdb://admin:s3cret@host:notaport", "http://admin:s3cret@localhost:2113"} {
			s, err := Open(ctx, conn, Options{})
			if err == nil {
				s.Close()
				t.Fatalf("open %q succeeded", conn)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		}
	})
	t.Run("accepts_the_esdb_scheme", func(t *testing.T) {
		f := startFake(t)
		s, err := Open(ctx, "esdb://"+f.addr+"?tls=false", Options{Logger: quietLogger(t)})
		if err != nil {
			t.Fatalf("open with esdb://: %v", err)
		}
		s.Close()
	})
}

func TestAppend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.Run("survives_an_unavailable_node_on_a_fresh_client", func(t *testing.T) {
		f := startFake(t)
		logs := &logRecorder{}
		s := openFake(t, f, Options{Logger: slog.New(logs)})
		evs := someEvents(2)
		f.failNext(codes.Unavailable)
		res, err := s.Append(ctx, "course-1", eventstore.NoStream, evs)
		if err != nil || res.Version != 2 {
			t.Fatalf("append after an unavailable answer = %+v, %v; want version 2", res, err)
		}
		if !logs.contains("replaced the KurrentDB client") {
			t.Errorf("no warning about the replaced client; logged %q", logs.messages())
		}
		got, err := s.ReadStream(ctx, "course-1", 1, 0)
		if err != nil || len(got) != 2 {
			t.Errorf("stream holds %d events (%v), want 2", len(got), err)
		}
	})
	t.Run("answers_a_retry_the_server_recognised_with_the_first_result", func(t *testing.T) {
		f := startFake(t)
		s := openFake(t, f, Options{})
		evs := someEvents(3)
		first, err := s.Append(ctx, "course-2", eventstore.NoStream, evs)
		if err != nil {
			t.Fatal(err)
		}
		// The server answers this one without a position; the adapter reads it back.
		again, err := s.Append(ctx, "course-2", eventstore.NoStream, evs[:2])
		want := eventstore.AppendResult{Version: 2, Position: 0}
		got, _ := s.ReadStream(ctx, "course-2", 2, 1)
		if len(got) == 1 {
			want.Position = got[0].Position
		}
		if err != nil || again != want || again.Position == 0 || again.Position >= first.Position {
			t.Errorf("retry of the first two events = %+v, %v; want %+v", again, err, want)
		}
	})
	t.Run("refuses_a_retry_at_a_later_version_that_adds_events", func(t *testing.T) {
		f := startFake(t)
		s := openFake(t, f, Options{})
		evs := someEvents(2)
		if _, err := s.Append(ctx, "course-3", eventstore.NoStream, evs); err != nil {
			t.Fatal(err)
		}
		_, err := s.Append(ctx, "course-3", eventstore.NoStream, append(evs, someEvents(1)...))
		if !errors.Is(err, eventstore.ErrDuplicateEvent) {
			t.Errorf("append repeating two ids and adding one: err = %v, want ErrDuplicateEvent", err)
		}
	})
	t.Run("refuses_an_event_without_an_id", func(t *testing.T) {
		f := startFake(t)
		s := openFake(t, f, Options{})
		evs := someEvents(1)
		evs[0].ID = uuid.Nil
		if _, err := s.Append(ctx, "course-4", eventstore.Any, evs); err == nil {
			t.Error("append of an event without an id succeeded")
		}
	})
}

func TestGlobalLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := startFake(t)
	s := openFake(t, f, Options{})
	evs := someEvents(3)
	if _, err := s.Append(ctx, "course-1", eventstore.NoStream, evs[:1]); err != nil {
		t.Fatal(err)
	}
	// More of the server's own records than one page holds, between and after our events.
	for range 3 * readPage {
		f.appendSystem("$stats-127.0.0.1:2113", "$statsCollected")
	}
	last, err := s.Append(ctx, "course-1", eventstore.Exact(1), evs[1:])
	if err != nil {
		t.Fatal(err)
	}
	for range 2 * readPage {
		f.appendSystem("$$course-1", "$metadata")
	}

	t.Run("head_is_the_last_event_of_ours", func(t *testing.T) {
		if head, err := s.Head(ctx); err != nil || head != last.Position {
			t.Errorf("head = %d, %v; want %d, the last event before the server's records", head, err, last.Position)
		}
	})
	t.Run("reads_past_the_server's_records_in_one_call", func(t *testing.T) {
		all, err := s.ReadAll(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ids(evs), recordedIDs(all)); diff != "" {
			t.Errorf("global log (-want +got):\n%s", diff)
		}
		one, err := s.ReadAll(ctx, all[0].Position, 1)
		if err != nil || len(one) != 1 || one[0].ID != evs[1].ID {
			t.Errorf("read one after the first event = %v, %v; want the second event despite %d records between",
				recordedIDs(one), err, 3*readPage)
		}
	})
	t.Run("reads_nothing_after_its_head", func(t *testing.T) {
		for _, after := range []uint64{last.Position, ^uint64(0) >> 1} {
			if got, err := s.ReadAll(ctx, after, 10); err != nil || len(got) != 0 {
				t.Errorf("read after %d = %v, %v; want nothing", after, recordedIDs(got), err)
			}
		}
	})
}

func TestSubscription(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.Run("resumes_after_a_drop_with_no_loss_and_no_repeat", func(t *testing.T) {
		f := startFake(t)
		logs := &logRecorder{}
		s := openFake(t, f, Options{Logger: slog.New(logs), SubscriptionBuffer: 4})
		sub, err := s.Subscribe(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		var want []uuid.UUID
		var got []eventstore.RecordedEvent
		for round := range 5 {
			evs := someEvents(7)
			if _, err := s.Append(ctx, fmt.Sprintf("course-%d", round%2), eventstore.Any, evs); err != nil {
				t.Fatal(err)
			}
			want = append(want, ids(evs)...)
			f.appendSystem("$stats-127.0.0.1:2113", "$statsCollected")
			// Drop while the buffer is full and the stream is mid-way.
			f.dropSubscriptions()
			for len(got) < len(want) {
				batch, err := sub.Next(ctx, 3)
				if err != nil {
					t.Fatalf("next after %d events: %v", len(got), err)
				}
				got = append(got, batch...)
			}
		}
		if diff := cmp.Diff(want, recordedIDs(got)); diff != "" {
			t.Errorf("events through drops (-want +got):\n%s", diff)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Position <= got[i-1].Position {
				t.Errorf("position %d after %d", got[i].Position, got[i-1].Position)
			}
		}
		if !logs.contains("subscription dropped; resuming") {
			t.Errorf("no warning about the drop; logged %q", logs.messages())
		}
	})
	t.Run("starts_after_a_position_past_the_end_and_delivers_what_passes_it", func(t *testing.T) {
		f := startFake(t)
		s := openFake(t, f, Options{})
		if _, err := s.Append(ctx, "course-1", eventstore.Any, someEvents(1)); err != nil {
			t.Fatal(err)
		}
		end, err := s.lastRecord(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A checkpoint the log reaches only some appends later (say, from before a restore).
		after := end.Commit + 5000
		sub, err := s.Subscribe(ctx, after)
		if err != nil {
			t.Fatalf("subscribe after %d, past the end at %d: %v", after, end.Commit, err)
		}
		defer sub.Close()
		var want []uuid.UUID
		for want == nil {
			evs := someEvents(1)
			res, err := s.Append(ctx, "course-1", eventstore.Any, evs)
			if err != nil {
				t.Fatal(err)
			}
			if res.Position > after {
				want = ids(evs)
			}
		}
		got, err := sub.Next(ctx, 10)
		if err != nil || !cmp.Equal(want, recordedIDs(got)) {
			t.Errorf("next = %v, %v; want only %v, the first event after %d", recordedIDs(got), err, want, after)
		}
	})
	t.Run("gives_up_when_the_server_denies_it_and_says_why", func(t *testing.T) {
		f := startFake(t)
		s := openFake(t, f, Options{})
		sub, err := s.Subscribe(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		f.failNext(codes.PermissionDenied)
		f.dropSubscriptions()
		_, err = sub.Next(ctx, 10)
		if err == nil || errors.Is(err, eventstore.ErrClosed) || !strings.Contains(err.Error(), "AccessDenied") {
			t.Errorf("next after the permission was withdrawn: err = %v, want the denial", err)
		}
	})
	t.Run("closes_with_the_store", func(t *testing.T) {
		f := startFake(t)
		s := openFake(t, f, Options{})
		subs := make([]eventstore.Subscription, 3)
		for i := range subs {
			var err error
			if subs[i], err = s.Subscribe(ctx, 0); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, len(subs))
		for i, sub := range subs {
			wg.Go(func() { _, errs[i] = sub.Next(ctx, 10) })
		}
		time.Sleep(20 * time.Millisecond) // let them wait
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, eventstore.ErrClosed) {
				t.Errorf("waiting next %d after the store closed: err = %v, want ErrClosed", i, err)
			}
		}
		if _, err := s.Subscribe(ctx, 0); !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("subscribe after close: err = %v, want ErrClosed", err)
		}
		waitFor(t, func() bool { return f.openSubscriptions() == 0 }, "the server to see every subscription end")
		for _, sub := range subs {
			sub.Close() // after the store's Close, still fine
		}
	})
	t.Run("close_ends_only_that_subscription", func(t *testing.T) {
		f := startFake(t)
		s := openFake(t, f, Options{})
		a, err := s.Subscribe(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Subscribe(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		a.Close()
		if _, err := a.Next(ctx, 1); !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("next on a closed subscription: err = %v, want ErrClosed", err)
		}
		evs := someEvents(1)
		if _, err := s.Append(ctx, "course-1", eventstore.Any, evs); err != nil {
			t.Fatal(err)
		}
		if got, err := b.Next(ctx, 1); err != nil || len(got) != 1 || got[0].ID != evs[0].ID {
			t.Errorf("next on the other subscription = %v, %v", recordedIDs(got), err)
		}
		waitFor(t, func() bool { return f.openSubscriptions() == 1 }, "the closed subscription to end on the server")
	})
}

func someEvents(n int) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = eventstore.EventData{ID: uuid.New(), Type: "course.drafted.v1", Data: []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Metadata: eventstore.Metadata{CorrelationID: "c", UserID: "u"}}
	}
	return out
}

func ids(evs []eventstore.EventData) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func recordedIDs(evs []eventstore.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quietLogger drops the logs of tests that do not look at them.
func quietLogger(*testing.T) *slog.Logger { return slog.New(slog.DiscardHandler) }

// logRecorder keeps the messages logged at Info or above, for tests that expect a warning.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo
}
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

func (l *logRecorder) contains(part string) bool {
	for _, m := range l.messages() {
		if strings.Contains(m, part) {
			return true
		}
	}
	return false
}
