package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/testredis"
)

// BenchmarkServeReadOnRedis is a read of a course over HTTP from `edutrack serve` with
// EDUTRACK_REDIS_URL set: the two rate-limit decisions and the document cache in Redis, the
// embedded read store behind. One request at a time, so ns/op is a request's latency.
//
//   - redis_up: Redis answers; the read is a cache hit.
//   - redis_hung: Redis hangs behind a proxy that answers nothing, and the circuits of the rate
//     limits and the cache are open: every request is decided and served without Redis.
//   - no_redis: the same process without EDUTRACK_REDIS_URL (limits and cache in process).
//
// Compare the ratios of one run: go test -run '^$' -bench ServeReadOnRedis -benchtime 2s -count 3 ./cmd/edutrack/
func BenchmarkServeReadOnRedis(b *testing.B) {
	addr := testredis.Start(b)
	b.Run("redis_up", func(b *testing.B) {
		s := serveForBench(b, "redis://"+addr+"/0")
		s.run(b)
	})
	b.Run("redis_hung", func(b *testing.B) {
		proxy := testredis.NewProxy(b, addr)
		s := serveForBench(b, "redis://"+proxy.Addr()+"/0")
		proxy.Hang()
		// The first requests wait out the timeouts that open the circuits.
		for range 5 {
			s.get(b)
		}
		s.run(b)
	})
	b.Run("no_redis", func(b *testing.B) {
		s := serveForBench(b, "")
		s.run(b)
	})
}

// benchServer is `edutrack serve` on a fresh data dir with one published course.
type benchServer struct {
	base   string
	client *http.Client
	path   string
}

func serveForBench(b *testing.B, redisURL string) *benchServer {
	b.Helper()
	env := testEnv(b.TempDir())
	// Limits high enough never to refuse, so each request still spends its budgets in Redis.
	env["EDUTRACK_RATE_LIMIT_IP"], env["EDUTRACK_RATE_LIMIT_USER"] = "1000000/1s", "1000000/1s"
	env["EDUTRACK_LOG_LEVEL"] = "error"
	if redisURL != "" {
		env["EDUTRACK_REDIS_URL"] = redisURL
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, ready := make(chan error, 1), make(chan string, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard,
			func(addr string) { ready <- addr })
	}()
	transport := &http.Transport{MaxIdleConnsPerHost: 4}
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("run: %v", err)
		}
		transport.CloseIdleConnections()
	})
	s := &benchServer{client: &http.Client{Transport: transport, Timeout: 30 * time.Second}}
	select {
	case a := <-ready:
		s.base = "http://" + a
	case err := <-done:
		b.Fatalf("run returned before serving: %v", err)
	}
	s.send(b, http.MethodPost, "/v1/users", map[string]string{"id": "grace", "name": "Grace Hopper", "email": "grace@example.com", "role": "instructor"})
	s.send(b, http.MethodPost, "/v1/courses", map[string]string{"id": "go", "title": "Go, properly", "category": "cs", "level": "beginner",
		"instructorId": "grace", "description": strings.Repeat("Goroutines and channels. ", 56)})
	s.send(b, http.MethodPost, "/v1/courses/go/modules", map[string]string{"id": "m1", "title": "One"})
	pos := s.send(b, http.MethodPost, "/v1/courses/go/publish", nil)
	s.path = "/v1/courses/go?minPosition=" + strconv.FormatUint(pos, 10)
	s.get(b) // waits for the projection; the projector has cached the course
	s.path = "/v1/courses/go"
	return s
}

// send makes a command as an admin and returns the position of its last event.
func (s *benchServer) send(b *testing.B, method, path string, body any) uint64 {
	b.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			b.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", bearer(testAdmin, domain.Admin))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Position uint64 `json:"position"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 || json.Unmarshal(raw, &out) != nil {
		b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return out.Position
}

func (s *benchServer) get(b *testing.B) {
	req, err := http.NewRequest(http.MethodGet, s.base+s.path, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", bearer(testAdmin, domain.Admin))
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d", s.path, resp.StatusCode)
	}
}

func (s *benchServer) run(b *testing.B) {
	b.ResetTimer()
	for b.Loop() {
		s.get(b)
	}
}
