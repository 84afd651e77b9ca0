package live

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
)

// changed is a document of a collection.
type changed struct {
	coll string
	doc  readstore.Doc
}

// catchUp sends a stream that came back with since the current document of each of its topics
// that changed after since (not every state in between), then the id up to which it has
// everything. The stream joined the hub first, so nothing that changes meanwhile is lost:
// deliver drops what the catch-up already sent as new or newer.
//
// The catch-up's messages carry no id: a client that leaves in the middle must come back
// from since again.
func (h *Hub) catchUp(ctx context.Context, c *conn, write func(...[]byte) error) error {
	resynced := false
	for _, t := range c.topics {
		docs, complete, err := h.changedSince(ctx, c, t)
		if err != nil {
			return fmt.Errorf("catch up %s: %w", t.name, err)
		}
		if !complete {
			if !resynced {
				resynced = true
				h.m.resyncs.WithLabelValues(reasons[reasonCatchUp]).Inc()
				h.m.sent.WithLabelValues(EventResync).Inc()
				if err := write(resyncMessage(reasons[reasonCatchUp])); err != nil {
					return err
				}
			}
			continue
		}
		slices.SortStableFunc(docs, func(a, b changed) int { return cmp.Compare(a.doc.Position, b.doc.Position) })
		for _, d := range docs {
			f, ok, err := encode(d.coll, d.doc, h.opts.MediaBaseURL)
			if err != nil {
				return err
			}
			if !ok || !c.allowed(&f) {
				continue
			}
			if err := write(f.wire); err != nil {
				return err
			}
			c.caught[f.key] = f.doc
			h.m.sent.WithLabelValues(f.event).Inc()
		}
	}
	// Everything up to the hub's high-water mark when the stream joined was committed before
	// the reads above, so they have shown it.
	upTo := uint64(math.MaxUint64)
	for _, p := range c.projs {
		upTo = min(upTo, max(c.since, c.base[p]))
	}
	if upTo == math.MaxUint64 || upTo <= c.since {
		return nil
	}
	c.caughtUpTo = upTo
	// An id with no data moves the client's Last-Event-ID and shows it nothing.
	return write(fmt.Appendf(nil, "id: %d\n\n", upTo))
}

// changedSince returns the documents of topic t that changed after c.since. complete is false
// when there are more than the catch-up sends (catalog entries, roster rows).
func (h *Hub) changedSince(ctx context.Context, c *conn, t topic) (docs []changed, complete bool, err error) {
	byID := func(coll, id string) error {
		d, err := h.read(ctx, coll, id, 0)
		switch {
		case errors.Is(err, readstore.ErrNotFound):
			return nil
		case err != nil:
			return err
		case d.Position > c.since:
			docs = append(docs, changed{coll, d})
		}
		return nil
	}
	listing := func(q readstore.Query) error {
		q.PositionAfter, q.Limit = c.since, h.opts.MaxCatchUp+1
		found, err := h.store.Find(ctx, q)
		if err != nil {
			return err
		}
		if len(found) > h.opts.MaxCatchUp {
			complete = false
			return nil
		}
		for _, d := range found {
			docs = append(docs, changed{q.Coll, d})
		}
		return nil
	}
	complete = true
	switch t.kind {
	case topicLearner:
		err = byID(documents.Dashboards, t.id)
	case topicCourse:
		err = byID(documents.CourseDetails, t.id)
		if err == nil && c.teaches[t.id] {
			err = byID(documents.Stats, t.id)
			if err == nil {
				err = listing(readstore.Query{Coll: documents.Rosters, Eq: []readstore.Field{{Name: "courseId", Value: t.id}}})
			}
		}
	case topicCatalog:
		err = listing(readstore.Query{Coll: documents.Catalog})
	}
	return docs, complete, err
}
