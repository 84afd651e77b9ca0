package history

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
)

// aggregate is what a replay applies events to.
type aggregate interface{ Apply(domain.Event) }

// replayAsOf builds stream's aggregate as recorded at asOf and returns the position of its last
// event by then (0 if none). fresh is the aggregate with nothing applied; restore makes one from
// a snapshot's state. A stream this process has decoded whole already is replayed from memory;
// otherwise from its latest snapshot recorded by then, when the log still vouches for it, and
// from its first event when there is none. The snapshot a stream last started from is kept
// decoded, with the events after it, so the next question about it reads only newer events.
func replayAsOf[S any](ctx context.Context, a *API, stream string, asOf time.Time, fresh aggregate,
	restore func(S) aggregate) (uint64, error) {
	if !a.streams.has(stream) {
		b, err := a.based.get(ctx, a, stream, asOf, func(state json.RawMessage) (any, error) {
			var s S
			return s, json.Unmarshal(state, &s)
		})
		if err != nil {
			return 0, err
		}
		if b != nil {
			agg := restore(b.state.(S))
			last := b.ref.Position
			for _, e := range b.upTo(asOf) {
				agg.Apply(e.event)
				last = e.position
			}
			return last, nil
		}
	}
	return replay(ctx, a.streams, stream, asOf, fresh)
}

// replayCourses builds the course of each enrollment as recorded at asOf. The courses are
// independent streams, so they are read a few at a time, as many as the log has read
// connections by default.
func replayCourses(ctx context.Context, a *API, enrollments []learner.Enrollment, asOf time.Time) ([]*course.Course, error) {
	courses := make([]*course.Course, len(enrollments))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, en := range enrollments {
		g.Go(func() error {
			c := course.New(en.CourseID)
			_, err := replayAsOf(ctx, a, course.StreamPrefix+en.CourseID, asOf, c, func(s course.State) aggregate {
				c = course.Restore(en.CourseID, s)
				return c
			})
			courses[i] = c
			return err
		})
	}
	return courses, g.Wait()
}

// basedCache keeps, for each stream asOf started from a snapshot, that snapshot decoded and the
// events after it, caught up by version on each use like replayCache's streams.
type basedCache struct {
	mu      sync.Mutex
	entries map[string]*based
	max     int // streams kept
}

type based struct {
	ref     documents.SnapshotRef
	state   any // the decoded State, never changed: Restore copies what it keeps
	version uint64
	events  []replayedEvent // after ref.Version, up to version
}

// upTo returns b's events recorded up to asOf.
func (b *based) upTo(asOf time.Time) []replayedEvent {
	n := sort.Search(len(b.events), func(i int) bool { return b.events[i].at.After(asOf) })
	return b.events[:n:n]
}

// get returns stream's snapshot to start asOf from, with its events caught up, or nil when none
// can be used. A kept one serves any asOf from its instant on; an earlier asOf looks for an
// earlier snapshot.
func (c *basedCache) get(ctx context.Context, a *API, stream string, asOf time.Time, decode func(json.RawMessage) (any, error)) (*based, error) {
	c.mu.Lock()
	b := c.entries[stream]
	c.mu.Unlock()
	if b != nil && !time.Unix(0, b.ref.RecordedAt).After(asOf) {
		more, err := a.log.ReadStream(ctx, stream, b.version+1, 0)
		if err != nil {
			return nil, err
		}
		events, err := a.decodeAll(stream, more)
		if err != nil {
			return nil, err
		}
		nb := &based{ref: b.ref, state: b.state, version: b.version, events: append(b.events[:len(b.events):len(b.events)], events...)}
		if len(events) > 0 {
			nb.version = events[len(events)-1].version
		}
		c.put(stream, nb)
		return nb, nil
	}
	ref, body, recorded, ok, err := a.fromSnapshot(ctx, stream, asOf)
	if err != nil || !ok {
		return nil, err
	}
	state, err := decode(body)
	if err != nil {
		return nil, fmt.Errorf("decode the snapshot of %s at version %d: %w", stream, ref.Version, err)
	}
	events, err := a.decodeAll(stream, recorded)
	if err != nil {
		return nil, err
	}
	nb := &based{ref: ref, state: state, version: ref.Version, events: events}
	if len(events) > 0 {
		nb.version = events[len(events)-1].version
	}
	c.put(stream, nb)
	return nb, nil
}

func (c *basedCache) put(stream string, b *based) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[stream]; !ok && len(c.entries) >= c.max {
		for k := range c.entries { // random eviction: map order is random
			delete(c.entries, k)
			if len(c.entries) < c.max/2 {
				break
			}
		}
	}
	c.entries[stream] = b
}

// decodeAll decodes events of stream read from the log.
func (a *API) decodeAll(stream string, recorded []eventstore.RecordedEvent) ([]replayedEvent, error) {
	out := make([]replayedEvent, 0, len(recorded))
	for _, re := range recorded {
		ev, err := a.streams.codec.Decode(re.Type, re.Data)
		if err != nil {
			return nil, fmt.Errorf("replay %s at version %d: %w", stream, re.Version, err)
		}
		out = append(out, replayedEvent{id: re.ID, version: re.Version, at: re.RecordedAt, position: re.Position, event: ev})
	}
	return out, nil
}

// fromSnapshot finds stream's latest snapshot whose last event was recorded by asOf, and returns
// its reference, its state as stored, and the events after it. ok is false when there is none
// to use.
//
// A snapshot stands for the events up to its version only while the log holds the same hash at
// that version. If an event before it was rewritten and the chain recomputed (which the anchors
// catch, see `edutrack audit verify`), the hashes differ and the stream is replayed from its
// first event, so asOf answers what the log now holds, as it did before snapshots; a snapshot
// is never a copy of the past that outlives the log's. A log that keeps no chain (KurrentDB)
// has no hash to compare, so its streams are always replayed whole.
func (a *API) fromSnapshot(ctx context.Context, stream string, asOf time.Time) (snap documents.SnapshotRef, state json.RawMessage, after []eventstore.RecordedEvent, ok bool, err error) {
	var list documents.SnapshotList
	if ok, err := a.snapshotDoc(ctx, documents.SnapshotIndex, stream, &list); !ok || err != nil {
		return snap, nil, nil, false, err
	}
	// Recorded times only grow along a stream, as the cut of a full replay also assumes.
	n := sort.Search(len(list.Taken), func(i int) bool { return time.Unix(0, list.Taken[i].RecordedAt).After(asOf) })
	if n == 0 {
		return snap, nil, nil, false, nil
	}
	snap = list.Taken[n-1]
	doc, err := a.learners.Get(ctx, documents.Snapshots, documents.SnapshotID(stream, snap.Version))
	if errors.Is(err, readstore.ErrNotFound) {
		return snap, nil, nil, false, nil
	}
	if err != nil {
		return snap, nil, nil, false, err
	}
	recorded, err := a.log.ReadStream(ctx, stream, snap.Version, 0)
	if err != nil {
		return snap, nil, nil, false, err
	}
	if len(recorded) == 0 || recorded[0].Version != snap.Version || recorded[0].Position != snap.Position ||
		recorded[0].Hash == nil || !bytes.Equal(recorded[0].Hash, snap.Hash) {
		a.logger.WarnContext(ctx, "a snapshot does not match the event log: the stream is replayed from its first event",
			"stream", stream, "version", snap.Version)
		return snap, nil, nil, false, nil
	}
	return snap, doc.Body, recorded[1:], true, nil
}

// snapshotDoc reads one document of the snapshots read model into v, and reports whether it
// exists.
func (a *API) snapshotDoc(ctx context.Context, coll, id string, v any) (bool, error) {
	doc, err := a.learners.Get(ctx, coll, id)
	if errors.Is(err, readstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(doc.Body, v); err != nil {
		return false, fmt.Errorf("decode %s/%s: %w", coll, id, err)
	}
	return true, nil
}
