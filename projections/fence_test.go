package projections_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/projections"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
)

// flakyCache is an in-process cache whose writes fail while failing is set, as Redis's do while it
// is paused, failing over or out of memory, though its reads still answer.
type flakyCache struct {
	*cache.Memory
	failing atomic.Bool
	failed  atomic.Int64
}

func (c *flakyCache) Set(ctx context.Context, key string, e cache.Entry) error {
	if c.failing.Load() {
		c.failed.Add(1)
		return errors.New("write refused")
	}
	return c.Memory.Set(ctx, key, e)
}

// followed is what a read process that follows store learns of the projections' positions and
// cache fences.
func followed(t *testing.T, store readstore.Store, want uint64) *projections.Positions {
	t.Helper()
	live := projections.NewLive(store, projections.Courses{}, projections.Learners{})
	p := projections.NewPositions()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- live.Follow(ctx, p, time.Millisecond) }()
	defer func() { cancel(); <-done }()
	wait, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	if err := p.Wait(wait, want, documents.CoursesProjection); err != nil {
		t.Fatalf("the follower did not reach %d: %v", want, err)
	}
	return p
}

func TestCacheFence(t *testing.T) {
	t.Run("is_unknown_until_raised_and_never_goes_down", func(t *testing.T) {
		p := projections.NewPositions()
		if _, known := p.CacheFence("courses"); known {
			t.Fatal("a fence nobody raised is known")
		}
		p.RaiseCacheFence("courses", 0)
		if f, known := p.CacheFence("courses"); !known || f != 0 {
			t.Fatalf("fence = %d, %v; want 0, known", f, known)
		}
		p.RaiseCacheFence("courses", 9)
		p.RaiseCacheFence("courses", 4)
		if f, _ := p.CacheFence("courses"); f != 9 {
			t.Fatalf("fence = %d after raising it to 9 then 4; want 9", f)
		}
	})

	t.Run("stays_at_0_while_every_cache_write_succeeds", func(t *testing.T) {
		w := newWorld(t)
		w.scenario()
		store := openStore(t)
		positions := run(t, w.log, store, cache.NewMemory(1000))
		for _, name := range []string{documents.CoursesProjection, documents.LearnersProjection} {
			if f, known := positions.CacheFence(name); !known || f != 0 {
				t.Errorf("%s: fence = %d, %v; want 0, known", name, f, known)
			}
		}
	})

	t.Run("a_failed_cache_write_raises_it_to_its_batch_in_this_process_and_in_the_store", func(t *testing.T) {
		w := newWorld(t)
		w.scenario()
		store := openStore(t)
		c := &flakyCache{Memory: cache.NewMemory(1000)}
		c.failing.Store(true)
		positions := run(t, w.log, store, c)
		head, _ := w.log.Head(context.Background())
		// The last event retitles a course: its batch, at the head, failed to write the cache.
		if f, known := positions.CacheFence(documents.CoursesProjection); !known || f != head {
			t.Errorf("courses: fence = %d, %v; want the head %d", f, known, head)
		}
		if c.failed.Load() == 0 {
			t.Fatal("no cache write was tried")
		}
		// A read process learns it from the store, by the time it learns the position.
		follower := followed(t, store, head)
		for _, name := range []string{documents.CoursesProjection, documents.LearnersProjection} {
			mine, _ := positions.CacheFence(name)
			if f, known := follower.CacheFence(name); !known || f != mine {
				t.Errorf("%s: the follower's fence = %d, %v; want the projector's %d", name, f, known, mine)
			}
		}
		// So does the next run of the projector, with writes that succeed.
		c.failing.Store(false)
		again := run(t, w.log, store, c)
		if f, _ := again.CacheFence(documents.CoursesProjection); f != head {
			t.Errorf("courses after a restart: fence = %d; want %d still", f, head)
		}
	})

	t.Run("entries_written_after_it_are_trusted", func(t *testing.T) {
		w := newWorld(t)
		w.scenario()
		store := openStore(t)
		c := &flakyCache{Memory: cache.NewMemory(1000)}
		c.failing.Store(true)
		positions := run(t, w.log, store, c)
		fence, _ := positions.CacheFence(documents.CoursesProjection)
		c.failing.Store(false)
		title := "Go, once Redis is back"
		w.ok(w.cmds.UpdateCourseDetails(context.Background(), w.meta(), commands.UpdateCourseDetails{ID: "go", Patch: coursePatch(title)}))
		positions = run(t, w.log, store, c)
		e, ok := c.Get(context.Background(), projections.CacheKey(documents.CourseDetails, "go"))
		if !ok || e.ValidAsOf() <= fence {
			t.Fatalf("cached = %+v, %v; want the new title known current past the fence %d", e, ok, fence)
		}
		if f, _ := positions.CacheFence(documents.CoursesProjection); e.ValidAsOf() < f {
			t.Errorf("the new entry, as of %d, is behind the fence %d", e.ValidAsOf(), f)
		}
	})
}
