package ratelimit

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/auth/clientip"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout replaces the 50 ms default where a test is not about Redis failing, so a slow
// -race run cannot turn a shared budget into a per-process one.
const testTimeout = 5 * time.Second

var (
	discard = slog.New(slog.DiscardHandler)
	t0      = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	// threePerHour allows three requests at once, then one every 20 minutes.
	threePerHour = Limit{Requests: 3, Period: time.Hour}
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func memoryAt(c *clock) *Memory {
	m := NewMemory()
	m.now = c.Now
	return m
}

// spend calls Allow n times and returns how many were allowed and the last decision.
func spend(l Limiter, key string, lim Limit, n int) (allowed int, last Decision) {
	for range n {
		last = l.Allow(context.Background(), key, lim)
		if last.Allowed {
			allowed++
		}
	}
	return allowed, last
}

func TestMemory(t *testing.T) {
	t.Run("allows_the_burst_then_says_when_to_retry", func(t *testing.T) {
		m := memoryAt(&clock{now: t0})
		allowed, last := spend(m, "ip:203.0.113.5", threePerHour, 5)
		if allowed != 3 {
			t.Fatalf("%d of 5 allowed; want 3", allowed)
		}
		if last.RetryAfter != 20*time.Minute {
			t.Fatalf("RetryAfter = %s; want 20m, when the next request fits", last.RetryAfter)
		}
	})
	t.Run("refills_one_request_per_interval", func(t *testing.T) {
		c := &clock{now: t0}
		m := memoryAt(c)
		spend(m, "k", threePerHour, 3)
		c.advance(20*time.Minute - time.Second)
		if d := m.Allow(context.Background(), "k", threePerHour); d.Allowed || d.RetryAfter != time.Second {
			t.Fatalf("a second early: %+v; want refused, retry in 1s", d)
		}
		c.advance(time.Second)
		if allowed, _ := spend(m, "k", threePerHour, 2); allowed != 1 {
			t.Fatalf("%d allowed after one interval; want 1", allowed)
		}
	})
	t.Run("honours_a_burst_smaller_than_the_rate", func(t *testing.T) {
		m := memoryAt(&clock{now: t0})
		if allowed, _ := spend(m, "k", Limit{Requests: 60, Period: time.Minute, Burst: 2}, 5); allowed != 2 {
			t.Fatalf("%d allowed at once; want the burst of 2", allowed)
		}
	})
	t.Run("keeps_a_budget_per_key", func(t *testing.T) {
		m := memoryAt(&clock{now: t0})
		spend(m, "ip:203.0.113.5", threePerHour, 3)
		if d := m.Allow(context.Background(), "ip:203.0.113.6", threePerHour); !d.Allowed {
			t.Fatal("another client was refused: budgets are not per key")
		}
	})
	t.Run("forgets_budgets_that_have_filled_up", func(t *testing.T) {
		c := &clock{now: t0}
		m := memoryAt(c)
		for i := range 100 {
			m.Allow(context.Background(), "ip:"+strconv.Itoa(i), threePerHour)
		}
		c.advance(time.Hour)
		m.Allow(context.Background(), "ip:new", threePerHour)
		if n := len(m.tat); n != 1 {
			t.Fatalf("%d budgets kept after every old one refilled; want 1", n)
		}
	})
}

func TestRedis(t *testing.T) {
	addr := testredis.Start(t)

	t.Run("shares_one_budget_between_processes", func(t *testing.T) {
		// Two API processes: two clients, two limiters, one Redis.
		a := newRedis(t, newClient(t, addr), RedisOptions{Prefix: t.Name() + ":", Timeout: testTimeout})
		b := newRedis(t, newClient(t, addr), RedisOptions{Prefix: t.Name() + ":", Timeout: testTimeout})
		if allowed, _ := spend(a, "user:u-ada", threePerHour, 2); allowed != 2 {
			t.Fatalf("first process: %d of 2 allowed", allowed)
		}
		if allowed, _ := spend(b, "user:u-ada", threePerHour, 1); allowed != 1 {
			t.Fatalf("second process: %d of 1 allowed", allowed)
		}
		for _, l := range []*Redis{a, b} {
			d := l.Allow(context.Background(), "user:u-ada", threePerHour)
			if d.Allowed {
				t.Fatal("a fourth request was allowed: the processes do not share the budget")
			}
			if d.RetryAfter <= 19*time.Minute || d.RetryAfter > 20*time.Minute {
				t.Errorf("RetryAfter = %s; want just under 20m", d.RetryAfter)
			}
		}
		if allowed, _ := spend(b, "user:u-grace", threePerHour, 1); allowed != 1 {
			t.Fatal("another user was refused: budgets are not per key")
		}
		if n := a.Errors() + b.Errors(); n != 0 {
			t.Fatalf("%d Redis errors against a healthy server", n)
		}
	})

	t.Run("keeps_budgets_apart_under_different_prefixes", func(t *testing.T) {
		a := newRedis(t, newClient(t, addr), RedisOptions{Prefix: t.Name() + ":a:", Timeout: testTimeout})
		b := newRedis(t, newClient(t, addr), RedisOptions{Prefix: t.Name() + ":b:", Timeout: testTimeout})
		spend(a, "k", threePerHour, 3)
		if allowed, _ := spend(b, "k", threePerHour, 3); allowed != 3 {
			t.Fatalf("%d of 3 allowed under another prefix; want 3", allowed)
		}
	})

	t.Run("stores_hashed_keys_that_expire", func(t *testing.T) {
		client := newClient(t, addr)
		l := newRedis(t, client, RedisOptions{Prefix: t.Name() + ":", Timeout: testTimeout})
		l.Allow(context.Background(), "ip:203.0.113.5", threePerHour)
		keys, err := client.Keys(context.Background(), t.Name()+":*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || strings.Contains(keys[0], "203.0.113.5") {
			t.Fatalf("keys %q; want one key that does not show the address", keys)
		}
		ttl, err := client.PTTL(context.Background(), keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > 20*time.Minute {
			t.Fatalf("TTL %s; want the time until the budget is full again, at most 20m", ttl)
		}
	})

	t.Run("decides_in_process_when_redis_is_down", func(t *testing.T) {
		client := redis.NewClient(&redis.Options{Addr: closedAddr(t), DialerRetries: 1, MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		l := newRedis(t, client, RedisOptions{Prefix: t.Name() + ":"})
		allowed, last := spend(l, "k", threePerHour, 4)
		if allowed != 3 || last.Allowed {
			t.Fatalf("%d of 4 allowed with Redis down; want the in-process budget of 3", allowed)
		}
		if l.Errors() != 4 {
			t.Fatalf("Errors() = %d; want 4", l.Errors())
		}
	})

	t.Run("stops_asking_a_hung_redis_and_asks_again_once_it_answers", func(t *testing.T) {
		proxy := testredis.NewProxy(t, addr)
		client := redis.NewClient(&redis.Options{Addr: proxy.Addr(), DialerRetries: 1, ContextTimeoutEnabled: true})
		t.Cleanup(func() { client.Close() })
		l := newRedis(t, client, RedisOptions{Prefix: t.Name() + ":", BreakerFailures: 2, BreakerCooldown: 10 * time.Millisecond})
		if d := l.Allow(context.Background(), "k", threePerHour); !d.Allowed {
			t.Fatalf("first decision with Redis up: %+v", d)
		}
		proxy.Hang()
		spend(l, "k", threePerHour, 2) // each waits out the timeout; together they open the circuit
		if s := l.CircuitState(); s != 2 {
			t.Fatalf("circuit state after 2 timeouts = %d; want 2, open", s)
		}
		// Decided in process without asking Redis: no more errors, and the in-process budget.
		allowed, _ := spend(l, "k", threePerHour, 10)
		if allowed != 1 || l.Errors() != 2 {
			t.Fatalf("with the circuit open: %d of 10 allowed and %d errors; want the in-process budget's 1 (2 spent) and the 2 timeouts", allowed, l.Errors())
		}
		proxy.Restore()
		deadline := time.Now().Add(10 * time.Second)
		for l.CircuitState() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the circuit did not close within 10s of Redis's return")
			}
			l.Allow(context.Background(), "other", threePerHour) // starts probes
			time.Sleep(5 * time.Millisecond)
		}
		// Redis decides again: the budget it kept from before the outage has 2 left.
		if allowed, _ := spend(l, "k", threePerHour, 3); allowed != 2 {
			t.Fatalf("%d of 3 allowed once Redis is back; want the 2 Redis's budget has left", allowed)
		}
	})

	t.Run("refuses_missing_dependencies", func(t *testing.T) {
		if _, err := NewRedis(nil, discard, RedisOptions{}); err == nil {
			t.Error("NewRedis accepted a nil client")
		}
		if _, err := NewRedis(newClient(t, addr), nil, RedisOptions{}); err == nil {
			t.Error("NewRedis accepted a nil logger")
		}
	})
}

func TestMiddleware(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	request := func(remote string, p *domain.Actor) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v1/courses", nil)
		r.RemoteAddr = remote
		if p != nil {
			r = r.WithContext(auth.NewContext(r.Context(), *p))
		}
		return r
	}
	do := func(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	mustMiddleware := func(t *testing.T, l Limiter, lim Limit, key KeyFunc) func(http.Handler) http.Handler {
		t.Helper()
		mw, err := Middleware(l, lim, key, discard)
		if err != nil {
			t.Fatal(err)
		}
		return mw
	}

	t.Run("answers_429_with_retry_after_past_the_budget", func(t *testing.T) {
		h := mustMiddleware(t, memoryAt(&clock{now: t0}), threePerHour, ByIP(clientip.New()))(ok)
		for range 3 {
			if w := do(h, request("203.0.113.5:4711", nil)); w.Code != http.StatusNoContent {
				t.Fatalf("status %d within the budget; want 204", w.Code)
			}
		}
		w := do(h, request("203.0.113.5:4711", nil))
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("status %d past the budget; want 429", w.Code)
		}
		if got := w.Header().Get("Retry-After"); got != "1200" {
			t.Errorf("Retry-After = %q; want 1200", got)
		}
		if got := w.Header().Get("Content-Type"); got != problem.ContentType {
			t.Errorf("Content-Type = %s; want %s", got, problem.ContentType)
		}
		var d problem.Details
		json.Unmarshal(w.Body.Bytes(), &d)
		want := problem.Details{Type: "about:blank", Title: "Too Many Requests", Status: 429, Detail: "too many requests; retry in 1200 s", Instance: "/v1/courses"}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("problem (-want +got):\n%s", diff)
		}
		if w := do(h, request("203.0.113.6:4711", nil)); w.Code != http.StatusNoContent {
			t.Errorf("another client got %d; want 204", w.Code)
		}
	})

	t.Run("counts_clients_behind_a_trusted_proxy_apart", func(t *testing.T) {
		h := mustMiddleware(t, memoryAt(&clock{now: t0}), Limit{Requests: 1, Period: time.Hour}, ByIP(clientip.New(netip.MustParsePrefix("10.0.0.0/8"))))(ok)
		viaProxy := func(client string) *http.Request {
			r := request("10.0.0.2:80", nil)
			r.Header.Set("X-Forwarded-For", client)
			return r
		}
		if do(h, viaProxy("198.51.100.1")).Code != http.StatusNoContent || do(h, viaProxy("198.51.100.2")).Code != http.StatusNoContent {
			t.Fatal("two clients behind one proxy share a budget")
		}
		if w := do(h, viaProxy("198.51.100.1")); w.Code != http.StatusTooManyRequests {
			t.Fatalf("a client's second request got %d; want 429", w.Code)
		}
	})

	t.Run("counts_an_ipv6_client_per_64", func(t *testing.T) {
		h := mustMiddleware(t, memoryAt(&clock{now: t0}), Limit{Requests: 1, Period: time.Hour}, ByIP(clientip.New()))(ok)
		do(h, request("[2001:db8:1:2::1]:4711", nil))
		if w := do(h, request("[2001:db8:1:2::ffff]:4711", nil)); w.Code != http.StatusTooManyRequests {
			t.Fatalf("another address in the same /64 got %d; want 429", w.Code)
		}
		if w := do(h, request("[2001:db8:1:3::1]:4711", nil)); w.Code != http.StatusNoContent {
			t.Fatalf("another /64 got %d; want 204", w.Code)
		}
	})

	t.Run("counts_each_user_apart_wherever_they_connect_from", func(t *testing.T) {
		h := mustMiddleware(t, memoryAt(&clock{now: t0}), Limit{Requests: 1, Period: time.Hour}, ByUser())(ok)
		ada := &domain.Actor{UserID: "u-ada", Role: domain.Learner}
		grace := &domain.Actor{UserID: "u-grace", Role: domain.Instructor}
		do(h, request("203.0.113.5:1", ada))
		if w := do(h, request("198.51.100.9:1", ada)); w.Code != http.StatusTooManyRequests {
			t.Fatalf("the same user from another address got %d; want 429", w.Code)
		}
		if w := do(h, request("203.0.113.5:1", grace)); w.Code != http.StatusNoContent {
			t.Fatalf("another user from the same address got %d; want 204", w.Code)
		}
		for range 3 {
			if w := do(h, request("203.0.113.5:1", nil)); w.Code != http.StatusNoContent {
				t.Fatalf("a request without principal got %d; want it left to the IP limit", w.Code)
			}
		}
	})

	t.Run("shares_a_budget_through_redis", func(t *testing.T) {
		addr := testredis.Start(t)
		lim := Limit{Requests: 2, Period: time.Minute}
		a := mustMiddleware(t, newRedis(t, newClient(t, addr), RedisOptions{Timeout: testTimeout}), lim, ByIP(clientip.New()))(ok)
		b := mustMiddleware(t, newRedis(t, newClient(t, addr), RedisOptions{Timeout: testTimeout}), lim, ByIP(clientip.New()))(ok)
		do(a, request("203.0.113.5:1", nil))
		do(b, request("203.0.113.5:1", nil))
		w := do(a, request("203.0.113.5:1", nil))
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "30" {
			t.Fatalf("third request: status %d, Retry-After %q; want 429 and 30", w.Code, w.Header().Get("Retry-After"))
		}
	})

	t.Run("refuses_bad_limits_and_missing_dependencies", func(t *testing.T) {
		m := NewMemory()
		for _, lim := range []Limit{{}, {Requests: 1}, {Period: time.Second}, {Requests: -1, Period: time.Second}, {Requests: 1, Period: time.Second, Burst: -1}, {Requests: 1e6, Period: time.Millisecond}} {
			if _, err := Middleware(m, lim, ByUser(), discard); err == nil {
				t.Errorf("Middleware accepted limit %+v", lim)
			}
		}
		if _, err := Middleware(nil, threePerHour, ByUser(), discard); err == nil {
			t.Error("Middleware accepted a nil limiter")
		}
		if _, err := Middleware(m, threePerHour, nil, discard); err == nil {
			t.Error("Middleware accepted a nil key function")
		}
		if _, err := Middleware(m, threePerHour, ByUser(), nil); err == nil {
			t.Error("Middleware accepted a nil logger")
		}
	})
}

func TestRetrySeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 20 * time.Minute: 1200} {
		if got := retrySeconds(d); got != want {
			t.Errorf("retrySeconds(%s) = %d; want %d", d, got, want)
		}
	}
}

func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func newRedis(t testing.TB, client redis.UniversalClient, opts RedisOptions) *Redis {
	t.Helper()
	l, err := NewRedis(client, discard, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
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
