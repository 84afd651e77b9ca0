// Package live pushes read models to browsers as they change: GET /v1/live answers a stream of
// Server-Sent Events, one per changed document a caller may read, and POST /v1/live/tickets
// trades a bearer token for the single-use ticket a browser's EventSource opens it with.
//
// One Hub per process follows the change feed once, reads each changed document once (cache
// first, as readapi does), encodes it once, and hands it to the streams that follow its topic,
// each through a bounded buffer, so a slow client never holds up the feed or the other
// clients: it misses messages and is told to resync instead. A client that comes back with
// Last-Event-ID (or since=) first gets the current document of every topic that changed while
// it was away.
package live

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/readapi/access"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// Store is what the streams read of the read models (projections.Live is one: it reads the
// live generation of each).
type Store interface {
	Get(ctx context.Context, coll, id string) (readstore.Doc, error)
	Find(ctx context.Context, q readstore.Query) ([]readstore.Doc, error)
}

// Positions tells how far projections have come, waits for them, and tells which cache
// entries may be trusted (projections.Positions is one), as for readapi.
type Positions interface {
	readhttp.Positions
	Position(projection string) uint64
	CacheFence(projection string) (fence uint64, known bool)
}

// Defaults of Options.
const (
	DefaultMaxTopics     = 20
	DefaultMaxPerUser    = 10
	DefaultMaxPerAddress = 1000
	DefaultBuffer        = 64
	DefaultKeepAlive     = 15 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
	DefaultRetry         = 2 * time.Second
	DefaultMaxCatchUp    = 500
)

// Options tune the streams.
type Options struct {
	// CacheKey names a document's cache entry, as readapi.Options.CacheKey (default coll:id).
	CacheKey func(coll, id string) string
	// Disclosures records an admin's or auditor's subscription to a learner's dashboard, as a
	// read of it would be. Without it such subscriptions answer 503.
	Disclosures access.Disclosures
	// MaxTopics caps the topics of one stream (400 past it).
	MaxTopics int
	// MaxPerUser and MaxPerAddress cap the streams open at once in this process for one user and
	// for one client address (429 past them).
	MaxPerUser, MaxPerAddress int
	// Address names the client of a request for MaxPerAddress (default the peer's IP).
	Address func(r *http.Request) string
	// Buffer is how many messages a stream may fall behind before it misses some and is told
	// to resync.
	Buffer int
	// KeepAlive is the interval of the comments that keep proxies from closing a quiet stream.
	KeepAlive time.Duration
	// WriteTimeout bounds each write to a client; a client that takes no data for that long is
	// cut off, and comes back with Last-Event-ID.
	WriteTimeout time.Duration
	// Retry is how long clients are told to wait before they reconnect when the process stops
	// (each gets up to twice that, so they do not all come back at once).
	Retry time.Duration
	// ConsistencyWait bounds how long opening a stream waits for its minPosition (default 3s).
	ConsistencyWait time.Duration
	// Waits, if not nil, measures those waits.
	Waits *readhttp.WaitMetrics
	// MediaBaseURL, if set, is where the media URLs of the documents point instead of this
	// process's /media route (documents.MediaURLs).
	MediaBaseURL string
	// MaxCatchUp caps the catalog entries or roster rows a reconnecting stream is sent for
	// one topic; past it the stream is told to resync instead.
	MaxCatchUp int
}

func (o *Options) defaults() {
	if o.CacheKey == nil {
		o.CacheKey = func(coll, id string) string { return coll + ":" + id }
	}
	for _, d := range []struct {
		v   *int
		def int
	}{{&o.MaxTopics, DefaultMaxTopics}, {&o.MaxPerUser, DefaultMaxPerUser}, {&o.MaxPerAddress, DefaultMaxPerAddress},
		{&o.Buffer, DefaultBuffer}, {&o.MaxCatchUp, DefaultMaxCatchUp}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.KeepAlive, DefaultKeepAlive}, {&o.WriteTimeout, DefaultWriteTimeout}, {&o.Retry, DefaultRetry}, {&o.ConsistencyWait, 3 * time.Second}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if o.Address == nil {
		o.Address = func(r *http.Request) string {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return host
		}
	}
}

// Hub follows the change feed for every stream of this process.
type Hub struct {
	feed      changes.Feed
	store     Store
	cache     cache.Cache
	positions Positions
	log       *slog.Logger
	opts      Options
	m         *metrics

	mu sync.Mutex
	// conns are the open streams, and subs those that follow each topic.
	conns map[*conn]struct{}
	subs  map[string]map[*conn]struct{}
	// high is, per projection, the highest change position the hub has handed out: every
	// change of the projection up to it is in the buffers of the streams that follow it.
	high         map[string]uint64
	users, addrs map[string]int
	closed       bool
	done         chan struct{} // closed when Run has ended: the streams end too

	// latest is the position of each document the hub last handed out, so that a document read
	// ahead of its change is not sent twice. Only Run's goroutine uses it.
	latest map[string]uint64
}

// maxLatest bounds latest; past it the map starts over, which costs at most one more copy of
// a document.
const maxLatest = 100_000

// NewHub returns the hub of this process; Run makes it follow feed.
func NewHub(feed changes.Feed, store Store, c cache.Cache, positions Positions, reg prometheus.Registerer, log *slog.Logger, opts Options) (*Hub, error) {
	if feed == nil || store == nil || c == nil || positions == nil || reg == nil || log == nil {
		return nil, errors.New("live: every dependency is required")
	}
	opts.defaults()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	h := &Hub{feed: feed, store: store, cache: c, positions: positions, log: log, opts: opts, m: m,
		conns: map[*conn]struct{}{}, subs: map[string]map[*conn]struct{}{}, high: map[string]uint64{}, users: map[string]int{}, addrs: map[string]int{},
		done: make(chan struct{}), latest: map[string]uint64{}}
	h.raiseHigh()
	return h, nil
}

// raiseHigh starts each projection's high-water mark at the position it has reached: what
// was committed before the hub followed the feed will never come through it.
func (h *Hub) raiseHigh() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range []string{documents.CoursesProjection, documents.LearnersProjection} {
		h.high[p] = max(h.high[p], h.positions.Position(p))
	}
}

// Run follows the feed until ctx ends, then ends every stream, each told to come back. It
// returns nil then; an error only if the feed cannot be followed, or stops before ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	defer h.close()
	h.raiseHigh()
	batches, err := h.feed.Subscribe(ctx)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case b, ok := <-batches:
			if !ok {
				if ctx.Err() == nil {
					// A feed closes its channel only when ctx ends: a process whose streams
					// would stay quiet for good had better stop and say why.
					return errors.New("live: the change feed stopped")
				}
				return nil
			}
			h.handle(ctx, b)
		}
	}
}

// close ends every stream and refuses new ones.
func (h *Hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}
