package live

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
)

// Why a stream is told to resync.
const (
	reasonNone        int32 = iota
	reasonBehind            // the client fell behind and its buffer was full
	reasonFeed              // the change feed lost messages (it said Resync)
	reasonUnavailable       // a changed document could not be read
	reasonCatchUp           // too much changed while the client was away
)

var reasons = [...]string{"", "behind", "feed", "unavailable", "catch-up"}

// conn is one stream as the hub sees it.
type conn struct {
	actor  domain.Actor
	user   string
	addr   string
	topics []topic
	// teaches are the courses whose stats and roster the caller may read.
	teaches map[string]bool
	// projs are the projections whose documents the stream follows.
	projs []string
	// since is the position the client says it has everything up to; hasSince when it said so.
	since    uint64
	hasSince bool
	// base is, per projection, the hub's high-water mark when the stream joined: what came
	// before, the catch-up covers.
	base map[string]uint64

	out  chan item
	wake chan struct{}
	// behind is why the stream must be told to resync (a reason), or reasonNone. While it is
	// set the hub gives the stream nothing: the resync covers what it misses.
	behind atomic.Int32
	// caught are the documents the catch-up sent, at their positions: a message of one of them
	// that is not newer is not sent. Only the stream's goroutine uses it.
	caught map[string]uint64
	// caughtUpTo is the id the catch-up ended on: the stream has everything up to it, and no
	// later id may be lower. Only the stream's goroutine uses it.
	caughtUpTo uint64
}

// item is a frame handed to one stream, with the position the stream has delivered
// everything up to once the frame is sent (its id:).
type item struct {
	f  *frame
	id uint64
}

// follows reports whether c follows projection p.
func (c *conn) follows(p string) bool { return slices.Contains(c.projs, p) }

// allowed reports whether c may get f: stats and rosters only for those who teach the course,
// a draft's details only for its instructor and admins. (A course's readers change when it is
// published; the other topics' readers never change.)
func (c *conn) allowed(f *frame) bool {
	if f.teaches != "" && !c.teaches[f.teaches] {
		return false
	}
	if f.draftBy != "" && c.actor.Role != domain.Admin && (c.actor.Role != domain.Instructor || c.actor.UserID != f.draftBy) {
		return false
	}
	return true
}

// mark tells the stream to resync for reason, unless it is told already.
func (c *conn) mark(reason int32) bool {
	if !c.behind.CompareAndSwap(reasonNone, reason) {
		return false
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// handle hands out one batch of the feed.
func (h *Hub) handle(ctx context.Context, b changes.Batch) {
	if b.Resync {
		h.resync(b.Projection, reasonFeed)
		return
	}
	type job struct {
		ch    changes.Change
		topic string
		doc   readstore.Doc
		err   error
	}
	// In position order, so that a stream's ids only grow: a client that leaves after a
	// message has every change before it.
	sorted := slices.SortedFunc(slices.Values(b.Changes), func(a, b changes.Change) int { return cmp.Compare(a.Position, b.Position) })
	var jobs []job
	h.mu.Lock()
	for _, ch := range sorted {
		p := projectionOf(ch.Coll)
		h.high[p] = max(h.high[p], ch.Position)
		if topic, ok := topicOf(ch.Coll, ch.ID); ok && len(h.subs[topic]) > 0 {
			jobs = append(jobs, job{ch: ch, topic: topic})
		}
	}
	h.mu.Unlock()
	// Each document is read once for every stream; the reads of a batch run side by side,
	// since a Redis cache answers each in a round trip.
	var g errgroup.Group
	g.SetLimit(8)
	for i := range jobs {
		g.Go(func() error {
			jobs[i].doc, jobs[i].err = h.read(ctx, jobs[i].ch.Coll, jobs[i].ch.ID, jobs[i].ch.Position)
			return nil
		})
	}
	g.Wait()
	for _, j := range jobs {
		key := j.ch.Coll + "/" + j.ch.ID
		switch {
		case errors.Is(j.err, readstore.ErrNotFound):
			continue // dropped with its generation; nothing to show
		case j.err != nil:
			if ctx.Err() == nil {
				h.log.Warn("live: a changed document could not be read; its streams are told to resync",
					"read_model", j.ch.Coll, "position", j.ch.Position, "err", j.err)
			}
			h.missed(j.topic)
			continue
		case j.doc.Position <= h.latest[key]:
			continue // read ahead of its change, and handed out then
		}
		f, ok, err := encode(j.ch.Coll, j.doc, h.opts.MediaBaseURL)
		if err != nil {
			h.log.Error("live: encode a changed document", "read_model", j.ch.Coll, "position", j.doc.Position, "err", err)
			h.missed(j.topic)
			continue
		}
		if len(h.latest) >= maxLatest {
			clear(h.latest)
		}
		h.latest[key] = j.doc.Position
		if !ok {
			continue
		}
		f.pos, f.at = j.ch.Position, b.CommittedAt
		h.offer(&f)
	}
}

// offer hands f to every stream of its topic that may read it, without ever waiting: a stream
// whose buffer is full misses it, and is told to resync once it has sent what it holds.
func (h *Hub) offer(f *frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs[f.topic] {
		if !c.allowed(f) {
			continue
		}
		if c.behind.Load() != reasonNone {
			h.m.dropped.Inc()
			continue
		}
		select {
		case c.out <- item{f: f, id: h.resumeID(c, f)}:
		default:
			h.m.dropped.Inc()
			c.mark(reasonBehind)
		}
	}
}

// resumeID is the id of f on c: the position up to which c has everything it follows once f
// is sent. That is f's position unless c also follows another projection, whose changes the
// hub has handed out only up to its own high-water mark: projections commit independently,
// so a change of one can come after a later change of the other, and a client that came back
// from f's position would miss it. Called with h.mu held.
func (h *Hub) resumeID(c *conn, f *frame) uint64 {
	id := f.pos
	for _, p := range c.projs {
		if p != f.proj {
			id = min(id, max(c.since, h.high[p]))
		}
	}
	return id
}

// resync tells every stream that follows projection (all of them, for a name the hub does not
// know) that it missed messages.
func (h *Hub) resync(projection string, reason int32) {
	known := projection == documents.CoursesProjection || projection == documents.LearnersProjection
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		if !known || c.follows(projection) {
			c.mark(reason)
		}
	}
}

// missed tells the streams of topic that a message for them was lost.
func (h *Hub) missed(topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs[topic] {
		c.mark(reasonUnavailable)
	}
}
