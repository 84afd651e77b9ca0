package kurrent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/edutrack/edutrack/eventstore"
)

// This file holds the pure translation between the port and the client: no I/O, so every rule
// here is unit-tested without a server.

// streamState maps an expected version to the client's stream state. Our versions count events
// from 1 and KurrentDB revisions from 0, so a stream at version v has revision v-1.
func streamState(e eventstore.ExpectedVersion) kurrentdb.StreamState {
	switch {
	case e.IsAny():
		return kurrentdb.Any{}
	case e.Version() == 0:
		return kurrentdb.NoStream{}
	default:
		return kurrentdb.Revision(e.Version() - 1)
	}
}

// stateAt is the stream state that holds exactly when the stream is at version v.
func stateAt(v uint64) kurrentdb.StreamState { return streamState(eventstore.Exact(v)) }

// unknownPosition is what a server reports as the commit position of an event read from its
// stream when it does not know it: servers released before mid-2022 report positions only on
// $all reads.
const unknownPosition = math.MaxUint64

// position is the port's global position of an event: its commit position.
func position(p kurrentdb.Position) uint64 {
	if p.Commit == unknownPosition {
		return 0
	}
	return p.Commit
}

// fromPosition is where a read or subscription "after" a port position starts. A bare uint64
// carries only the commit position; using it as the prepare position too is exact for every
// event a gRPC client appended to a v20+ node, because such an event is its own transaction and
// its commit and prepare positions are equal. Events written in explicit transactions (legacy TCP
// clients) share one commit position and cannot be told apart by a uint64; EduTrack never
// writes them.
func fromPosition(after uint64) kurrentdb.Position {
	return kurrentdb.Position{Commit: after, Prepare: after}
}

// allFrom is the client's starting point for a read or subscription after p.
func allFrom(p kurrentdb.Position) kurrentdb.AllPosition {
	if p == (kurrentdb.Position{}) {
		return kurrentdb.Start{}
	}
	return p
}

// follows reports whether p comes after q in $all: commit order, then prepare order within a
// commit.
func follows(p, q kurrentdb.Position) bool {
	return p.Commit > q.Commit || (p.Commit == q.Commit && p.Prepare > q.Prepare)
}

// isSystem reports whether a record belongs to the server rather than to EduTrack: statistics,
// stream metadata, projection links and checkpoints all have a type or a stream starting with $.
func isSystem(e *kurrentdb.RecordedEvent) bool {
	return strings.HasPrefix(e.EventType, "$") || strings.HasPrefix(e.StreamID, "$")
}

// storedMetadata is the JSON an event carries as metadata: the port's fields, plus the server's
// own $correlationId and $causationId so the server's by-correlation projection can follow
// EduTrack's causal chains.
type storedMetadata struct {
	eventstore.Metadata
	ServerCorrelationID string `json:"$correlationId,omitempty"`
	ServerCausationID   string `json:"$causationId,omitempty"`
}

func encodeMetadata(m eventstore.Metadata) ([]byte, error) {
	return json.Marshal(storedMetadata{Metadata: m, ServerCorrelationID: m.CorrelationID, ServerCausationID: m.CausationID})
}

// decodeMetadata reads an event's metadata. Metadata that is not a JSON object (an event some
// other program wrote to a shared server) reads as empty instead of failing the whole read: the
// event's type and data still reach the codec, which rejects what it does not know.
func decodeMetadata(raw []byte) eventstore.Metadata {
	var m storedMetadata
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return eventstore.Metadata{}
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.ServerCorrelationID
	}
	if m.CausationID == "" {
		m.CausationID = m.ServerCausationID
	}
	return m.Metadata
}

// toEventData converts events to append. Data that is valid JSON is marked as JSON, which the
// server's projections need; anything else goes as binary rather than being refused.
func toEventData(events []eventstore.EventData) ([]kurrentdb.EventData, error) {
	out := make([]kurrentdb.EventData, len(events))
	for i, e := range events {
		if e.ID == uuid.Nil {
			// The client would make up an id, which defeats idempotency.
			return nil, fmt.Errorf("event %d (%s) has no id", i, e.Type)
		}
		meta, err := encodeMetadata(e.Metadata)
		if err != nil {
			return nil, fmt.Errorf("encode metadata of event %s: %w", e.ID, err)
		}
		ct := kurrentdb.ContentTypeBinary
		if json.Valid(e.Data) {
			ct = kurrentdb.ContentTypeJson
		}
		out[i] = kurrentdb.EventData{EventID: e.ID, EventType: e.Type, ContentType: ct, Data: e.Data, Metadata: meta}
	}
	return out, nil
}

// fromRecorded converts a record the server returned.
func fromRecorded(e *kurrentdb.RecordedEvent) eventstore.RecordedEvent {
	return eventstore.RecordedEvent{
		ID:         e.EventID,
		StreamID:   e.StreamID,
		Version:    e.EventNumber + 1,
		Position:   position(e.Position),
		RecordedAt: e.CreatedDate.UTC(),
		Type:       e.EventType,
		Data:       e.Data,
		Metadata:   decodeMetadata(e.UserMetadata),
	}
}

// appendResult reads a successful append's answer. ok is false when the server reported no
// position: it found the events already in the stream and appended nothing (an idempotent
// retry), so the first append's position has to be read back.
func appendResult(w *kurrentdb.WriteResult) (res eventstore.AppendResult, ok bool) {
	if w.CommitPosition == 0 && w.PreparePosition == 0 {
		return eventstore.AppendResult{}, false
	}
	// The client reports the commit position of the append's last event.
	return eventstore.AppendResult{Version: w.NextExpectedVersion + 1, Position: w.CommitPosition}, true
}

// firstRetriedVersion is the version of the first event of an append of n events the server
// took as a retry whose last event has revision lastRevision.
func firstRetriedVersion(lastRevision uint64, n int) uint64 {
	last := lastRevision + 1
	if last < uint64(n) {
		return 1
	}
	return last - uint64(n) + 1
}

// errorCode returns the client's error code of err, and false when err is not the client's.
// The client's FromError answers ok == false exactly when there is an error, so errors.As is
// the reliable test.
func errorCode(err error) (kurrentdb.ErrorCode, bool) {
	var kerr *kurrentdb.Error
	if !errors.As(err, &kerr) {
		return 0, false
	}
	return kerr.Code(), true
}

func hasCode(err error, codes ...kurrentdb.ErrorCode) bool {
	code, ok := errorCode(err)
	if !ok {
		return false
	}
	for _, c := range codes {
		if code == c {
			return true
		}
	}
	return false
}

// isWrongVersion reports an append refused by its expected version. The v1 append reports
// ErrorCodeWrongExpectedVersion; the multi-stream append reports ErrorCodeStreamRevisionConflict.
func isWrongVersion(err error) bool {
	return hasCode(err, kurrentdb.ErrorCodeWrongExpectedVersion, kurrentdb.ErrorCodeStreamRevisionConflict)
}

func isNotFound(err error) bool { return hasCode(err, kurrentdb.ErrorCodeResourceNotFound) }

// needsNewClient reports a failure after which the client must be replaced. A client whose
// discovery failed closes itself for good; and one that answers Unavailable rediscovers without
// closing its old gRPC connection, which would leak it.
func needsNewClient(err error) bool {
	return hasCode(err, kurrentdb.ErrorCodeConnectionClosed, kurrentdb.ErrorUnavailable)
}

// isRetryable reports a failure that a second attempt (on a new client, or on the leader the
// client has just reconnected to) can cure. An io.EOF from the client means the server ended an
// append before taking all of it, and the client lost the status that said why; the server
// answers only after the whole request, so nothing was appended and the attempt can be repeated.
func isRetryable(err error) bool {
	return needsNewClient(err) || hasCode(err, kurrentdb.ErrorCodeNotLeader) ||
		(hasCode(err, kurrentdb.ErrorCodeUnknown) && errors.Is(err, io.EOF))
}

// isPermanent reports a failure that retrying cannot cure, so a subscription gives up and
// reports it rather than resubscribing forever.
func isPermanent(err error) bool {
	return hasCode(err, kurrentdb.ErrorCodeAccessDenied, kurrentdb.ErrorCodeUnauthenticated,
		kurrentdb.ErrorCodeUnsupportedFeature, kurrentdb.ErrorCodeStreamDeleted)
}

// translate turns a client error into the port's: a wrong expected version becomes
// eventstore.ErrConcurrency, a deadline becomes context.DeadlineExceeded. The client's error
// stays in the chain for its detail.
func translate(err error) error {
	code, ok := errorCode(err)
	if !ok {
		return err
	}
	switch code {
	case kurrentdb.ErrorCodeWrongExpectedVersion, kurrentdb.ErrorCodeStreamRevisionConflict:
		return fmt.Errorf("%w: %w", eventstore.ErrConcurrency, err)
	case kurrentdb.ErrorCodeDeadlineExceeded:
		if errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}
