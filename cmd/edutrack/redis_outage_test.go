package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/edutrack/edutrack/internal/testredis"
)

// TestRedisOutage is item 3 of the hardening issue as an operator sees it: with Redis hung, the
// process stays ready (degraded), serves from the read store, and exports its circuits' state.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	proxy := testredis.NewProxy(t, testredis.Start(t))
	s := startWith(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_REDIS_URL": "redis://" + proxy.Addr() + "/0",
		"EDUTRACK_RATE_LIMIT_IP": "100000/1s", "EDUTRACK_RATE_LIMIT_USER": "100000/1s"})
	s.ok(s.do(http.MethodPost, "/v1/users", user("grace", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do(http.MethodPost, "/v1/courses", map[string]string{"id": "go", "title": "Go", "description": "Goroutines.",
		"category": "cs", "level": "beginner", "instructorId": "grace"}), created, 1)
	s.ok(s.do(http.MethodPost, "/v1/courses/go/modules", module("m1", "One")), created, 1)
	s.ok(s.do(http.MethodPost, "/v1/courses/go/publish", nil), ok, 1)
	fresh(t, s, "/v1/courses/go")

	proxy.Hang()
	for range 5 { // enough failures to open the circuits of the cache and the rate limits
		fresh(t, s, "/v1/courses/go")
	}
	a := get(t, s, "/readyz")
	r := decodeStrict[readiness](t, a.body)
	if a.status != http.StatusOK || r.Status != "degraded" || r.Checks["cache"].Status != "degraded" || r.Checks["read_store"].Status != "ok" {
		t.Errorf("/readyz with Redis hung: %d %s; want 200, degraded, the cache degraded and the read store ok", a.status, a.body)
	}
	metrics := string(get(t, s, "/metrics").body)
	for _, series := range []string{"edutrack_cache_circuit_state", "edutrack_ratelimit_circuit_state"} {
		if v, found := sample(metrics, series); !found || v != 2 {
			t.Errorf("%s = %v (found %v) with Redis hung; want 2, open", series, v, found)
		}
	}

	proxy.Restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := decodeStrict[readiness](t, get(t, s, "/readyz").body)
		if r.Status == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz is still %q 10s after Redis answers again", r.Status)
		}
		fresh(t, s, "/v1/courses/go") // requests start the probes that close the circuits
		time.Sleep(10 * time.Millisecond)
	}
}
