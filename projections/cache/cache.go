// Package cache is the port to the cache of read-model documents that the read API serves
// first, and its in-process adapter. Entries carry the log position of their document and the
// position as of which it was known current, and a cache never replaces an entry with an older
// one, so it never serves a document older than one it has already served.
package cache

import (
	"context"
	"sync"
)

// Entry is a cached document: its encoded body, its position (that of the last event applied to
// it, its version) and AsOf, the log position as of which Body was known to be the document:
// no event up to AsOf changed it after Position. A projector sets AsOf to the position of the
// batch that wrote the document; a reader that found the document in the read store sets it to
// the position it knew the projection had reached before it read. A reader compares AsOf with
// the projection's cache fence (see projections.Positions) to tell an entry that a failed
// write may have left behind.
type Entry struct {
	Position uint64
	AsOf     uint64 // at least Position; an entry whose AsOf is below Position is read as AsOf = Position
	Body     []byte
}

// Newer reports whether e is newer than old: a later Position, or the same one known current as
// of a later AsOf.
func (e Entry) Newer(old Entry) bool {
	if e.Position != old.Position {
		return e.Position > old.Position
	}
	return e.ValidAsOf() >= old.ValidAsOf()
}

// ValidAsOf is the position as of which the entry is known current: AsOf, and never less than
// Position.
func (e Entry) ValidAsOf() uint64 { return max(e.AsOf, e.Position) }

// Cache is a position-aware document cache. Failures degrade to misses: a cache is never the
// reason a read fails.
type Cache interface {
	// Get returns the entry under key, if any.
	Get(ctx context.Context, key string) (Entry, bool)
	// Set stores e under key unless the cache holds a newer entry (see Entry.Newer). It returns
	// an error when e may not be stored: the key may then still hold an older entry, which the
	// caller must keep readers from trusting (a projector raises its cache fence).
	Set(ctx context.Context, key string, e Entry) error
	// Delete drops key, as when a read model is rebuilt.
	Delete(ctx context.Context, key string)
}

// Memory is the in-process cache, bounded by entry count. It is safe for concurrent use.
type Memory struct {
	max    int
	shards [64]memShard
}

type memShard struct {
	mu      sync.RWMutex
	entries map[string]Entry
}

// NewMemory returns an in-process cache holding about max entries (at least 64).
func NewMemory(max int) *Memory {
	m := &Memory{max: max / 64}
	if m.max < 1 {
		m.max = 1
	}
	for i := range m.shards {
		m.shards[i].entries = make(map[string]Entry)
	}
	return m
}

func (m *Memory) shard(key string) *memShard {
	// FNV-1a, inline: cheap and good enough to spread keys.
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return &m.shards[h%uint32(len(m.shards))]
}

// Get implements Cache.
func (m *Memory) Get(_ context.Context, key string) (Entry, bool) {
	s := m.shard(key)
	s.mu.RLock()
	e, ok := s.entries[key]
	s.mu.RUnlock()
	return e, ok
}

// Set implements Cache. It never fails.
func (m *Memory) Set(_ context.Context, key string, e Entry) error {
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.entries[key]; ok {
		if !e.Newer(old) {
			return nil
		}
	} else if len(s.entries) >= m.max {
		for k := range s.entries { // random eviction: map order is random
			delete(s.entries, k)
			break
		}
	}
	s.entries[key] = e
	return nil
}

// Delete implements Cache.
func (m *Memory) Delete(_ context.Context, key string) {
	s := m.shard(key)
	s.mu.Lock()
	delete(s.entries, key)
	s.mu.Unlock()
}

// Nop caches nothing: every Get misses. It is the cache of a process that cannot know when
// a document changes.
type Nop struct{}

// Get implements Cache.
func (Nop) Get(context.Context, string) (Entry, bool) { return Entry{}, false }

// Set implements Cache. It stores nothing, so it leaves nothing stale behind.
func (Nop) Set(context.Context, string, Entry) error { return nil }

// Delete implements Cache.
func (Nop) Delete(context.Context, string) {}

var (
	_ Cache = (*Memory)(nil)
	_ Cache = Nop{}
)
