package rediscircuit_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/internal/rediscircuit"
	"github.com/edutrack/edutrack/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout is short enough that a test waits out a few of them against a hung Redis; tests where
// Redis answers use patient instead, so a slow -race run cannot count an answer as a timeout.
const (
	timeout = 50 * time.Millisecond
	patient = 5 * time.Second
)

func TestBreaker(t *testing.T) {
	ctx := context.Background()
	addr := testredis.Start(t)

	t.Run("opens_after_the_set_number_of_timeouts_in_a_row", func(t *testing.T) {
		proxy := testredis.NewProxy(t, addr)
		client := newClient(t, proxy.Addr())
		b := newBreaker(t, client, rediscircuit.Settings{Timeout: timeout, Failures: 3, Cooldown: time.Hour})
		proxy.Hang()
		for i := range 3 {
			if s := b.State(); s != rediscircuit.Closed {
				t.Fatalf("state after %d timeouts = %d; want closed", i, s)
			}
			err := b.Do(ctx, func(ctx context.Context) error { return client.Get(ctx, "k").Err() })
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Do with Redis hung = %v; want the operation's deadline exceeded", err)
			}
		}
		if s := b.State(); s != rediscircuit.Open {
			t.Fatalf("state after 3 timeouts = %d; want open (%d)", s, rediscircuit.Open)
		}
	})

	t.Run("counts_only_failures_in_a_row", func(t *testing.T) {
		client := newClient(t, addr)
		b := newBreaker(t, client, rediscircuit.Settings{Timeout: patient, Failures: 2, Cooldown: time.Hour})
		down := errors.New("no server") // what a failed dial looks like to the breaker: not a reply
		for range 5 {
			_ = b.Do(ctx, func(context.Context) error { return down })
			if err := b.Do(ctx, func(ctx context.Context) error { return client.Ping(ctx).Err() }); err != nil {
				t.Fatal(err)
			}
		}
		if s := b.State(); s != rediscircuit.Closed {
			t.Fatalf("state = %d; want closed: no two failures came in a row", s)
		}
	})

	t.Run("never_opens_on_errors_that_Redis_answers", func(t *testing.T) {
		client := newClient(t, addr)
		b := newBreaker(t, client, rediscircuit.Settings{Timeout: patient, Failures: 1, Cooldown: time.Hour})
		client.RPush(ctx, t.Name()+":list", "x")
		for _, op := range []func(ctx context.Context) error{
			func(ctx context.Context) error { return client.Get(ctx, t.Name()+":list").Err() },    // WRONGTYPE
			func(ctx context.Context) error { return client.Get(ctx, t.Name()+":missing").Err() }, // redis.Nil
			func(ctx context.Context) error { return client.Do(ctx, "NO-SUCH-COMMAND").Err() },
		} {
			var re redis.Error
			if err := b.Do(ctx, op); !errors.As(err, &re) {
				t.Fatalf("Do = %v; want the error Redis answered", err)
			}
		}
		if s := b.State(); s != rediscircuit.Closed {
			t.Fatalf("state = %d; want closed: Redis answered each time", s)
		}
	})

	t.Run("never_opens_on_a_caller_that_gave_up", func(t *testing.T) {
		proxy := testredis.NewProxy(t, addr)
		client := newClient(t, proxy.Addr())
		b := newBreaker(t, client, rediscircuit.Settings{Timeout: patient, Failures: 1, Cooldown: time.Hour})
		proxy.Hang()
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := b.Do(cancelled, func(ctx context.Context) error { return client.Get(ctx, "k").Err() }); !errors.Is(err, context.Canceled) {
			t.Fatalf("Do with a cancelled context = %v; want context.Canceled", err)
		}
		// A caller whose deadline comes before the breaker's own.
		hurried, cancel := context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
		if err := b.Do(hurried, func(ctx context.Context) error { return client.Get(ctx, "k").Err() }); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Do past the caller's deadline = %v; want context.DeadlineExceeded", err)
		}
		if s := b.State(); s != rediscircuit.Closed {
			t.Fatalf("state = %d; want closed: only the callers gave up", s)
		}
	})

	t.Run("when_open_answers_at_once_without_running_the_operation", func(t *testing.T) {
		b := tripped(t, addr, time.Hour)
		ran := false
		for range 10 {
			if err := b.Do(ctx, func(context.Context) error { ran = true; return nil }); !errors.Is(err, rediscircuit.ErrOpen) {
				t.Fatalf("Do with the circuit open = %v; want ErrOpen", err)
			}
		}
		if ran {
			t.Fatal("the operation ran with the circuit open")
		}
	})

	t.Run("probes_in_the_background_and_stays_open_while_the_probe_fails", func(t *testing.T) {
		proxy := testredis.NewProxy(t, addr)
		log := &records{}
		b := newBreaker(t, newClient(t, proxy.Addr()), rediscircuit.Settings{Timeout: timeout, Failures: 1, Cooldown: 10 * time.Millisecond, Logger: slog.New(log)})
		proxy.Hang()
		_ = b.Do(ctx, func(ctx context.Context) error { return errors.New("no server") })
		waitUntil(t, "the cooldown ends", func() bool { return b.State() == rediscircuit.HalfOpen })
		ran := false
		if err := b.Do(ctx, func(context.Context) error { ran = true; return nil }); !errors.Is(err, rediscircuit.ErrOpen) {
			t.Fatalf("Do once half-open = %v; want ErrOpen: the probe goes first, in the background", err)
		}
		waitUntil(t, "the failed probe opens the circuit again", func() bool { return log.count("open") == 2 })
		if ran {
			t.Fatal("the operation ran while the circuit was not closed")
		}
	})

	t.Run("closes_once_Redis_answers_the_probe", func(t *testing.T) {
		proxy := testredis.NewProxy(t, addr)
		log := &records{}
		client := newClient(t, proxy.Addr())
		b := newBreaker(t, client, rediscircuit.Settings{Timeout: timeout, Failures: 1, Cooldown: 10 * time.Millisecond, Logger: slog.New(log)})
		proxy.Hang()
		_ = b.Do(ctx, func(ctx context.Context) error { return client.Get(ctx, "k").Err() })
		if s := b.State(); s != rediscircuit.Open {
			t.Fatalf("state with Redis hung = %d; want open", s)
		}
		proxy.Restore()
		waitUntil(t, "a probe closes the circuit", func() bool {
			_ = b.Do(ctx, func(context.Context) error { return nil }) // starts the probe when one is due
			return b.State() == rediscircuit.Closed
		})
		// A probe that met the connection the proxy held could fail first and log the circuit
		// opening again in between.
		lines := log.lines()
		got := []string{lines[0], lines[len(lines)-1]}
		want := []string{"WARN open from=closed probe_every=10ms", "INFO closed from=half-open"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("first and last log lines (-want +got):\n%s", diff)
		}
	})

	t.Run("sends_one_PING_however_many_calls_find_it_half_open", func(t *testing.T) {
		proxy := testredis.NewProxy(t, addr)
		b := newBreaker(t, newClient(t, proxy.Addr()), rediscircuit.Settings{Timeout: timeout, Failures: 1, Cooldown: 10 * time.Millisecond})
		proxy.Hang()
		_ = b.Do(ctx, func(ctx context.Context) error { return errors.New("no server") })
		proxy.Restore()
		admin := newClient(t, addr)
		admin.ConfigResetStat(ctx)
		waitUntil(t, "the cooldown ends", func() bool { return b.State() == rediscircuit.HalfOpen })
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() { _ = b.Do(ctx, func(context.Context) error { return nil }) })
		}
		wg.Wait()
		waitUntil(t, "the probe closes the circuit", func() bool { return b.State() == rediscircuit.Closed })
		if n := pings(t, admin); n != 1 {
			t.Fatalf("Redis got %d PINGs; want the one probe", n)
		}
	})

	t.Run("numbers_its_states_for_a_gauge", func(t *testing.T) {
		if got := []rediscircuit.State{rediscircuit.Closed, rediscircuit.HalfOpen, rediscircuit.Open}; !cmp.Equal(got, []rediscircuit.State{0, 1, 2}) {
			t.Fatalf("closed, half-open, open = %v; want 0, 1, 2, as the gauges' help texts say", got)
		}
	})
}

func TestNew(t *testing.T) {
	client := newClient(t, "127.0.0.1:1")
	good := rediscircuit.Settings{Timeout: time.Second, Failures: 1, Cooldown: time.Second,
		Logger: slog.New(slog.DiscardHandler), OpenMessage: "open", ClosedMessage: "closed"}
	for name, tc := range map[string]struct {
		client rediscircuit.Pinger
		change func(*rediscircuit.Settings)
	}{
		"refuses_a_nil_client":         {nil, func(*rediscircuit.Settings) {}},
		"refuses_a_nil_logger":         {client, func(s *rediscircuit.Settings) { s.Logger = nil }},
		"refuses_a_zero_timeout":       {client, func(s *rediscircuit.Settings) { s.Timeout = 0 }},
		"refuses_zero_failures":        {client, func(s *rediscircuit.Settings) { s.Failures = 0 }},
		"refuses_a_negative_cooldown":  {client, func(s *rediscircuit.Settings) { s.Cooldown = -time.Second }},
		"refuses_an_empty_log_message": {client, func(s *rediscircuit.Settings) { s.ClosedMessage = "" }},
	} {
		t.Run(name, func(t *testing.T) {
			s := good
			tc.change(&s)
			if b, err := rediscircuit.New(tc.client, s); err == nil {
				t.Fatalf("New = %v; want an error", b)
			}
		})
	}
	t.Run("starts_closed", func(t *testing.T) {
		b, err := rediscircuit.New(client, good)
		if err != nil {
			t.Fatal(err)
		}
		if s := b.State(); s != rediscircuit.Closed {
			t.Fatalf("state = %d; want closed", s)
		}
	})
}

// newBreaker fills in the settings a test leaves empty: a logger that discards, and messages.
func newBreaker(t *testing.T, client rediscircuit.Pinger, s rediscircuit.Settings) *rediscircuit.Breaker {
	t.Helper()
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	s.OpenMessage, s.ClosedMessage = "open", "closed"
	b, err := rediscircuit.New(client, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tripped is a breaker whose circuit one failure has opened.
func tripped(t *testing.T, addr string, cooldown time.Duration) *rediscircuit.Breaker {
	t.Helper()
	b := newBreaker(t, newClient(t, addr), rediscircuit.Settings{Timeout: timeout, Failures: 1, Cooldown: cooldown})
	_ = b.Do(context.Background(), func(context.Context) error { return errors.New("no server") })
	if s := b.State(); s != rediscircuit.Open {
		t.Fatalf("state after a failure with Failures 1 = %d; want open", s)
	}
	return b
}

// newClient dials once, and lets the breaker's deadline reach the socket, as its callers' clients do.
func newClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, DialerRetries: 1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// pings is how many PINGs the server has answered since its statistics were last reset.
func pings(t *testing.T, admin *redis.Client) int {
	t.Helper()
	info, err := admin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_ping:calls="); ok {
			calls, _, _ := strings.Cut(rest, ",")
			n, err := strconv.Atoi(calls)
			if err != nil {
				t.Fatalf("commandstats line %q: %v", line, err)
			}
			return n
		}
	}
	return 0
}

// waitUntil polls cond until it holds, failing the test after 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// records is a slog.Handler that keeps each record as "LEVEL message key=value ...".
type records struct {
	mu  sync.Mutex
	out []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }

func (r *records) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	r.mu.Lock()
	r.out = append(r.out, line)
	r.mu.Unlock()
	return nil
}

func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.out...)
}

// count is how many records have message msg.
func (r *records) count(msg string) int {
	n := 0
	for _, l := range r.lines() {
		if _, m, _ := strings.Cut(l, " "); strings.HasPrefix(m, msg+" ") {
			n++
		}
	}
	return n
}
