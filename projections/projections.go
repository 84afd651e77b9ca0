// Package projections builds the read models from the global log. Each projector follows the log
// from its own checkpoint through a watermill router: our subscriber turns the event store's
// subscription into messages that each carry a batch of events, and the handler folds a batch
// into documents written in one commit, then warms the cache.
package projections

import (
	"context"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/projections/changes"
	"github.com/edutrack/edutrack/projections/readstore"
)

// Event is a recorded event with its decoded data.
type Event struct {
	eventstore.RecordedEvent
	Data domain.Event
	err  error // why it could not be decoded
}

// Projector folds events into the documents of its read models.
type Projector interface {
	// Name is the projection's name, which keys its checkpoint.
	Name() string
	// Version is the projector's code version. Raise it whenever a change alters the documents
	// it builds: at the next start the new version builds its read models beside the old ones,
	// which keep serving until it has caught up.
	Version() int
	// ReadModels are every collection it writes, which a rebuild builds anew and then drops
	// together.
	ReadModels() []string
	// Collections are the collections whose documents the read API serves by id; their new
	// documents warm the cache. (Listings are read from the store.)
	Collections() []string
	// Listings are the collections the read API lists with queries (the catalog, rosters).
	// Their changes are announced on the change feed with those of Collections, for live
	// streams; they stay out of the cache.
	Listings() []string
	// Indexes are the indexes its queries need.
	Indexes() []readstore.Index
	// Apply folds one event into the documents it touches, through tx.
	Apply(ctx context.Context, tx *Tx, e Event) error
}

// DocRef names one document.
type DocRef struct{ Coll, ID string }

// Prefetcher is a Projector that can name, before applying a batch, the documents each event
// will read, so the runner loads them in one query per collection instead of one per document.
type Prefetcher interface {
	Refs(e Event) []DocRef
}

// Log is what projections need of the event store.
type Log interface {
	Subscribe(ctx context.Context, after uint64) (eventstore.Subscription, error)
	ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.RecordedEvent, error)
	Head(ctx context.Context) (uint64, error)
}

// Decoder turns stored events back into domain events.
type Decoder interface {
	Decode(name string, data []byte) (domain.Event, error)
}

// Options tune a Runner.
type Options struct {
	BatchSize  int           // events per message at most (default 5,000); a bigger batch writes each document fewer times
	MaxRetries int           // retries of a failing batch before it becomes a dead letter (default 5)
	RetryDelay time.Duration // first retry delay, doubled each time (default 100ms)
	// Linger is how long a small batch waits for more events before it is applied (default
	// 5ms): live, it trades that much visibility delay for far fewer read-store commits.
	Linger time.Duration
	// HotDocuments caps the decoded documents each projection keeps between batches (default
	// 20,000).
	HotDocuments int
	// DropGrace is how long a replaced generation stays after the switch before it is dropped
	// (default 10s), so read processes that poll the registrations move over first.
	DropGrace time.Duration
	// ProgressEvery is how often a rebuild logs its progress (default 5s).
	ProgressEvery time.Duration
	// HeadCheckEvery is how often the runner compares each projection's position with the log's
	// head, to notice read models ahead of the log (default 1s).
	HeadCheckEvery time.Duration
	// Changes, if not nil, is told after each commit of a live generation which documents the
	// read API serves by id it wrote, and of each switch to a new generation, so read
	// processes can push them to their live clients. Its failures never fail a batch.
	Changes changes.Feed
	// Now gives the time dead letters and skips record, and batches of Changes carry (default
	// time.Now).
	Now func() time.Time
}

// CacheKey is the cache key of a document.
func CacheKey(coll, id string) string { return coll + ":" + id }
