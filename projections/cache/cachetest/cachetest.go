// Package cachetest is the contract every cache.Cache adapter meets.
package cachetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/edutrack/edutrack/projections/cache"
)

// Run runs the contract. newCache returns an empty cache (or one whose keys cannot collide with
// the suite's, such as a fresh key prefix).
func Run(t *testing.T, newCache func(t *testing.T) cache.Cache) {
	ctx := context.Background()
	t.Run("misses_what_it_never_held", func(t *testing.T) {
		c := newCache(t)
		if _, ok := c.Get(ctx, "course:nothing"); ok {
			t.Fatal("a key never set was found")
		}
	})
	t.Run("returns_what_was_set", func(t *testing.T) {
		c := newCache(t)
		c.Set(ctx, "course:a", cache.Entry{Position: 7, Body: []byte(`{"id":"a"}`)})
		e, ok := c.Get(ctx, "course:a")
		if !ok || e.Position != 7 || string(e.Body) != `{"id":"a"}` {
			t.Fatalf("get = %+v, %v; want position 7 and the body set", e, ok)
		}
	})
	t.Run("never_replaces_an_entry_with_an_older_one", func(t *testing.T) {
		c := newCache(t)
		c.Set(ctx, "course:b", cache.Entry{Position: 10, Body: []byte("new")})
		c.Set(ctx, "course:b", cache.Entry{Position: 9, Body: []byte("old")})
		if e, _ := c.Get(ctx, "course:b"); e.Position != 10 || string(e.Body) != "new" {
			t.Fatalf("after setting an older entry, get = %d %q; want 10 \"new\"", e.Position, e.Body)
		}
		c.Set(ctx, "course:b", cache.Entry{Position: 11, Body: []byte("newer")})
		if e, _ := c.Get(ctx, "course:b"); e.Position != 11 || string(e.Body) != "newer" {
			t.Fatalf("after setting a newer entry, get = %d %q; want 11 \"newer\"", e.Position, e.Body)
		}
	})
	t.Run("forgets_a_deleted_key", func(t *testing.T) {
		c := newCache(t)
		c.Set(ctx, "course:c", cache.Entry{Position: 1, Body: []byte("x")})
		c.Delete(ctx, "course:c")
		if _, ok := c.Get(ctx, "course:c"); ok {
			t.Fatal("a deleted key was found")
		}
	})
	t.Run("keeps_the_newest_under_concurrent_writers", func(t *testing.T) {
		c := newCache(t)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range 50 {
					pos := uint64(p*8 + w + 1)
					c.Set(ctx, "course:d", cache.Entry{Position: pos, Body: []byte(fmt.Sprint(pos))})
				}
			}()
		}
		wg.Wait()
		if e, _ := c.Get(ctx, "course:d"); e.Position != 400 || string(e.Body) != "400" {
			t.Fatalf("after concurrent sets, get = %d %q; want the newest, 400", e.Position, e.Body)
		}
	})
}
