// Package cache is the port to the cache of read-model documents that the read API serves
// first, and its in-process adapter. Entries carry the log position of their document, and a
// cache never replaces an entry with an older one, so it never serves a document older than one
// it has already served.
package cache

import (
	"context"
	"sync"
)

// Entry is a cached document: its encoded body and its position.
type Entry struct {
	Position uint64
	Body     []byte
}

// Cache is a position-aware document cache. Failures degrade to misses: a cache is never the
// reason a read fails.
type Cache interface {
	// Get returns the entry under key, if any.
	Get(ctx context.Context, key string) (Entry, bool)
	// Set stores e under key unless the cache holds an entry with a later position.
	Set(ctx context.Context, key string, e Entry)
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

// Set implements Cache.
func (m *Memory) Set(_ context.Context, key string, e Entry) {
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.entries[key]; ok {
		if old.Position > e.Position {
			return
		}
	} else if len(s.entries) >= m.max {
		for k := range s.entries { // random eviction: map order is random
			delete(s.entries, k)
			break
		}
	}
	s.entries[key] = e
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

// Set implements Cache.
func (Nop) Set(context.Context, string, Entry) {}

// Delete implements Cache.
func (Nop) Delete(context.Context, string) {}

var (
	_ Cache = (*Memory)(nil)
	_ Cache = Nop{}
)
