package readapi

import (
	"sync"
	"time"
)

// mediaCache keeps the bytes of small, often read media in memory, so that a hot image is
// served without opening a file or asking the bucket: a read of the blob store costs more than
// the answer (BENCHMARKS.md, "Course images"). Keys name their content, so an entry never goes
// stale; it is dropped after a while all the same, so that deleted blobs stop being served.
type mediaCache struct {
	mu      sync.Mutex
	entries map[string]mediaEntry
	bytes   int
	max     int // bytes held at most
	ttl     time.Duration
}

type mediaEntry struct {
	data    []byte
	modTime time.Time
	until   time.Time
}

const (
	mediaCacheBytes = 64 << 20 // a few thousand thumbnails
	mediaCacheItem  = 1 << 20  // larger media are streamed from the bucket
	mediaCacheTTL   = 5 * time.Minute
)

func newMediaCache() *mediaCache {
	return &mediaCache{entries: map[string]mediaEntry{}, max: mediaCacheBytes, ttl: mediaCacheTTL}
}

func (c *mediaCache) get(key string, now time.Time) (mediaEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if ok && now.After(e.until) {
		delete(c.entries, key)
		c.bytes -= len(e.data)
		return mediaEntry{}, false
	}
	return e, ok
}

// put keeps data, making room by dropping entries at random (a map's order), which keeps the
// hot ones often enough without the bookkeeping of an LRU.
func (c *mediaCache) put(key string, data []byte, modTime, now time.Time) {
	if len(data) > mediaCacheItem {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key]; ok {
		c.bytes -= len(old.data)
	}
	for k, e := range c.entries {
		if c.bytes+len(data) <= c.max {
			break
		}
		delete(c.entries, k)
		c.bytes -= len(e.data)
	}
	c.entries[key] = mediaEntry{data: data, modTime: modTime, until: now.Add(c.ttl)}
	c.bytes += len(data)
}
