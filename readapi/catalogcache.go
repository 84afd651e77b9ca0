package readapi

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// The catalog cache's bounds. A page weighs the JSON of its documents as read; decoded, with
// its cursors and its rendered body, it takes about 2.2 times that on the heap (measured over
// 150 pages of 51 to 100 courses), so the cache holds some 40 MB at most, however its keys are
// chosen. The school's catalog needs a few hundred pages.
const (
	catalogPagesMax = 4096
	catalogBytesMax = 16 << 20
)

// catalogPage is a page of the catalog as read from the store, kept for the readers that ask
// for it again.
type catalogPage struct {
	listing Listing[documents.CatalogEntry]
	// pos is the courses projection's position as this process knew it before the store read,
	// which then reflects at least that much.
	pos uint64
	// read is when the store read began: the page is at least as new.
	read time.Time

	render sync.Once // the REST body, rendered once for all its readers
	body   []byte
	err    error
}

// reply answers the page as GET /v1/courses does.
func (p *catalogPage) reply(mediaBaseURL string) (readhttp.Reply, error) {
	p.render.Do(func() {
		rep, err := pageReply(p.listing, func(e documents.CatalogEntry) documents.CatalogItem { return e.CatalogItem }, false)
		p.body, p.err = documents.MediaURLs(rep.Body, mediaBaseURL), err
	})
	return readhttp.Reply{Body: p.body, ETag: p.listing.ETag}, p.err
}

// catalogCache keeps this process's catalog pages, so the same page asked for again does not
// read the store again while it is fresh enough (fresh); concurrent reads of a page the cache
// cannot answer read the store once.
//
// It is per process and in memory, unlike the document cache: a page changes with every
// enrollment and completion of one of its courses, which no projector could keep current in a
// shared cache without rewriting every page a course is on.
type catalogCache struct {
	positions Positions
	maxAge    time.Duration
	hits      prometheus.Counter
	misses    prometheus.Counter
	flight    singleflight.Group

	mu    sync.Mutex
	pages *simplelru.LRU[string, *catalogPage]
	bytes int // of the pages held, as weighed by Listing.bytes
}

func newCatalogCache(positions Positions, maxAge time.Duration, hits, misses prometheus.Counter) (*catalogCache, error) {
	c := &catalogCache{positions: positions, maxAge: maxAge, hits: hits, misses: misses}
	var err error
	c.pages, err = simplelru.NewLRU(catalogPagesMax, func(_ string, p *catalogPage) { c.bytes -= p.listing.bytes })
	return c, err
}

// fresh tells whether p may answer a reader that asked for minPosition (which it has waited
// for) while the courses projection is at cur: if the projection has not moved since p was read,
// or if p is younger than the max age and was read at minPosition or later.
func (c *catalogCache) fresh(p *catalogPage, cur, minPosition uint64, now time.Time) bool {
	if p.pos > cur {
		return false // the projection went back: a new generation of the read models went live
	}
	return p.pos == cur || (p.pos >= minPosition && now.Sub(p.read) < c.maxAge)
}

// page answers the page of key for a reader that asked for minPosition, from the cache if it
// is fresh enough, else by read, which one store read serves to every reader asking at once.
func (c *catalogCache) page(ctx context.Context, key string, minPosition uint64,
	read func(context.Context) (Listing[documents.CatalogEntry], error)) (*catalogPage, error) {
	cur := c.positions.Position(documents.CoursesProjection)
	c.mu.Lock()
	p, ok := c.pages.Get(key)
	c.mu.Unlock()
	if ok && c.fresh(p, cur, minPosition, time.Now()) {
		c.hits.Inc()
		return p, nil
	}
	c.misses.Inc()
	// The read answers every reader that joined it, so the one that began it leaving must not
	// cancel it; each reader waits for it only as long as its own request lasts.
	done := c.flight.DoChan(key, func() (any, error) { return c.read(context.WithoutCancel(ctx), key, read) })
	select {
	case r := <-done:
		if r.Err != nil {
			return nil, r.Err
		}
		if p := r.Val.(*catalogPage); p.pos >= minPosition {
			return p, nil
		}
		// This reader joined a read that began before the projection reached its minPosition.
		return c.read(ctx, key, read)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// read reads the page of key from the store and keeps it.
func (c *catalogCache) read(ctx context.Context, key string, read func(context.Context) (Listing[documents.CatalogEntry], error)) (*catalogPage, error) {
	p := &catalogPage{pos: c.positions.Position(documents.CoursesProjection), read: time.Now()}
	var err error
	if p.listing, err = read(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.pages.Peek(key); ok {
		c.bytes -= old.listing.bytes // replacing a page is no eviction
	}
	c.pages.Add(key, p)
	c.bytes += p.listing.bytes
	for c.bytes > catalogBytesMax {
		if _, _, ok := c.pages.RemoveOldest(); !ok {
			break
		}
	}
	return p, nil
}
