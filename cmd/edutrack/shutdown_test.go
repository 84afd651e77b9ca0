package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain/learner"
)

// ack is a write the server acknowledged with a 2xx.
type ack struct {
	learner string
	module  string // empty for an enrollment
	status  int
	res     result
}

// Stopping the server while clients write must lose no acknowledged write: the server finishes
// the requests in flight, their appends included, before the log closes.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	const (
		learners = 32
		modules  = 40
		// acks before the stop, so that the stop lands in the middle of steady traffic
		before = 200
	)
	dir := t.TempDir()
	s := start(t, dir, &logTracker{})
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
	for i := range modules {
		s.ok(s.do("POST", "/v1/courses/go/modules", module(fmt.Sprintf("m%02d", i+1), "Module")), created, 1)
	}
	s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
	var ids, streams []string
	for i := range learners {
		id := fmt.Sprintf("l%02d", i+1)
		ids, streams = append(ids, id), append(streams, "learner-"+id)
		s.ok(s.do("POST", "/v1/users", user(id, "Learner "+id, "learner")), created, 1)
	}

	var (
		mu          sync.Mutex
		acks        []ack
		problems    []string
		stopping    atomic.Bool
		afterStop   atomic.Int64
		count       atomic.Int64
		enough      = make(chan struct{})
		enoughOnce  sync.Once
		wg          sync.WaitGroup
		unexpectedf = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	)
	for _, id := range ids {
		wg.Go(func() {
			next := 0
			for k := 0; ; k++ {
				path, body, mod := "/v1/courses/go/enrollments", []byte(`{"learnerId":"`+id+`"}`), ""
				if k%4 != 0 { // mostly completions, with a (no-op) enrollment now and then
					mod = fmt.Sprintf("m%02d", next%modules+1)
					next++
					path, body = completePath(id, "go", mod), nil
				}
				req, _ := http.NewRequest("POST", s.base+path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := s.client.Do(req)
				if err != nil {
					// A request sent on a connection the stopping server closed as idle fails
					// unanswered; any other failure is a fault.
					if !stopping.Load() {
						unexpectedf("%s before the stop: %v", path, err)
					}
					return
				}
				data, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode/100 != 2 {
					// An in-flight request must be finished properly, not failed by the stop.
					unexpectedf("%s: status %d, body %s, read error %v", path, resp.StatusCode, data, err)
					return
				}
				var res result
				if err := json.Unmarshal(data, &res); err != nil {
					unexpectedf("%s: body %s: %v", path, data, err)
					return
				}
				mu.Lock()
				acks = append(acks, ack{learner: id, module: mod, status: resp.StatusCode, res: res})
				mu.Unlock()
				if stopping.Load() {
					afterStop.Add(1)
				}
				if count.Add(1) == before {
					enoughOnce.Do(func() { close(enough) })
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(60 * time.Second):
		t.Errorf("only %d writes acknowledged after 60s", count.Load())
	}
	stopping.Store(true)
	s.stop() // cancels run's context and checks that run returns nil
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	if afterStop.Load() == 0 {
		t.Errorf("no write was acknowledged after the stop began; the test did not catch requests in flight")
	}
	t.Logf("%d writes acknowledged, %d of them after the stop began", len(acks), afterStop.Load())

	_, byStream := readLog(t, dir, streams...)
	codec, err := commands.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range streams {
		for i, e := range byStream[stream] {
			if e.Version != uint64(i+1) {
				t.Errorf("%s: event %d has version %d", stream, i, e.Version)
			}
		}
	}
	for _, a := range acks {
		recs := byStream["learner-"+a.learner]
		if a.res.Version == 0 || a.res.Version > uint64(len(recs)) {
			t.Errorf("acknowledged %+v, but learner-%s has only %d events after the restart", a, a.learner, len(recs))
			continue
		}
		if e := recs[a.res.Version-1]; e.Position != a.res.Position {
			t.Errorf("acknowledged %+v, but learner-%s v%d is at position %d", a, a.learner, e.Version, e.Position)
		}
		if a.module == "" {
			if a.status == http.StatusCreated && recs[a.res.Version-1].Type != (learner.Enrolled{}).EventType() {
				t.Errorf("acknowledged enrollment %+v, but learner-%s v%d is %s", a, a.learner, a.res.Version, recs[a.res.Version-1].Type)
			}
			continue
		}
		found := false
		for _, e := range recs[:a.res.Version] {
			ev, err := codec.Decode(e.Type, e.Data)
			if err != nil {
				t.Fatalf("decode learner-%s v%d: %v", a.learner, e.Version, err)
			}
			if mc, ok := ev.(learner.ModuleCompleted); ok && mc.ModuleID == a.module {
				found = true
			}
		}
		if !found {
			t.Errorf("acknowledged completion %+v, but learner-%s holds no ModuleCompleted %s up to v%d", a, a.learner, a.module, a.res.Version)
		}
	}
}
