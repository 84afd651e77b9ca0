package readapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/internal/testredis"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache/rediscache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore/sqlitestore"
	"github.com/edutrack/edutrack/readapi"
)

// pipeline is the read side as one process runs it on Redis: commands append to a log, a runner
// projects them into a SQLite read store and the Redis cache, and the read API serves them.
type pipeline struct {
	t         *testing.T
	cmds      *commands.Handler
	positions *projections.Positions
	reg       *prometheus.Registry
	router    chi.Router
	redis     string // the address the cache talks to
}

func newPipeline(t *testing.T, redisAddr string, opts rediscache.Options) *pipeline {
	t.Helper()
	dir := t.TempDir()
	l, err := sqlitelog.Open(filepath.Join(dir, "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cmds, err := commands.New(l, time.Now, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlitestore.Open(filepath.Join(dir, "read.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	client := redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true, DialerRetries: 1})
	t.Cleanup(func() { client.Close() })
	p := &pipeline{t: t, cmds: cmds, positions: projections.NewPositions(), reg: prometheus.NewRegistry(),
		router: chi.NewRouter(), redis: redisAddr}
	if opts.Prefix == "" {
		opts.Prefix = t.Name() + ":"
	}
	opts.Registerer = p.reg
	c, err := rediscache.New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := commands.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	runner, err := projections.NewRunner(l, codec, store, c, p.positions, p.reg, log,
		projections.Options{RetryDelay: time.Millisecond}, projections.Courses{}, projections.Learners{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		runner.Close()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	})
	live := runner.Live()
	api, err := readapi.New(live, c, p.positions, p.reg, log, readapi.Options{CacheKey: live.CacheKey})
	if err != nil {
		t.Fatal(err)
	}
	api.Routes(p.router)
	return p
}

// do runs a command and returns the position of its last event.
func (p *pipeline) do(res commands.Result, err error) uint64 {
	p.t.Helper()
	if err != nil {
		p.t.Fatalf("command: %v", err)
	}
	return res.Position
}

func meta() commands.Meta { return commands.Meta{CommandID: uuid.NewString()} }

// course creates and publishes a course with one module, and returns the position it ends at.
func (p *pipeline) course(id, title string) uint64 {
	p.t.Helper()
	ctx := context.Background()
	p.do(p.cmds.RegisterUser(ctx, meta(), commands.RegisterUser{ID: "ins-" + id, Name: "Grace", Email: id + "@example.com", Role: "instructor"}))
	p.do(p.cmds.CreateCourse(ctx, meta(), commands.CreateCourse{ID: id, Title: title, Category: "cs", Level: "beginner", InstructorID: "ins-" + id}))
	p.do(p.cmds.AddModule(ctx, meta(), commands.AddModule{CourseID: id, ModuleID: "m1", Title: "One"}))
	return p.do(p.cmds.PublishCourse(ctx, meta(), commands.PublishCourse{ID: id}))
}

func (p *pipeline) retitle(id, title string) uint64 {
	p.t.Helper()
	return p.do(p.cmds.UpdateCourseDetails(context.Background(), meta(), commands.UpdateCourseDetails{ID: id, Patch: course.DetailsPatch{Title: &title}}))
}

// title reads the course's title through the read API, asking for minPosition when it is not 0.
func (p *pipeline) title(id string, minPosition uint64) string {
	p.t.Helper()
	path := "/v1/courses/" + id
	if minPosition > 0 {
		path += "?minPosition=" + strconv.FormatUint(minPosition, 10)
	}
	f := &fixture{t: p.t, router: p.router}
	b := wantOK(p.t, path, f.getAs(admin, path))
	var d struct {
		Title string `json:"title"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		p.t.Fatal(err)
	}
	return d.Title
}

// hits is the course details' cache hits so far.
func (p *pipeline) hits() float64 {
	f := &fixture{t: p.t, reg: p.reg}
	return f.counter("edutrack_cache_hits_total", documents.CourseDetails)
}

// metric is the value of an unlabelled gauge, or of a counter's series with label=value.
func (p *pipeline) metric(name, label, value string) float64 {
	p.t.Helper()
	families, err := p.reg.Gather()
	if err != nil {
		p.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// wait waits for both projections to reach pos.
func (p *pipeline) wait(pos uint64) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.positions.Wait(ctx, pos, documents.CoursesProjection, documents.LearnersProjection); err != nil {
		p.t.Fatalf("the projections did not reach %d: %v", pos, err)
	}
}

// admin is a connection of its own to Redis, to pause and resume it.
func adminClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCacheOnRedis is item 2 of the hardening issue: a cache entry is never served older than the
// read asks, even when Redis refuses writes while it still answers reads.
func TestCacheOnRedis(t *testing.T) {
	t.Parallel()
	addr := testredis.Start(t)

	t.Run("never_serves_an_entry_a_failed_write_left_behind", func(t *testing.T) {
		p := newPipeline(t, addr, rediscache.Options{})
		p.wait(p.course("go", "Go"))
		if got := p.title("go", 0); got != "Go" {
			t.Fatalf("title = %q, want Go", got)
		}
		// Writes stall (as during a failover, or CLIENT PAUSE WRITE) while reads still answer:
		// the projector's write of the new title times out, the store commits it.
		admin := adminClient(t, addr)
		if err := admin.Do(context.Background(), "CLIENT", "PAUSE", "60000", "WRITE").Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Do(context.Background(), "CLIENT", "UNPAUSE") })
		pos := p.retitle("go", "Go, properly")
		if got := p.title("go", pos); got != "Go, properly" {
			t.Errorf("read with minPosition=%d: title %q, want the new one: the old entry was served", pos, got)
		}
		if got := p.title("go", 0); got != "Go, properly" {
			t.Errorf("read after the commit: title %q, want the new one", got)
		}
		// Redis takes writes again: the cache serves again, and only the new title.
		if err := admin.Do(context.Background(), "CLIENT", "UNPAUSE").Err(); err != nil {
			t.Fatal(err)
		}
		before := p.hits()
		for range 3 {
			if got := p.title("go", 0); got != "Go, properly" {
				t.Fatalf("read once Redis is back: title %q, want the new one", got)
			}
		}
		if p.hits() <= before {
			t.Errorf("no cache hit in 3 reads once Redis takes writes again")
		}
	})
}

// TestRedisOutage is item 3 of the hardening issue: Redis is an accelerator, not a dependency.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	proxy := testredis.NewProxy(t, testredis.Start(t))
	// The production cooldown: long enough that the circuit is still open (not yet probing,
	// half-open) when the outage's reads are done, on however busy a machine; short enough
	// that the cache is used again well within the wait after Redis returns.
	p := newPipeline(t, proxy.Addr(), rediscache.Options{BreakerFailures: 2, BreakerCooldown: rediscache.DefaultBreakerCooldown})
	p.wait(p.course("art", "Art"))
	for range 2 {
		if got := p.title("art", 0); got != "Art" {
			t.Fatalf("title = %q, want Art", got)
		}
	}
	if p.hits() == 0 {
		t.Fatal("no cache hit before the outage")
	}

	// Redis stops answering: reads go on from the store, the first ones until the circuit opens,
	// then without calling Redis at all.
	proxy.Hang()
	for range 5 {
		if got := p.title("art", 0); got != "Art" {
			t.Fatalf("read during the outage: title %q, want Art", got)
		}
	}
	if s := p.metric("edutrack_cache_circuit_state", "", ""); s != 2 {
		t.Errorf("circuit state during the outage = %v, want 2 (open)", s)
	}
	if n := p.metric("edutrack_cache_skipped_total", "op", "get"); n < 1 {
		t.Errorf("skipped gets during the outage = %v, want some: the open circuit should spare Redis", n)
	}
	// A change during the outage: the projector cannot write it to Redis, whose old entry stays.
	pos := p.retitle("art", "Art, after the outage")
	if got := p.title("art", pos); got != "Art, after the outage" {
		t.Errorf("read with minPosition=%d during the outage: title %q, want the new one", pos, got)
	}

	// Redis answers again, with the entry from before the outage: it is never served, and the
	// cache is used again.
	proxy.Restore()
	before := p.hits()
	deadline := time.Now().Add(10 * time.Second)
	for p.hits() == before {
		if got := p.title("art", 0); got != "Art, after the outage" {
			t.Fatalf("read once Redis is back: title %q, want the new one: an entry from before the outage was served", got)
		}
		if time.Now().After(deadline) {
			t.Fatal("no cache hit within 10s of Redis's return")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := p.metric("edutrack_cache_circuit_state", "", ""); s != 0 {
		t.Errorf("circuit state once Redis is back = %v, want 0 (closed)", s)
	}
}
