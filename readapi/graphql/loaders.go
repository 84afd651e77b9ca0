package graphql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vikstrous/dataloadgen"

	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// loaderWait is how long a loader gathers keys before it reads them. gqlgen resolves the items
// of a list concurrently, so the keys of one list arrive within microseconds of each other;
// the wait is every batched field's added latency.
const loaderWait = time.Millisecond

// loaders are one request's: each reads a read model's documents by id, cache first, with one
// read of the store per batch.
type loaders struct {
	details *dataloadgen.Loader[string, documents.CourseDetail]
	stats   *dataloadgen.Loader[string, documents.CourseStats]

	// pages are the ids of the courses each listing of the request answered.
	mu    sync.Mutex
	pages [][]string
}

func (s *Server) newLoaders() *loaders {
	l := &loaders{}
	l.details = dataloadgen.NewMappedLoader(docFetch[documents.CourseDetail](s, l, documents.CoursesProjection, documents.CourseDetails),
		dataloadgen.WithWait(loaderWait), dataloadgen.WithBatchCapacity(readhttp.MaxLimit))
	l.stats = dataloadgen.NewMappedLoader(docFetch[documents.CourseStats](s, l, documents.CoursesProjection, documents.Stats),
		dataloadgen.WithWait(loaderWait), dataloadgen.WithBatchCapacity(readhttp.MaxLimit))
	return l
}

// listed notes the course ids of a page the request listed.
func (l *loaders) listed(ids []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pages = append(l.pages, ids)
}

// withPages adds to ids the other courses of each page that lists one of them. A field asked
// of one course of a page is asked of every course of it, but the items' resolvers run
// concurrently, and on a busy machine some come after a loader's wait: reading the whole page
// at the first ask makes the page one read of the store, and the late asks cache hits.
func (l *loaders) withPages(ids []string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pages) == 0 {
		return ids
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		seen[id] = true
	}
	out := ids
	for _, page := range l.pages {
		if !slices.ContainsFunc(page, func(id string) bool { return seen[id] }) {
			continue
		}
		for _, id := range page {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

// docFetch reads documents of coll by id through the REST layer's LoadMany: cache first, then
// one read of the store for the rest, with the other courses of their pages.
//
// One loader's batches take turns: a late batch of a page waits for the first, which reads the
// whole page into the cache, and then finds its documents there.
func docFetch[T any](s *Server, l *loaders, projection, coll string) func(ctx context.Context, ids []string) (map[string]T, error) {
	var turn sync.Mutex
	return func(ctx context.Context, ids []string) (map[string]T, error) {
		turn.Lock()
		defer turn.Unlock()
		entries, err := s.api.LoadMany(ctx, projection, coll, l.withPages(ids))
		if err != nil {
			return nil, err
		}
		out := make(map[string]T, len(entries))
		for id, e := range entries {
			var doc T
			if err := json.Unmarshal(e.Body, &doc); err != nil {
				return nil, fmt.Errorf("decode %s/%s: %w", coll, id, err)
			}
			out[id] = doc
		}
		return out, nil
	}
}

// load reads one document through l, answering what's 404 for one that does not exist.
func load[T any](ctx context.Context, l *dataloadgen.Loader[string, T], id, what string) (T, error) {
	v, err := l.Load(ctx, id)
	if errors.Is(err, dataloadgen.ErrNotFound) {
		return v, readhttp.NotFound(what)
	}
	return v, err
}
