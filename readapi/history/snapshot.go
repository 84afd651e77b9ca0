package history

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
)

// aggregate is what a replay applies events to.
type aggregate interface{ Apply(domain.Event) }

// replayAsOf builds stream's aggregate as recorded at asOf and returns the position of its last
// event by then (0 if none). fresh is the aggregate with nothing applied; restore makes one from
// a snapshot's state. A stream this process has decoded already is replayed from memory;
// otherwise from its latest snapshot recorded by then, when the log still vouches for it, and
// from its first event when there is none.
func (a *API) replayAsOf(ctx context.Context, stream string, asOf time.Time, fresh aggregate,
	restore func(state json.RawMessage) (aggregate, error)) (uint64, error) {
	if !a.streams.has(stream) {
		snap, state, rest, ok, err := a.fromSnapshot(ctx, stream, asOf)
		if err != nil {
			return 0, err
		}
		if ok {
			agg, err := restore(state)
			if err != nil {
				return 0, fmt.Errorf("restore %s from its snapshot at version %d: %w", stream, snap.Version, err)
			}
			last := snap.Position
			for _, e := range rest {
				agg.Apply(e.event)
				last = e.position
			}
			return last, nil
		}
	}
	return replay(ctx, a.streams, stream, asOf, fresh)
}

// fromSnapshot finds stream's latest snapshot whose last event was recorded by asOf, and reads
// and decodes the events after it up to asOf. ok is false when there is none to use.
//
// A snapshot stands for the events up to its version only while the log holds the same hash at
// that version. If an event before it was rewritten and the chain recomputed (which the anchors
// catch, see `edutrack audit verify`), the hashes differ and the stream is replayed from its
// first event, so asOf answers what the log now holds, as it did before snapshots; a snapshot
// is never a copy of the past that outlives the log's. A log that keeps no chain (KurrentDB)
// has no hash to compare, so its streams are always replayed whole.
func (a *API) fromSnapshot(ctx context.Context, stream string, asOf time.Time) (snap documents.SnapshotRef, state json.RawMessage, rest []replayedEvent, ok bool, err error) {
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
	rest = make([]replayedEvent, 0, len(recorded)-1)
	for _, re := range recorded[1:] {
		if re.RecordedAt.After(asOf) {
			break
		}
		ev, err := a.streams.codec.Decode(re.Type, re.Data)
		if err != nil {
			return snap, nil, nil, false, fmt.Errorf("replay %s at version %d: %w", stream, re.Version, err)
		}
		rest = append(rest, replayedEvent{id: re.ID, version: re.Version, at: re.RecordedAt, position: re.Position, event: ev})
	}
	return snap, doc.Body, rest, true, nil
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
