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
		if err := c.Set(ctx, "course:a", cache.Entry{Position: 7, AsOf: 9, Body: []byte(`{"id":"a"}`)}); err != nil {
			t.Fatalf("set: %v", err)
		}
		e, ok := c.Get(ctx, "course:a")
		if !ok || e.Position != 7 || e.ValidAsOf() != 9 || string(e.Body) != `{"id":"a"}` {
			t.Fatalf("get = %+v, %v; want position 7, as of 9, and the body set", e, ok)
		}
	})
	t.Run("takes_an_entry_without_AsOf_as_current_as_of_its_position", func(t *testing.T) {
		c := newCache(t)
		c.Set(ctx, "course:e", cache.Entry{Position: 7, Body: []byte("x")})
		if e, _ := c.Get(ctx, "course:e"); e.ValidAsOf() != 7 {
			t.Fatalf("get = %+v; want it valid as of its position, 7", e)
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
	t.Run("replaces_an_entry_with_the_same_document_known_current_later", func(t *testing.T) {
		// A reader that found the same document in the store later says so: the entry is
		// then good for reads that need the later position.
		c := newCache(t)
		c.Set(ctx, "course:f", cache.Entry{Position: 10, AsOf: 12, Body: []byte("ten")})
		c.Set(ctx, "course:f", cache.Entry{Position: 10, AsOf: 11, Body: []byte("ten")})
		if e, _ := c.Get(ctx, "course:f"); e.Position != 10 || e.ValidAsOf() != 12 {
			t.Fatalf("after setting the same document known current earlier, get = %d as of %d; want 10 as of 12", e.Position, e.ValidAsOf())
		}
		c.Set(ctx, "course:f", cache.Entry{Position: 10, AsOf: 20, Body: []byte("ten")})
		if e, _ := c.Get(ctx, "course:f"); e.Position != 10 || e.ValidAsOf() != 20 {
			t.Fatalf("after setting the same document known current later, get = %d as of %d; want 10 as of 20", e.Position, e.ValidAsOf())
		}
		// A document known current only as of a later position is still the older document.
		c.Set(ctx, "course:f", cache.Entry{Position: 9, AsOf: 30, Body: []byte("nine")})
		if e, _ := c.Get(ctx, "course:f"); e.Position != 10 || string(e.Body) != "ten" {
			t.Fatalf("after setting an older document known current later, get = %d %q; want 10 \"ten\"", e.Position, e.Body)
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
