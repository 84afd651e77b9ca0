package cache_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/cache/cachetest"
)

func TestMemory(t *testing.T) {
	cachetest.Run(t, func(*testing.T) cache.Cache { return cache.NewMemory(1000) })
}

func TestMemoryStaysWithinItsBound(t *testing.T) {
	c := cache.NewMemory(640)
	for i := range 10_000 {
		c.Set(context.Background(), fmt.Sprint("k", i), cache.Entry{Position: 1})
	}
	held := 0
	for i := range 10_000 {
		if _, ok := c.Get(context.Background(), fmt.Sprint("k", i)); ok {
			held++
		}
	}
	if held > 640 || held < 64 {
		t.Fatalf("holds %d entries after 10,000 sets with a bound of 640", held)
	}
}
