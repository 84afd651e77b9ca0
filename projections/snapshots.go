package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
)

// Snapshots keeps every learner and course stream replayed through its aggregate, and writes the
// aggregate's state after every Every events (documents.SnapshotEvery when 0), for asOf. The
// replay is the domain's own Apply, as asOf's is, so a snapshot is what asOf would have built
// at that version. asOf finds snapshots through their index, whatever the interval.
type Snapshots struct{ Every uint64 }

// snapshotHeads holds each stream's aggregate as of its last event: the fold the snapshots are
// taken from.
const snapshotHeads = "snapshot_heads"

// Name implements Projector.
func (Snapshots) Name() string { return documents.SnapshotsProjection }

// Version implements Projector.
func (Snapshots) Version() int { return 1 }

// ReadModels implements Projector.
func (Snapshots) ReadModels() []string {
	return []string{documents.Snapshots, documents.SnapshotIndex, snapshotHeads}
}

// Collections implements Projector: no client reads snapshots by id, so none warm the cache.
func (Snapshots) Collections() []string { return nil }

// Listings implements Projector.
func (Snapshots) Listings() []string { return nil }

// Indexes implements Projector.
func (Snapshots) Indexes() []readstore.Index { return nil }

// Refs implements Prefetcher: an event of a learner or course stream reads its head.
func (Snapshots) Refs(e Event) []DocRef {
	if aggregateOf(e.StreamID) == "" {
		return nil
	}
	return []DocRef{{snapshotHeads, e.StreamID}}
}

// aggregateOf names the aggregate a stream's snapshots hold, or "" for a stream without them.
func aggregateOf(stream string) string {
	switch {
	case strings.HasPrefix(stream, learner.StreamPrefix):
		return "learner"
	case strings.HasPrefix(stream, course.StreamPrefix):
		return "course"
	}
	return ""
}

// Apply implements Projector.
func (p Snapshots) Apply(ctx context.Context, tx *Tx, e Event) error {
	kind := aggregateOf(e.StreamID)
	if kind == "" {
		return nil
	}
	var h headDoc
	ok, err := tx.Get(ctx, snapshotHeads, e.StreamID, &h)
	if err != nil {
		return err
	}
	if !ok || h.head == nil {
		h.head = newStreamHead(e.StreamID)
	}
	s := h.head
	if e.Version <= s.version {
		return nil // a re-delivered event: the head already holds it
	}
	// The head is changed in place: the batch and the projection's hot documents share it, and
	// a failed batch clears those, so no half-applied head outlives it.
	s.apply(e.Data)
	s.version = e.Version
	if err := tx.Put(snapshotHeads, e.StreamID, h); err != nil {
		return err
	}
	every := p.Every
	if every == 0 {
		every = documents.SnapshotEvery
	}
	if e.Version%every != 0 || e.Hash == nil {
		return nil // a log that keeps no chain cannot vouch for a snapshot (see readapi/history)
	}
	state, err := s.state()
	if err != nil {
		return err
	}
	id := documents.SnapshotID(e.StreamID, e.Version)
	var old json.RawMessage
	if _, err := tx.Get(ctx, documents.Snapshots, id, &old); err != nil {
		return err
	}
	if err := tx.Put(documents.Snapshots, id, state); err != nil {
		return err
	}
	var list documents.SnapshotList
	if _, err := tx.Get(ctx, documents.SnapshotIndex, e.StreamID, &list); err != nil {
		return err
	}
	list.Taken = append(list.Taken, documents.SnapshotRef{Version: e.Version, Position: e.Position,
		RecordedAt: e.RecordedAt.UnixNano(), Hash: e.Hash})
	return tx.Put(documents.SnapshotIndex, e.StreamID, list)
}

// headDoc is a stream's head as a document: a pointer, so the batch's copies share one
// aggregate and applying an event costs the event, not the stream.
type headDoc struct{ head *streamHead }

type streamHead struct {
	stream  string
	version uint64
	learner *learner.Learner
	course  *course.Course
}

func newStreamHead(stream string) *streamHead {
	s := &streamHead{stream: stream}
	switch aggregateOf(stream) {
	case "learner":
		s.learner = learner.New(strings.TrimPrefix(stream, learner.StreamPrefix))
	case "course":
		s.course = course.New(strings.TrimPrefix(stream, course.StreamPrefix))
	}
	return s
}

func (s *streamHead) apply(e domain.Event) {
	switch {
	case e == nil:
	case s.learner != nil:
		s.learner.Apply(e)
	case s.course != nil:
		s.course.Apply(e)
	}
}

func (s *streamHead) state() (json.RawMessage, error) {
	if s.learner != nil {
		return json.Marshal(s.learner.State())
	}
	return json.Marshal(s.course.State())
}

// storedHead is a head as the store keeps it.
type storedHead struct {
	Stream  string          `json:"stream"`
	Version uint64          `json:"version"`
	State   json.RawMessage `json:"state"`
}

// MarshalJSON stores the aggregate's state.
func (h headDoc) MarshalJSON() ([]byte, error) {
	if h.head == nil {
		return []byte("null"), nil
	}
	state, err := h.head.state()
	if err != nil {
		return nil, err
	}
	return json.Marshal(storedHead{Stream: h.head.stream, Version: h.head.version, State: state})
}

// UnmarshalJSON restores the aggregate from its state.
func (h *headDoc) UnmarshalJSON(b []byte) error {
	var st storedHead
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	s := &streamHead{stream: st.Stream, version: st.Version}
	switch aggregateOf(st.Stream) {
	case "learner":
		var ls learner.State
		if err := json.Unmarshal(st.State, &ls); err != nil {
			return err
		}
		s.learner = learner.Restore(strings.TrimPrefix(st.Stream, learner.StreamPrefix), ls)
	case "course":
		var cs course.State
		if err := json.Unmarshal(st.State, &cs); err != nil {
			return err
		}
		s.course = course.Restore(strings.TrimPrefix(st.Stream, course.StreamPrefix), cs)
	default:
		return fmt.Errorf("snapshot head of %q, a stream without snapshots", st.Stream)
	}
	h.head = s
	return nil
}
