package redischanges_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/internal/testredis"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/changes/changestest"
	"github.com/edutrack/edutrack/projections/changes/redischanges"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// patient is for tests that are not about timeouts: a slow -race run must not turn a contract
// test into a missed batch and a Resync.
const patient = 5 * time.Second

func TestFeed(t *testing.T) {
	client := newClient(t, testredis.Start(t))
	changestest.Run(t, func(t *testing.T) changes.Feed {
		reg := prometheus.NewRegistry()
		f := newFeed(t, client, redischanges.Options{Prefix: t.Name() + ":", Buffer: changestest.Buffer,
			Timeout: patient, HealthCheck: patient, Registerer: reg})
		t.Cleanup(func() {
			if n := metric(t, reg, "edutrack_changes_publish_errors_total", ""); n != 0 {
				t.Errorf("%v publish errors on a healthy server; want 0", n)
			}
			if n := metric(t, reg, "edutrack_changes_resyncs_total", "reconnect"); n != 0 {
				t.Errorf("%v resyncs for a lost subscription on a healthy server; want 0", n)
			}
		})
		return f
	})
}

// An outage of Redis between processes: the publisher and a subscriber reach it through a proxy
// that hangs, another subscriber reaches it directly and stays connected.
func TestOutage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := testredis.Start(t)
	proxy := testredis.NewProxy(t, addr)
	through, direct := patientClient(t, proxy.Addr()), newClient(t, addr)
	reg := prometheus.NewRegistry()
	quick := redischanges.Options{Prefix: "outage:", Timeout: 100 * time.Millisecond, HealthCheck: 50 * time.Millisecond,
		RetryDelay: 10 * time.Millisecond, BreakerFailures: 2, BreakerCooldown: 20 * time.Millisecond}
	opts := quick
	opts.Registerer = reg
	feed := newFeed(t, through, opts) // the projecting process, which also serves live clients
	other := newFeed(t, direct, redischanges.Options{Prefix: "outage:", Timeout: patient, HealthCheck: patient})
	cut, stays := subscribe(t, ctx, feed), subscribe(t, ctx, other)

	publish := func(pos uint64) error { return feed.Publish(ctx, batch(pos)) }
	if err := publish(1); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan changes.Batch{cut, stays} {
		if b := next(t, ch); b.Resync || b.Changes[0].Position != 1 {
			t.Fatalf("before the outage: got %+v, want the batch at 1", b)
		}
	}

	proxy.Hang()
	for pos := uint64(2); pos <= 6; pos++ {
		if err := publish(pos); err == nil {
			t.Fatalf("publish %d to a hung Redis succeeded", pos)
		}
	}
	if n := metric(t, reg, "edutrack_changes_publish_errors_total", ""); n < 2 {
		t.Errorf("publish errors = %v; want at least 2, the ones that opened the circuit", n)
	}
	if n := metric(t, reg, "edutrack_changes_publish_skipped_total", ""); n < 1 {
		t.Errorf("publishes skipped = %v; want some, once 2 failed in a row", n)
	}

	proxy.Restore()
	// Publish until batches published after the outage reach both subscribers: each must get a
	// Resync first. The one cut off may miss the first of them, while it dials again.
	subs := map[string]<-chan changes.Batch{"cut off": cut, "connected throughout": stays}
	seen := map[string][]changes.Batch{}
	reached := func(name string) bool {
		return slices.ContainsFunc(seen[name], func(b changes.Batch) bool { return !b.Resync })
	}
	last := uint64(6)
	waitFor(t, "batches published after the outage reach both subscribers", func() bool {
		last++
		_ = publish(last) // fails while the circuit is open, or the client dials again
		deadline := time.After(20 * time.Millisecond)
		for {
			select {
			case b := <-cut:
				seen["cut off"] = append(seen["cut off"], b)
			case b := <-stays:
				seen["connected throughout"] = append(seen["connected throughout"], b)
			case <-deadline:
				return reached("cut off") && reached("connected throughout")
			}
		}
	})
	for name := range subs {
		got := seen[name]
		if !got[0].Resync {
			t.Errorf("subscriber %s got %+v first after the outage; want a Resync: batches were lost", name, got[0])
		}
		after := uint64(6)
		for _, b := range got {
			if !b.Resync && b.Changes[0].Position <= after {
				t.Errorf("subscriber %s got the batch at %d after %d (batches 2 to 6 were never published)", name, b.Changes[0].Position, after)
			} else if !b.Resync {
				after = b.Changes[0].Position
			}
		}
	}
	waitFor(t, "the resync for the lost subscription is counted", func() bool {
		return metric(t, reg, "edutrack_changes_resyncs_total", "reconnect") == 1
	})
	// And batches flow again, without more Resyncs.
	for p := last + 1; p <= last+3; p++ {
		if err := publish(p); err != nil {
			t.Fatalf("publish %d after the outage: %v", p, err)
		}
	}
	for name, ch := range subs {
		for p := last + 1; p <= last+3; p++ {
			if b := next(t, ch); b.Resync || b.Changes[0].Position != p {
				t.Fatalf("subscriber %s, after the outage: got %+v, want the batch at %d", name, b, p)
			}
		}
	}
}

// A subscriber that stays connected while a publish fails (the publisher's connection hung,
// not Redis) gets a Resync of the projection before the next batch.
func TestAFailedPublishIsMadeUpWithAResync(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := testredis.Start(t)
	proxy := testredis.NewProxy(t, addr)
	publisher := newFeed(t, patientClient(t, proxy.Addr()), redischanges.Options{Prefix: "failed:", Timeout: 50 * time.Millisecond,
		BreakerFailures: 1000})
	ch := subscribe(t, ctx, newFeed(t, newClient(t, addr), redischanges.Options{Prefix: "failed:", Timeout: patient, HealthCheck: patient}))
	proxy.Hang()
	if err := publisher.Publish(ctx, batch(1)); err == nil || errors.Is(err, redischanges.ErrCircuitOpen) {
		t.Fatalf("publish to a hung Redis = %v; want it to fail, having tried", err)
	}
	proxy.Restore()
	pos := uint64(1)
	waitFor(t, "a publish goes through once Redis answers again", func() bool {
		pos++
		return publisher.Publish(ctx, batch(pos)) == nil
	})
	// Before the batch that went through: a Resync of each projection whose batches failed,
	// batch 1's at least (the client may have failed more while it dialed again), and nothing else.
	resynced := map[string]bool{}
	for {
		b := next(t, ch)
		if !b.Resync {
			if diff := cmp.Diff(batch(pos), b); diff != "" {
				t.Errorf("the first batch after the failure (-want +got):\n%s", diff)
			}
			break
		}
		resynced[b.Projection] = true
	}
	if !resynced["learners"] || resynced[""] {
		t.Errorf("Resyncs before the batch: %v; want one of learners, whose batch 1 failed, and none of every projection", resynced)
	}
}

// A connection that stays open but carries nothing (a hung server, a network that drops
// packets) sends no error: the subscription notices that its PING goes unanswered, dials again,
// and resyncs once through.
func TestASilentConnectionIsDialedAgain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := testredis.Start(t)
	proxy := newFreezer(t, addr)
	reg := prometheus.NewRegistry()
	f := newFeed(t, patientClient(t, proxy.addr()), redischanges.Options{Prefix: "silent:", Timeout: 50 * time.Millisecond,
		HealthCheck: 30 * time.Millisecond, RetryDelay: 10 * time.Millisecond, Registerer: reg})
	ch := subscribe(t, ctx, f)
	publisher := newFeed(t, newClient(t, addr), redischanges.Options{Prefix: "silent:", Timeout: patient})
	if err := publisher.Publish(ctx, batch(1)); err != nil {
		t.Fatal(err)
	}
	if b := next(t, ch); b.Resync || b.Changes[0].Position != 1 {
		t.Fatalf("got %+v; want the batch at 1", b)
	}
	proxy.freeze(true)
	if err := publisher.Publish(ctx, batch(2)); err != nil { // lost on the way to the subscriber
		t.Fatal(err)
	}
	waitFor(t, "the subscription gives up its silent connection and dials again", func() bool { return proxy.accepted() > 1 })
	proxy.freeze(false)
	pos := uint64(2)
	var got []changes.Batch
	waitFor(t, "a batch reaches the subscription again", func() bool {
		pos++
		if err := publisher.Publish(ctx, batch(pos)); err != nil {
			t.Fatal(err)
		}
		for {
			select {
			case b := <-ch:
				got = append(got, b)
				if !b.Resync {
					return true
				}
			case <-time.After(20 * time.Millisecond):
				return false
			}
		}
	})
	if !got[0].Resync {
		t.Fatalf("got %+v first after the silence; want a Resync: batch 2 was lost", got[0])
	}
	if n := metric(t, reg, "edutrack_changes_resyncs_total", "reconnect"); n != 1 {
		t.Errorf("resyncs for a lost subscription = %v; want 1", n)
	}
}

// freezer relays TCP connections to a server until frozen: then it drops what either side
// sends, and closes nothing, like a network that loses packets.
type freezer struct {
	l      net.Listener
	target string
	frozen atomic.Bool
	n      atomic.Int64
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{l: l, target: target}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.n.Add(1)
			server, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, server)
			f.mu.Unlock()
			f.wg.Add(2)
			go f.relay(server, c)
			go f.relay(c, server)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *freezer) relay(dst, src net.Conn) {
	defer f.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		if !f.frozen.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				src.Close()
				return
			}
		}
	}
}

func (f *freezer) addr() string    { return f.l.Addr().String() }
func (f *freezer) freeze(on bool)  { f.frozen.Store(on) }
func (f *freezer) accepted() int64 { return f.n.Load() }

func TestSubscribeOnAHungRedis(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := testredis.Start(t)
	proxy := testredis.NewProxy(t, addr)
	proxy.Hang()
	reg := prometheus.NewRegistry()
	f := newFeed(t, patientClient(t, proxy.Addr()), redischanges.Options{Prefix: "hung:", Timeout: 50 * time.Millisecond,
		HealthCheck: 50 * time.Millisecond, RetryDelay: 10 * time.Millisecond, Registerer: reg})
	ch := subscribe(t, ctx, f) // returns, unconfirmed
	proxy.Restore()
	publisher := newFeed(t, newClient(t, addr), redischanges.Options{Prefix: "hung:", Timeout: patient})
	pos := uint64(0)
	var got []changes.Batch
	waitFor(t, "a batch reaches the subscription made while Redis hung", func() bool {
		pos++
		if err := publisher.Publish(ctx, batch(pos)); err != nil {
			t.Fatal(err)
		}
		for {
			select {
			case b := <-ch:
				got = append(got, b)
				if !b.Resync {
					return true
				}
			case <-time.After(20 * time.Millisecond):
				return false
			}
		}
	})
	if len(got) < 2 || !got[0].Resync {
		t.Fatalf("got %+v; want a Resync first: batches published before Redis confirmed the subscription were missed", got)
	}
	if n := metric(t, reg, "edutrack_changes_resyncs_total", "reconnect"); n != 1 {
		t.Errorf("resyncs for a lost subscription = %v; want 1", n)
	}
}

func TestAMessageThatIsNotABatchResyncs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := newClient(t, testredis.Start(t))
	reg := prometheus.NewRegistry()
	f := newFeed(t, client, redischanges.Options{Prefix: "garbage:", Timeout: patient, HealthCheck: patient, Registerer: reg})
	ch := subscribe(t, ctx, f)
	if err := client.Publish(ctx, "garbage:changes", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.Publish(ctx, batch(1)); err != nil {
		t.Fatal(err)
	}
	if b := next(t, ch); !b.Resync || b.Projection != "" {
		t.Fatalf("after a message that is no batch: %+v; want a Resync of every projection", b)
	}
	if b := next(t, ch); b.Resync || b.Changes[0].Position != 1 {
		t.Fatalf("then %+v; want the batch at 1", b)
	}
	if n := metric(t, reg, "edutrack_changes_resyncs_total", "undecodable"); n != 1 {
		t.Errorf("resyncs for undecodable messages = %v; want 1", n)
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	client := newClient(t, testredis.Start(t))
	f, err := redischanges.New(client, redischanges.Options{Prefix: "close:", Timeout: patient})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := f.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for range ch {
	}
	after, err := f.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for range after {
	}
}

func TestNew(t *testing.T) {
	client := newClient(t, "127.0.0.1:1")
	for name, tc := range map[string]struct {
		client redis.UniversalClient
		opts   redischanges.Options
		want   string
	}{
		"refuses_a_nil_client":       {nil, redischanges.Options{}, "nil client"},
		"refuses_a_negative_timeout": {client, redischanges.Options{Timeout: -time.Second}, "negative timeout"},
		"refuses_a_negative_buffer":  {client, redischanges.Options{Buffer: -1}, "buffer -1"},
	} {
		t.Run(name, func(t *testing.T) {
			f, err := redischanges.New(tc.client, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want an error containing %q", f, err, tc.want)
			}
		})
	}
	t.Run("refuses_a_second_feed_on_one_registry", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		newFeed(t, client, redischanges.Options{Registerer: reg})
		if _, err := redischanges.New(client, redischanges.Options{Registerer: reg}); err == nil {
			t.Fatal("a second feed registered its metrics on the same registry")
		}
	})
}

func TestOpen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := testredis.Start(t)
	f, err := redischanges.Open("redis://"+addr+"/0", redischanges.Options{Prefix: "open:", Timeout: patient})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ch := subscribe(t, ctx, f)
	if err := f.Publish(ctx, batch(1)); err != nil {
		t.Fatal(err)
	}
	if b := next(t, ch); b.Resync || b.Changes[0].Position != 1 {
		t.Fatalf("got %+v; want the batch at 1", b)
	}
	if _, err := redischanges.Open("mysql://nope", redischanges.Options{}); err == nil {
		t.Fatal("Open took a URL that is not Redis's")
	}
}

func TestPublishFailuresAreLoggedNowAndThen(t *testing.T) {
	var logs syncBuffer
	proxy := testredis.NewProxy(t, testredis.Start(t))
	proxy.Hang()
	f := newFeed(t, patientClient(t, proxy.Addr()), redischanges.Options{Timeout: 10 * time.Millisecond, BreakerFailures: 1000,
		LogEvery: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for pos := range uint64(5) {
		if err := f.Publish(context.Background(), batch(pos+1)); err == nil {
			t.Fatal("publish to a hung Redis succeeded")
		} else if errors.Is(err, redischanges.ErrCircuitOpen) {
			t.Fatal("the circuit opened before its 1000 failures")
		}
	}
	if n := strings.Count(logs.String(), "change feed publish failed"); n != 1 {
		t.Errorf("%d log lines for 5 failures within the hour; want 1:\n%s", n, logs.String())
	}
}

func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// patientClient has no read or write timeout of its own and an hour's dial timeout: only the
// feed's own deadlines, which ContextTimeoutEnabled lets reach the socket, bound its waits on a
// hung server. It does not retry dials: go-redis dials in a goroutine of its own that outlives
// the caller's context, and retries would keep it alive past the test, which goleak reports.
func patientClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Hour, ReadTimeout: -1, WriteTimeout: -1,
		DialerRetries: 1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func newFeed(t *testing.T, client redis.UniversalClient, opts redischanges.Options) *redischanges.Feed {
	t.Helper()
	f, err := redischanges.New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func subscribe(t *testing.T, ctx context.Context, f changes.Feed) <-chan changes.Batch {
	t.Helper()
	ch, err := f.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// next is the next batch on ch, failing the test after 10s without one.
func next(t *testing.T, ch <-chan changes.Batch) changes.Batch {
	t.Helper()
	select {
	case b, ok := <-ch:
		if !ok {
			t.Fatal("the subscription ended")
		}
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no batch within 10s")
	}
	return changes.Batch{}
}

func batch(pos uint64) changes.Batch {
	proj := map[bool]string{true: "learners", false: "courses"}[pos%2 == 1]
	return changes.Batch{Projection: proj, Changes: []changes.Change{{Coll: "dashboards", ID: "ada", Position: pos}},
		CommittedAt: time.Unix(int64(pos), 0).UTC()}
}

// waitFor polls cond until it holds, failing the test after 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric is the value of the counter name (with the reason label, if not empty), or -1.
func metric(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := reason == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetName() == "reason" && l.GetValue() == reason
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A publish that fails is made up for by a Resync as soon as Redis takes publishes again, not at
// the next batch: a read process's live clients learn that they missed a change even when
// nothing is committed for a long while after it.
func TestAFailedPublishIsMadeUpWithoutAnotherBatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := testredis.Start(t)
	proxy := testredis.NewProxy(t, addr)
	publisher := newFeed(t, patientClient(t, proxy.Addr()), redischanges.Options{Prefix: "later:", Timeout: 50 * time.Millisecond,
		RetryDelay: 20 * time.Millisecond, BreakerFailures: 1000})
	ch := subscribe(t, ctx, newFeed(t, newClient(t, addr), redischanges.Options{Prefix: "later:", Timeout: patient, HealthCheck: patient}))
	proxy.Hang()
	if err := publisher.Publish(ctx, batch(1)); err == nil {
		t.Fatal("publish to a hung Redis went through; want it to fail")
	}
	time.Sleep(100 * time.Millisecond) // retries fail while Redis hangs
	proxy.Restore()
	select {
	case b := <-ch:
		if !b.Resync || b.Projection != "learners" {
			t.Fatalf("got %+v; want a Resync of learners, whose batch 1 failed", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Resync within 10s of Redis answering again, with no other publish")
	}
}
