// Package eventstore is the port to EduTrack's append-only event log: appends with an expected
// version, stream reads, and the global log read and followed from a position. Adapters live in
// subfolders; eventstoretest holds the contract suite every adapter runs.
package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

var (
	// ErrConcurrency means the stream's version was not the one the append expected.
	ErrConcurrency = errors.New("wrong expected version")
	// ErrDuplicateEvent means some, but not all, of an append's event ids already exist, so the
	// append is neither new nor a retry of an earlier one.
	ErrDuplicateEvent = errors.New("event id already used by another append")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("event store closed")
)

// ExpectedVersion is the condition an append puts on its stream's current version.
// Stream versions count the stream's events: the first event has version 1, and a stream that
// does not exist has version 0.
type ExpectedVersion struct {
	kind    expectKind
	version uint64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectExact
)

var (
	// Any accepts whatever version the stream has.
	Any = ExpectedVersion{kind: expectAny}
	// NoStream requires that the stream has no events yet.
	NoStream = ExpectedVersion{kind: expectExact, version: 0}
)

// Exact requires the stream to have exactly version v; Exact(0) is NoStream.
func Exact(v uint64) ExpectedVersion { return ExpectedVersion{kind: expectExact, version: v} }

// IsAny reports whether e accepts any version.
func (e ExpectedVersion) IsAny() bool { return e.kind == expectAny }

// Version returns the version e requires; it is meaningless when IsAny.
func (e ExpectedVersion) Version() uint64 { return e.version }

// Allows reports whether a stream at version current satisfies e.
func (e ExpectedVersion) Allows(current uint64) bool {
	return e.kind == expectAny || e.version == current
}

func (e ExpectedVersion) String() string {
	switch {
	case e.kind == expectAny:
		return "any"
	case e.version == 0:
		return "no stream"
	default:
		return fmt.Sprintf("version %d", e.version)
	}
}

// Metadata says who caused an event and why; it travels with every event.
type Metadata struct {
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
	UserID        string `json:"userId,omitempty"`
	RequestID     string `json:"requestId,omitempty"`
}

// EventData is an event to append. ID makes the append idempotent: appending events whose ids
// already exist in the stream appends nothing and returns the first append's result.
type EventData struct {
	ID       uuid.UUID
	Type     string
	Data     []byte
	Metadata Metadata
}

// RecordedEvent is an event as the log holds it.
type RecordedEvent struct {
	ID         uuid.UUID
	StreamID   string
	Version    uint64
	Position   uint64
	RecordedAt time.Time
	Type       string
	Data       []byte
	Metadata   Metadata
	// Hash is the event's hash in its stream's chain where the store keeps one (the embedded
	// log), else nil. Equal hashes at one version vouch for the same events up to it.
	Hash []byte
}

// AppendResult is the stream version and global position of an append's last event.
type AppendResult struct {
	Version  uint64 `json:"version"`
	Position uint64 `json:"position"`
}

// Store is the event log.
//
// Global positions only grow in commit order and need not be contiguous; position 0 is before
// the first event, so reading or subscribing "after 0" starts at the beginning.
type Store interface {
	// Append adds events to the end of stream if its version satisfies expected. It returns
	// once the events are durable. A retry with the same event ids returns the first result.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events []EventData) (AppendResult, error)
	// ReadStream returns up to limit events of stream with version >= from (limit 0 means all).
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]RecordedEvent, error)
	// ReadAll returns up to limit events of the global log with position > after.
	ReadAll(ctx context.Context, after uint64, limit int) ([]RecordedEvent, error)
	// Subscribe follows the global log from after: first what is stored, then each new commit.
	Subscribe(ctx context.Context, after uint64) (Subscription, error)
	// Head returns the position of the last event in the log, or 0 when it is empty.
	Head(ctx context.Context) (uint64, error)
	Close() error
}

// Subscription delivers the global log in order, each event once.
type Subscription interface {
	// Next blocks until at least one event follows the last one delivered, then returns up to
	// max of them. It returns ctx's error when ctx ends, and ErrClosed once the store closes.
	Next(ctx context.Context, max int) ([]RecordedEvent, error)
	Close() error
}
