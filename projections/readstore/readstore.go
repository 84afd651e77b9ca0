// Package readstore is the port to the store of read models: JSON documents in collections, each
// carrying the log position of the last event applied to it, written in batches by projectors
// and queried by the read API. Adapters live in subfolders; readstoretest is their contract.
package readstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrNotFound means no document has the id asked for.
var ErrNotFound = errors.New("document not found")

// Doc is one read-model document. Body is a JSON object; its top-level fields are what queries
// filter and sort on.
type Doc struct {
	ID       string
	Position uint64
	Body     json.RawMessage
}

// Write puts Doc into Coll, unless the stored document already has Doc's position or a later
// one: a re-applied event then changes nothing.
type Write struct {
	Coll string
	Doc  Doc
}

// Query selects documents of one collection.
type Query struct {
	Coll string
	// Eq keeps documents whose field equals the value (a string, a bool or an integer).
	Eq []Field
	// ContainsAll keeps documents whose array field holds every one of the strings.
	ContainsAll []Terms
	// PositionAfter, when not 0, keeps documents whose position is after it: those changed
	// since, which a live stream sends a client that reconnects.
	PositionAfter uint64
	// Sort orders the result; the id, ascending, always breaks ties.
	Sort []Order
	// After continues a listing after the document with these sort values and id.
	After *Cursor
	// Limit caps the result; 0 means no cap.
	Limit int
}

// Field is one equality condition.
type Field struct {
	Name  string
	Value any
}

// Terms is one contains-all condition on an array field of strings.
type Terms struct {
	Name   string
	Values []string
}

// Order sorts by one field, which must hold strings or integers.
type Order struct {
	Name string
	Desc bool
}

// Cursor is where a listing stopped: the sort field values of its last document, then its id.
type Cursor struct {
	Values []any
	ID     string
}

// Index asks the store to index these fields of a collection, in order.
type Index struct {
	Coll   string
	Fields []string
}

// DeadLetter is an event a projection could not apply after its retries.
type DeadLetter struct {
	Projection string    `json:"projection"`
	Position   uint64    `json:"position"`
	EventID    string    `json:"eventId"`
	EventType  string    `json:"eventType"`
	Error      string    `json:"error"`
	At         time.Time `json:"at"`
}

// Store holds the read models.
type Store interface {
	// EnsureIndexes creates the indexes that do not exist yet; it is safe to call at every start.
	EnsureIndexes(ctx context.Context, indexes []Index) error
	// Commit applies writes, then records checkpoint as projection's position. When the writes
	// cannot be one transaction, each write is still guarded by its position, so a crash before
	// the checkpoint leaves documents that the re-applied events leave unchanged.
	Commit(ctx context.Context, projection string, checkpoint uint64, writes []Write) error
	// Checkpoint returns the position projection has committed, or 0.
	Checkpoint(ctx context.Context, projection string) (uint64, error)
	// Get returns one document, or ErrNotFound.
	Get(ctx context.Context, coll, id string) (Doc, error)
	// GetMany returns the documents that exist among ids, in no particular order.
	GetMany(ctx context.Context, coll string, ids []string) ([]Doc, error)
	// Find runs q.
	Find(ctx context.Context, q Query) ([]Doc, error)
	// AddDeadLetter records an event a projection gave up on.
	AddDeadLetter(ctx context.Context, d DeadLetter) error
	// DeadLetters lists projection's dead letters by position.
	DeadLetters(ctx context.Context, projection string) ([]DeadLetter, error)
	// Drop deletes the collections colls and projection's checkpoint: a generation of a read
	// model that another has replaced. Its dead letters stay, as history.
	Drop(ctx context.Context, projection string, colls []string) error
	// Leases let one projector process at a time write; writes made under a Fence (WithFence)
	// are refused with ErrFenced once the lease has a newer owner.
	Leaser
	Close() error
}
