package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/edutrack/edutrack/internal/testredis"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/changes/redischanges"
)

// TestTheProjectorAnnouncesChangesThroughRedis: with Redis, a process that projects announces
// each change on the channel every read process subscribes to, at the position a command
// answered.
func TestTheProjectorAnnouncesChangesThroughRedis(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := "redis://" + testredis.Start(t) + "/0"
	reader, err := redischanges.Open(url, redischanges.Options{Prefix: "edutrack:", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	batches, err := reader.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := startWith(t, t.TempDir(), &logTracker{}, map[string]string{"EDUTRACK_REDIS_URL": url})
	s.ok(s.do(http.MethodPost, "/v1/users", user("grace", "Grace Hopper", "instructor")), created, 1)
	r := s.ok(s.do(http.MethodPost, "/v1/courses", map[string]string{"id": "go", "title": "Go", "description": "Goroutines.",
		"category": "cs", "level": "beginner", "instructorId": "grace"}), created, 1)
	timeout := time.After(30 * time.Second)
	for {
		var b changes.Batch
		select {
		case b = <-batches:
		case <-timeout:
			t.Fatalf("no batch announced course go at %d within 30s", r.Position)
		}
		for _, c := range b.Changes {
			if c == (changes.Change{Coll: "course_details", ID: "go", Position: r.Position}) && b.Projection == "courses" {
				metrics := string(get(t, s, "/metrics").body)
				if v, found := sample(metrics, "edutrack_changes_publish_errors_total"); !found || v != 0 {
					t.Errorf("edutrack_changes_publish_errors_total = %v (found %v); want 0", v, found)
				}
				return
			}
		}
	}
}
