package live

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
	"github.com/edutrack/edutrack/readapi/access"
)

// The events of a stream. A document's event is its read model's name; its data is the
// document as its GET route answers it (for catalog entries and roster rows, as the listing
// answers each item).
const (
	EventCatalogRemoved = "catalog.removed" // data {"id": ...}: the course left the catalog (archived)
	EventResync         = "resync"          // data {"reason": ...}: messages were missed; read again
)

// Topic kinds, as a client names them: learner:{id}, course:{id}, catalog.
const (
	topicLearner = "learner"
	topicCourse  = "course"
	topicCatalog = "catalog"
)

// frame is one message for every stream of a topic, encoded once.
type frame struct {
	topic string
	key   string // the document: coll/id
	proj  string
	pos   uint64 // the change's position: how far the stream has come once it is sent
	doc   uint64 // the document's position, as read
	event string
	wire  []byte // event: and data: lines, and the blank line that ends the message
	at    time.Time
	// teaches is the course whose teachers alone (its instructor, admins) get the frame: stats
	// and roster rows.
	teaches string
	// draftBy is the instructor of a draft course: only they and admins see its details.
	draftBy string
}

// projectionOf names the projection that builds coll.
func projectionOf(coll string) string {
	switch coll {
	case documents.Dashboards, documents.Rosters:
		return documents.LearnersProjection
	default:
		return documents.CoursesProjection
	}
}

// topicOf is the topic a document of coll belongs to, if any.
func topicOf(coll, id string) (string, bool) {
	switch coll {
	case documents.Dashboards:
		return topicLearner + ":" + id, true
	case documents.CourseDetails, documents.Stats:
		return topicCourse + ":" + id, true
	case documents.Rosters:
		course, _, ok := strings.Cut(id, "/")
		return topicCourse + ":" + course, ok
	case documents.Catalog:
		return topicCatalog, true
	}
	return "", false
}

// cached are the collections whose documents the projectors put in the cache: those served by
// id. The others are read from the store alone, as their listings are.
func cached(coll string) bool {
	return coll == documents.Dashboards || coll == documents.CourseDetails || coll == documents.Stats
}

// errOlder means the store holds the document as it was before the change: it cannot be
// sent as the change.
var errOlder = errors.New("the document read is older than its change")

// read returns document id of coll at position pos or later, cache first as readapi reads it:
// an entry serves only if it is known current as of the projection's cache fence, and a
// document read from the store is written back known current as of the position this process
// had reached before that read.
func (h *Hub) read(ctx context.Context, coll, id string, pos uint64) (readstore.Doc, error) {
	if !cached(coll) {
		d, err := h.store.Get(ctx, coll, id)
		return atLeast(d, err, pos)
	}
	proj := projectionOf(coll)
	key := h.opts.CacheKey(coll, id)
	known := h.positions.Position(proj)
	if fence, ok := h.positions.CacheFence(proj); ok {
		if e, hit := h.cache.Get(ctx, key); hit && e.ValidAsOf() >= fence && e.Position >= pos {
			return readstore.Doc{ID: id, Position: e.Position, Body: e.Body}, nil
		}
	}
	d, err := h.store.Get(ctx, coll, id)
	if err == nil {
		// A write that fails leaves the key as it was: stale entries stay behind the fence.
		_ = h.cache.Set(ctx, key, cache.Entry{Position: d.Position, AsOf: known, Body: d.Body})
	}
	return atLeast(d, err, pos)
}

func atLeast(d readstore.Doc, err error, pos uint64) (readstore.Doc, error) {
	if err == nil && d.Position < pos {
		return d, errOlder
	}
	return d, err
}

// encode makes the frame of document d of coll, its media URLs under mediaBase when that is set
// (documents.MediaURLs). ok is false when no stream gets it: a draft's catalog entry.
func encode(coll string, d readstore.Doc, mediaBase string) (f frame, ok bool, err error) {
	topic, ok := topicOf(coll, d.ID)
	if !ok {
		return frame{}, false, nil
	}
	f = frame{topic: topic, key: coll + "/" + d.ID, proj: projectionOf(coll), doc: d.Position, event: coll}
	data := []byte(d.Body)
	switch coll {
	case documents.CourseDetails:
		c, err := access.DecodeCourse(d.Body)
		if err != nil {
			return frame{}, false, err
		}
		if c.Status == "draft" {
			f.draftBy = c.Instructor.ID
		}
	case documents.Stats:
		f.teaches = d.ID
	case documents.Rosters:
		var e documents.RosterEntry
		if err := json.Unmarshal(d.Body, &e); err != nil {
			return frame{}, false, fmt.Errorf("decode roster row %s: %w", d.ID, err)
		}
		f.teaches = e.CourseID
		if data, err = json.Marshal(e.RosterItem); err != nil {
			return frame{}, false, err
		}
	case documents.Catalog:
		var e documents.CatalogEntry
		if err := json.Unmarshal(d.Body, &e); err != nil {
			return frame{}, false, fmt.Errorf("decode catalog entry %s: %w", d.ID, err)
		}
		switch e.Status {
		case "published":
			data, err = json.Marshal(e.CatalogItem)
		case "archived":
			f.event = EventCatalogRemoved
			data, err = json.Marshal(struct {
				ID string `json:"id"`
			}{d.ID})
		default: // a draft is nobody's business but its instructor's
			return frame{}, false, nil
		}
		if err != nil {
			return frame{}, false, err
		}
	}
	f.wire = message(f.event, documents.MediaURLs(data, mediaBase))
	return f, true, nil
}

// message encodes one event. Data may not hold a line end (JSON from encoding/json does not),
// but if it did each line would be a data: line of its own, as the format asks.
func message(event string, data []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(event) + len(data) + 16)
	b.WriteString("event: ")
	b.WriteString(event)
	b.WriteByte('\n')
	for line := range bytes.Lines(data) {
		b.WriteString("data: ")
		b.Write(bytes.TrimRight(line, "\r\n"))
		b.WriteByte('\n')
	}
	if len(data) == 0 {
		b.WriteString("data:\n")
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// resyncMessage tells a stream that it missed messages, and why.
func resyncMessage(reason string) []byte {
	return message(EventResync, fmt.Appendf(nil, `{"reason":%q}`, reason))
}
