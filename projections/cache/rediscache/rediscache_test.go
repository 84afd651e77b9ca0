package rediscache_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/internal/testredis"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/cache/cachetest"
	"github.com/edutrack/edutrack/projections/cache/rediscache"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout replaces the 50 ms default where a test is not about timeouts, so a slow -race run
// cannot turn a contract test into a flaky miss.
const testTimeout = 5 * time.Second

func TestCache(t *testing.T) {
	client := newClient(t, testredis.Start(t))
	cachetest.Run(t, func(t *testing.T) cache.Cache {
		c := newCache(t, client, rediscache.Options{Prefix: t.Name() + ":", Timeout: testTimeout})
		t.Cleanup(func() {
			if n := c.Errors(); n != 0 {
				t.Errorf("Errors() = %d after talking to a healthy server; want 0", n)
			}
		})
		return c
	})
}

func TestCacheOnRedis(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, testredis.Start(t))
	opts := func(t *testing.T) rediscache.Options {
		return rediscache.Options{Prefix: t.Name() + ":", Timeout: testTimeout}
	}

	t.Run("shares_entries_between_caches_on_one_server", func(t *testing.T) {
		// Two read processes: two clients, two caches, one Redis.
		addr := client.Options().Addr
		writer := newCache(t, newClient(t, addr), opts(t))
		reader := newCache(t, newClient(t, addr), opts(t))
		writer.Set(ctx, "course:a", cache.Entry{Position: 5, Body: []byte("five")})
		if e, ok := reader.Get(ctx, "course:a"); !ok || e.Position != 5 || string(e.Body) != "five" {
			t.Fatalf("second cache gets %d %q, %v; want 5 \"five\"", e.Position, e.Body, ok)
		}
		reader.Set(ctx, "course:a", cache.Entry{Position: 4, Body: []byte("four")})
		if e, _ := writer.Get(ctx, "course:a"); e.Position != 5 {
			t.Fatalf("an older entry set through the second cache replaced the first's: got position %d", e.Position)
		}
		reader.Delete(ctx, "course:a")
		if _, ok := writer.Get(ctx, "course:a"); ok {
			t.Fatal("a key deleted through the second cache is still found through the first")
		}
	})

	t.Run("orders_positions_above_2_to_the_53_exactly", func(t *testing.T) {
		// 2^60 and 2^60+1 are the same float64: a script comparing Lua numbers would take the
		// older entry as equal and write it.
		c := newCache(t, client, opts(t))
		c.Set(ctx, "k", cache.Entry{Position: 1<<60 + 1, Body: []byte("new")})
		c.Set(ctx, "k", cache.Entry{Position: 1 << 60, Body: []byte("old")})
		if e, _ := c.Get(ctx, "k"); e.Position != 1<<60+1 || string(e.Body) != "new" {
			t.Fatalf("get = %d %q; want %d \"new\"", e.Position, e.Body, uint64(1<<60+1))
		}
		c.Set(ctx, "k", cache.Entry{Position: 1<<64 - 1, Body: []byte("max")})
		if e, _ := c.Get(ctx, "k"); e.Position != 1<<64-1 || string(e.Body) != "max" {
			t.Fatalf("get = %d %q; want the largest position and \"max\"", e.Position, e.Body)
		}
	})

	t.Run("orders_AsOf_above_2_to_the_53_exactly", func(t *testing.T) {
		c := newCache(t, client, opts(t))
		c.Set(ctx, "k", cache.Entry{Position: 1, AsOf: 1<<60 + 1, Body: []byte("later")})
		c.Set(ctx, "k", cache.Entry{Position: 1, AsOf: 1 << 60, Body: []byte("earlier")})
		if e, _ := c.Get(ctx, "k"); e.AsOf != 1<<60+1 || string(e.Body) != "later" {
			t.Fatalf("get = as of %d %q; want as of %d \"later\"", e.AsOf, e.Body, uint64(1<<60+1))
		}
	})

	t.Run("never_meets_a_value_of_the_earlier_format", func(t *testing.T) {
		// The previous release stored an 8-byte position, then the body, under prefix+key: read
		// with this release's header, its body's first bytes would pass for AsOf.
		o := opts(t)
		c := newCache(t, client, o)
		old := append([]byte{0, 0, 0, 0, 0, 0, 0, 9}, `{"title":"stale"}`...)
		client.Set(ctx, o.Prefix+"course:p", old, 0)
		if e, ok := c.Get(ctx, "course:p"); ok {
			t.Fatalf("get = %d %q; want a miss: the value is of the earlier format", e.Position, e.Body)
		}
		c.Set(ctx, "course:p", cache.Entry{Position: 10, Body: []byte("new")})
		if v := client.Get(ctx, o.Prefix+"course:p").Val(); v != string(old) {
			t.Fatalf("the earlier release's value became %q; want it left alone", v)
		}
	})

	t.Run("rewrites_an_entry_at_the_same_position", func(t *testing.T) {
		c := newCache(t, client, opts(t))
		c.Set(ctx, "k", cache.Entry{Position: 3, Body: []byte("first")})
		c.Set(ctx, "k", cache.Entry{Position: 3, Body: []byte("again")})
		if e, _ := c.Get(ctx, "k"); string(e.Body) != "again" {
			t.Fatalf("get = %q; want the re-set body \"again\"", e.Body)
		}
	})

	t.Run("keeps_bodies_byte_for_byte", func(t *testing.T) {
		c := newCache(t, client, opts(t))
		body := []byte{0, 1, 0xff, '\r', '\n', 0}
		c.Set(ctx, "k", cache.Entry{Position: 0, Body: body})
		if e, ok := c.Get(ctx, "k"); !ok || !bytes.Equal(e.Body, body) || e.Position != 0 {
			t.Fatalf("get = %d %q, %v; want 0 %q", e.Position, e.Body, ok, body)
		}
		c.Set(ctx, "empty", cache.Entry{Position: 1})
		if e, ok := c.Get(ctx, "empty"); !ok || len(e.Body) != 0 || e.Position != 1 {
			t.Fatalf("get of an empty body = %d %q, %v; want position 1, found", e.Position, e.Body, ok)
		}
	})

	t.Run("stores_keys_under_its_prefix", func(t *testing.T) {
		c := newCache(t, client, rediscache.Options{Prefix: "tenant-a:", Timeout: testTimeout})
		other := newCache(t, client, rediscache.Options{Prefix: "tenant-b:", Timeout: testTimeout})
		c.Set(ctx, "course:p", cache.Entry{Position: 1, Body: []byte("x")})
		if n := client.Exists(ctx, "tenant-a:v2:course:p").Val(); n != 1 {
			t.Fatalf("EXISTS tenant-a:v2:course:p = %d; want 1", n)
		}
		if _, ok := other.Get(ctx, "course:p"); ok {
			t.Fatal("a cache with another prefix found the key")
		}
	})

	t.Run("applies_the_TTL", func(t *testing.T) {
		o := opts(t)
		o.TTL = time.Minute
		c := newCache(t, client, o)
		c.Set(ctx, "k", cache.Entry{Position: 1, Body: []byte("x")})
		if d := client.PTTL(ctx, o.Prefix+"v2:k").Val(); d <= 0 || d > time.Minute {
			t.Fatalf("PTTL = %s; want in (0, 1m]", d)
		}
		client.Persist(ctx, o.Prefix+"v2:k")
		c.Set(ctx, "k", cache.Entry{Position: 2, Body: []byte("y")})
		if d := client.PTTL(ctx, o.Prefix+"v2:k").Val(); d <= 0 || d > time.Minute {
			t.Fatalf("PTTL after a newer set = %s; want the TTL applied again", d)
		}
	})

	t.Run("keeps_entries_without_expiry_when_the_TTL_is_zero", func(t *testing.T) {
		o := opts(t)
		c := newCache(t, client, o)
		c.Set(ctx, "k", cache.Entry{Position: 1, Body: []byte("x")})
		// go-redis reports Redis's -1 (no expiry) as -1ns; -2 would mean the key is missing.
		if d := client.PTTL(ctx, o.Prefix+"v2:k").Val(); d != -1 {
			t.Fatalf("PTTL = %s; want -1ns (no expiry)", d)
		}
	})

	t.Run("counts_a_value_that_is_not_an_entry_as_an_error", func(t *testing.T) {
		o := opts(t)
		c := newCache(t, client, o)
		client.Set(ctx, o.Prefix+"v2:short", "abcdefghijklmno", 0) // 15 bytes: shorter than a header
		if _, ok := c.Get(ctx, "short"); ok {
			t.Fatal("a 15-byte value was taken for an entry")
		}
		client.RPush(ctx, o.Prefix+"v2:list", "x")
		if _, ok := c.Get(ctx, "list"); ok {
			t.Fatal("a list was taken for an entry")
		}
		if err := c.Set(ctx, "list", cache.Entry{Position: 1, Body: []byte("x")}); !errors.Is(err, rediscache.ErrNotStored) {
			t.Errorf("set over a list = %v; want ErrNotStored", err)
		}
		if n := c.Errors(); n != 3 {
			t.Fatalf("Errors() = %d; want 3 (a short value, a wrong type on get and on set)", n)
		}
		if err := c.Set(ctx, "short", cache.Entry{Position: 1, Body: []byte("x")}); err != nil {
			t.Errorf("set over a value that is not an entry: %v", err)
		}
		if e, ok := c.Get(ctx, "short"); !ok || string(e.Body) != "x" {
			t.Fatalf("get = %q, %v; want a set to replace a value that is not an entry", e.Body, ok)
		}
	})

	t.Run("does_not_count_the_callers_cancellation", func(t *testing.T) {
		c := newCache(t, client, opts(t))
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		c.Set(cancelled, "k", cache.Entry{Position: 1, Body: []byte("x")})
		if _, ok := c.Get(cancelled, "k"); ok {
			t.Fatal("get with a cancelled context found an entry")
		}
		c.Delete(cancelled, "k")
		if n := c.Errors(); n != 0 {
			t.Fatalf("Errors() = %d after cancelled calls; want 0: the caller gave up, Redis did not fail", n)
		}
	})

	t.Run("answers_ping", func(t *testing.T) {
		c := newCache(t, client, opts(t))
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
	})
}

func TestCacheWhenRedisIsDown(t *testing.T) {
	ctx := context.Background()
	entry := cache.Entry{Position: 1, Body: []byte("x")}

	// These clients never give up on their own (see patientClient), so only the cache's
	// per-operation timeout can bring the calls back.
	t.Run("misses_when_nothing_listens", func(t *testing.T) {
		c := newCache(t, patientClient(t, closedAddr(t)), rediscache.Options{})
		returns(t, "Set", func() {
			if err := c.Set(ctx, "k", entry); !errors.Is(err, rediscache.ErrNotStored) {
				t.Errorf("set with no server = %v; want ErrNotStored", err)
			}
		})
		returns(t, "Get", func() {
			if _, ok := c.Get(ctx, "k"); ok {
				t.Error("get found an entry with no server")
			}
		})
		returns(t, "Delete", func() { c.Delete(ctx, "k") })
		if n := c.Errors(); n != 3 {
			t.Fatalf("Errors() = %d; want 3", n)
		}
		if err := c.Ping(ctx); err == nil {
			t.Fatal("ping succeeded with no server")
		}
	})

	t.Run("misses_when_the_server_goes_away", func(t *testing.T) {
		addr := testredis.Start(t)
		c := newCache(t, patientClient(t, addr), rediscache.Options{})
		c.Set(ctx, "k", entry)
		if _, ok := c.Get(ctx, "k"); !ok {
			t.Fatal("get missed while the server was up")
		}
		admin := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		_ = admin.ShutdownNoSave(ctx).Err() // the only reply is the closed connection
		_ = admin.Close()
		returns(t, "Get", func() {
			if _, ok := c.Get(ctx, "k"); ok {
				t.Error("get found an entry after the server went away")
			}
		})
		returns(t, "Set", func() { c.Set(ctx, "k", entry) })
		if n := c.Errors(); n != 2 {
			t.Fatalf("Errors() = %d; want 2", n)
		}
	})

	t.Run("misses_when_the_server_accepts_but_never_answers", func(t *testing.T) {
		c := newCache(t, patientClient(t, silentServer(t)), rediscache.Options{})
		returns(t, "Get", func() {
			if _, ok := c.Get(ctx, "k"); ok {
				t.Error("get found an entry on a server that never answers")
			}
		})
		returns(t, "Set", func() { c.Set(ctx, "k", entry) })
		if n := c.Errors(); n != 2 {
			t.Fatalf("Errors() = %d; want 2", n)
		}
	})

	t.Run("an_opened_cache_misses_when_the_server_never_answers", func(t *testing.T) {
		c, err := rediscache.Open("redis://"+silentServer(t), rediscache.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		returns(t, "Get", func() {
			if _, ok := c.Get(ctx, "k"); ok {
				t.Error("get found an entry on a server that never answers")
			}
		})
		returns(t, "Set", func() { c.Set(ctx, "k", entry) })
		if n := c.Errors(); n != 2 {
			t.Fatalf("Errors() = %d; want 2", n)
		}
	})
}

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	t.Run("counts_errors_by_operation", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		c := newCache(t, patientClient(t, closedAddr(t)), rediscache.Options{Registerer: reg})
		if got := metric(t, reg, "edutrack_cache_errors_total", "op", "get"); got != 0 {
			t.Fatalf("errors before any operation = %v; want 0, exported", got)
		}
		c.Get(ctx, "k")
		c.Set(ctx, "k", cache.Entry{Position: 1})
		c.Set(ctx, "k", cache.Entry{Position: 2})
		c.Delete(ctx, "k")
		for op, want := range map[string]float64{"get": 1, "set": 2, "delete": 1} {
			if got := metric(t, reg, "edutrack_cache_errors_total", "op", op); got != want {
				t.Errorf("edutrack_cache_errors_total{op=%q} = %v; want %v", op, got, want)
			}
		}
	})
	t.Run("refuses_a_registry_that_has_them_already", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		newCache(t, newClient(t, closedAddr(t)), rediscache.Options{Registerer: reg})
		if c, err := rediscache.New(newClient(t, closedAddr(t)), rediscache.Options{Registerer: reg}); err == nil {
			t.Fatalf("New = %v; want an error: the registry has the metrics of another cache", c)
		}
	})
}

func TestCircuitBreaker(t *testing.T) {
	ctx := context.Background()
	entry := cache.Entry{Position: 1, Body: []byte("x")}
	const (
		closed = 0
		open   = 2
	)

	t.Run("opens_after_failures_in_a_row_and_then_leaves_Redis_alone", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		c := newCache(t, patientClient(t, silentServer(t)), rediscache.Options{BreakerFailures: 3, BreakerCooldown: time.Hour, Registerer: reg})
		if s := metric(t, reg, "edutrack_cache_circuit_state", "", ""); s != closed {
			t.Fatalf("circuit state at start = %v; want %d, closed", s, closed)
		}
		for range 3 {
			returns(t, "Get", func() { c.Get(ctx, "k") })
		}
		if s := metric(t, reg, "edutrack_cache_circuit_state", "", ""); s != open {
			t.Fatalf("circuit state after 3 timeouts = %v; want %d, open", s, open)
		}
		for range 50 {
			if _, ok := c.Get(ctx, "k"); ok {
				t.Fatal("get found an entry with the circuit open")
			}
		}
		err := c.Set(ctx, "k", entry)
		if !errors.Is(err, rediscache.ErrCircuitOpen) || !errors.Is(err, rediscache.ErrNotStored) {
			t.Errorf("set with the circuit open = %v; want ErrNotStored and ErrCircuitOpen", err)
		}
		if got := metric(t, reg, "edutrack_cache_skipped_total", "op", "get"); got != 50 {
			t.Errorf("skipped gets = %v; want 50", got)
		}
		if got := metric(t, reg, "edutrack_cache_skipped_total", "op", "set"); got != 1 {
			t.Errorf("skipped sets = %v; want 1", got)
		}
		if n := c.Errors(); n != 3 {
			t.Errorf("Errors() = %d; want 3: operations the circuit turned away did not fail in Redis", n)
		}
	})

	t.Run("probes_in_the_background_after_the_cooldown_and_stays_open_while_the_probe_fails", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		c := newCache(t, patientClient(t, silentServer(t)), rediscache.Options{BreakerFailures: 1, BreakerCooldown: 10 * time.Millisecond, Registerer: reg})
		returns(t, "Get", func() { c.Get(ctx, "k") })
		time.Sleep(20 * time.Millisecond) // past the cooldown: the next operation starts a probe
		c.Get(ctx, "k")
		if got := metric(t, reg, "edutrack_cache_skipped_total", "op", "get"); got != 1 {
			t.Errorf("skipped gets = %v; want 1: the operation after the cooldown does not wait for the probe", got)
		}
		waitUntil(t, "the failed probe opens the circuit again", func() bool {
			return metric(t, reg, "edutrack_cache_circuit_state", "", "") == open
		})
		if n := c.Errors(); n != 1 {
			t.Errorf("Errors() = %d; want 1, the trip: a probe is not an operation of the cache", n)
		}
	})

	t.Run("closes_once_Redis_answers_a_probe_and_finds_its_entries_again", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		proxy := testredis.NewProxy(t, testredis.Start(t))
		c := newCache(t, patientClient(t, proxy.Addr()), rediscache.Options{BreakerFailures: 2, BreakerCooldown: 10 * time.Millisecond, Registerer: reg})
		if err := c.Set(ctx, "k", entry); err != nil {
			t.Fatal(err)
		}
		proxy.Hang()
		for range 2 {
			returns(t, "Get", func() { c.Get(ctx, "k") })
		}
		if s := metric(t, reg, "edutrack_cache_circuit_state", "", ""); s != open {
			t.Fatalf("circuit state with Redis hung = %v; want %d, open", s, open)
		}
		proxy.Restore()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if e, ok := c.Get(ctx, "k"); ok {
				if e.Position != 1 {
					t.Fatalf("get = %+v; want the entry set before the outage", e)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the cache did not find Redis again within 10s of its return")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if s := metric(t, reg, "edutrack_cache_circuit_state", "", ""); s != closed {
			t.Errorf("circuit state once Redis answers = %v; want %d, closed", s, closed)
		}
	})

	t.Run("a_caller_that_gives_up_does_not_open_it", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		c := newCache(t, patientClient(t, silentServer(t)), rediscache.Options{BreakerFailures: 1, BreakerCooldown: time.Hour, Registerer: reg})
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		c.Get(cancelled, "k")
		c.Set(cancelled, "k", entry)
		// A caller whose deadline comes before the cache's own.
		hurried, cancel := context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
		returns(t, "Get", func() { c.Get(hurried, "k") })
		if s := metric(t, reg, "edutrack_cache_circuit_state", "", ""); s != closed {
			t.Errorf("circuit state = %v; want %d, closed: only the callers gave up", s, closed)
		}
		if n := c.Errors(); n != 0 {
			t.Errorf("Errors() = %d; want 0", n)
		}
	})

	t.Run("errors_that_Redis_answers_do_not_open_it", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		client := newClient(t, testredis.Start(t))
		c := newCache(t, client, rediscache.Options{Prefix: "p:", BreakerFailures: 2, Registerer: reg})
		client.RPush(ctx, "p:v2:list", "x")
		for range 5 {
			if err := c.Set(ctx, "list", entry); err == nil {
				t.Fatal("set over a list succeeded")
			}
		}
		if s := metric(t, reg, "edutrack_cache_circuit_state", "", ""); s != closed {
			t.Errorf("circuit state = %v; want %d, closed: Redis answered each time", s, closed)
		}
		if got := metric(t, reg, "edutrack_cache_errors_total", "op", "set"); got != 5 {
			t.Errorf("set errors = %v; want 5", got)
		}
	})
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

// metric is the value of the counter or gauge name with the label given, or -1 if it is absent.
func metric(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
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
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetName() == label && l.GetValue() == value
			}
			if !match {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func TestNew(t *testing.T) {
	client := newClient(t, closedAddr(t))
	for name, tc := range map[string]struct {
		client redis.UniversalClient
		opts   rediscache.Options
		want   string
	}{
		"refuses_a_nil_client":        {nil, rediscache.Options{}, "nil client"},
		"refuses_a_negative_TTL":      {client, rediscache.Options{TTL: -time.Second}, "negative TTL"},
		"refuses_a_sub_ms_TTL":        {client, rediscache.Options{TTL: time.Microsecond}, "1ms resolution"},
		"refuses_a_negative_timeout":  {client, rediscache.Options{Timeout: -time.Second}, "negative timeout"},
		"refuses_a_negative_cooldown": {client, rediscache.Options{BreakerCooldown: -time.Second}, "negative breaker cooldown"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := rediscache.New(tc.client, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want an error containing %q", c, err, tc.want)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	addr := testredis.Start(t)

	t.Run("reaches_the_server_in_the_url", func(t *testing.T) {
		c, err := rediscache.Open("redis://"+addr+"/0", rediscache.Options{Prefix: t.Name() + ":"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Set(ctx, "k", cache.Entry{Position: 9, Body: []byte("nine")})
		if e, ok := c.Get(ctx, "k"); !ok || e.Position != 9 {
			t.Fatalf("get = %+v, %v; want position 9", e, ok)
		}
	})

	t.Run("closes_the_client_it_opened", func(t *testing.T) {
		c, err := rediscache.Open("redis://"+addr, rediscache.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Get(ctx, "k"); ok || c.Errors() != 1 {
			t.Fatalf("get after Close = %v with %d errors; want a counted miss", ok, c.Errors())
		}
	})

	t.Run("leaves_a_client_given_to_New_open", func(t *testing.T) {
		client := newClient(t, addr)
		c := newCache(t, client, rediscache.Options{})
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := client.Ping(ctx).Err(); err != nil {
			t.Fatalf("the caller's client was closed: %v", err)
		}
	})

	t.Run("rejects_a_bad_url", func(t *testing.T) {
		for _, url := range []string{"http://" + addr, "redis://" + addr + "?no_such_option=1"} {
			if c, err := rediscache.Open(url, rediscache.Options{}); err == nil {
				c.Close()
				t.Errorf("Open(%q) succeeded; want an error", url)
			}
		}
	})

	t.Run("rejects_bad_options_and_closes_its_client", func(t *testing.T) {
		if _, err := rediscache.Open("redis://"+addr, rediscache.Options{TTL: -1}); err == nil {
			t.Fatal("Open with a negative TTL succeeded")
		}
		// goleak in TestMain catches a client left open here.
	})
}

// BenchmarkGet reads one 1.5 KB entry from every goroutine, the shape of a hot course page.
//
//	go test -run '^$' -bench Get -benchtime 3s ./cache/rediscache/
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	c := newCache(b, newClient(b, testredis.Start(b)), rediscache.Options{Prefix: "bench:"})
	body := bytes.Repeat([]byte("x"), 1536)
	c.Set(ctx, "course:hot", cache.Entry{Position: 1, Body: body})
	if _, ok := c.Get(ctx, "course:hot"); !ok {
		b.Fatal("the entry was not stored")
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := c.Get(ctx, "course:hot"); !ok {
				b.Error("miss")
				return
			}
		}
	})
	b.StopTimer()
	if n := c.Errors(); n != 0 {
		b.Fatalf("%d errors", n)
	}
}

func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func newCache(t testing.TB, client redis.UniversalClient, opts rediscache.Options) *rediscache.Cache {
	t.Helper()
	c, err := rediscache.New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// patientClient has no read or write timeout of its own, an hour's dial timeout and a hundred
// retries: left to itself it would wait on a dead or hung server for minutes. ContextTimeoutEnabled
// lets the cache's per-operation deadline reach the socket, as New's comment asks of callers.
// It does not retry dials: go-redis dials in a goroutine of its own that outlives the caller's
// context, and retries would keep it alive past the test, which goleak reports.
func patientClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	client := redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           time.Hour,
		ReadTimeout:           -1,
		WriteTimeout:          -1,
		MaxRetries:            100,
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentServer accepts connections and never answers, like a Redis stuck in a long command.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// returns runs f and fails the test if it has not returned after a bound far above any timeout
// in play. It checks that a call comes back at all; speed is the benchmarks' business.
func returns(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return within 10s while Redis was unavailable", what)
	}
}
