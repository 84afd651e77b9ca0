package readapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/testredis"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/cache/rediscache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
	"github.com/edutrack/edutrack/readapi"
)

// BenchmarkCourseRead reads one course's details (1.5 KB) through the read API: router, handler,
// cache, SQLite read store. One read at a time, so ns/op is a read's latency.
//
//   - redis_up: a hit in a live Redis.
//   - redis_down/breaker_open: Redis hung (behind a proxy that answers nothing), the circuit
//     open: the store answers, Redis is not called but for the probe each second, in the
//     background.
//   - redis_down/no_breaker: Redis hung and a circuit that never opens: each read waits out the
//     Get's timeout, then the Set's, as every read did before the breaker.
//   - no_cache: the store alone (cache.Nop), for reference.
//
// Compare the ratios of one run: go test -run '^$' -bench CourseRead -benchtime 2s -count 3 ./readapi/
func BenchmarkCourseRead(b *testing.B) {
	addr := testredis.Start(b)
	b.Run("redis_up", func(b *testing.B) {
		r := newBenchReader(b, redisCache(b, addr, rediscache.Options{}))
		r.read(b) // the miss that fills the cache
		r.run(b)
	})
	b.Run("redis_down/breaker_open", func(b *testing.B) {
		proxy := testredis.NewProxy(b, addr)
		r := newBenchReader(b, redisCache(b, proxy.Addr(), rediscache.Options{}))
		r.read(b)
		proxy.Hang()
		for range rediscache.DefaultBreakerFailures {
			r.read(b) // each waits out a timeout; together they open the circuit
		}
		r.run(b)
	})
	b.Run("redis_down/no_breaker", func(b *testing.B) {
		proxy := testredis.NewProxy(b, addr)
		r := newBenchReader(b, redisCache(b, proxy.Addr(), rediscache.Options{BreakerFailures: math.MaxUint32}))
		r.read(b)
		proxy.Hang()
		r.run(b)
	})
	b.Run("no_cache", func(b *testing.B) {
		r := newBenchReader(b, cache.Nop{})
		r.run(b)
	})
}

// benchReader is the read API over a SQLite read store holding one published course.
type benchReader struct {
	router chi.Router
	req    *http.Request
}

func newBenchReader(b *testing.B, c cache.Cache) *benchReader {
	b.Helper()
	store, err := sqlitestore.Open(filepath.Join(b.TempDir(), "read.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	body, err := json.Marshal(map[string]any{"id": "go", "title": "Go, properly", "status": "published",
		"instructorId": "grace", "description": strings.Repeat("Goroutines and channels. ", 56),
		"modules": []map[string]string{{"id": "m1", "title": "One"}, {"id": "m2", "title": "Two"}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Commit(ctx, documents.CoursesProjection, 7, []readstore.Write{{Coll: documents.CourseDetails,
		Doc: readstore.Doc{ID: "go", Position: 7, Body: body}}}); err != nil {
		b.Fatal(err)
	}
	positions := projections.NewPositions()
	positions.RaiseCacheFence(documents.CoursesProjection, 0)
	positions.Advance(documents.CoursesProjection, 7)
	api, err := readapi.New(store, c, positions, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), readapi.Options{})
	if err != nil {
		b.Fatal(err)
	}
	r := &benchReader{router: chi.NewRouter()}
	api.Routes(r.router)
	req := httptest.NewRequest(http.MethodGet, "/v1/courses/go", nil)
	r.req = req.WithContext(auth.NewContext(req.Context(), admin))
	return r
}

func (r *benchReader) read(b *testing.B) {
	rec := httptest.NewRecorder()
	r.router.ServeHTTP(rec, r.req)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET /v1/courses/go: %d %s", rec.Code, rec.Body)
	}
}

func (r *benchReader) run(b *testing.B) {
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.read(b)
	}
}

// redisCache is a cache on the Redis at addr, with a client set as rediscache.Open sets one.
func redisCache(b *testing.B, addr string, opts rediscache.Options) *rediscache.Cache {
	b.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, DialerRetries: 1,
		DialTimeout: rediscache.DefaultDialTimeout, ReadTimeout: rediscache.DefaultReadTimeout, WriteTimeout: rediscache.DefaultWriteTimeout})
	b.Cleanup(func() { client.Close() })
	opts.Prefix = b.Name() + ":"
	c, err := rediscache.New(client, opts)
	if err != nil {
		b.Fatal(err)
	}
	return c
}
