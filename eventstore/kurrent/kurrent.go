// Package kurrent is the event log on a KurrentDB (formerly EventStoreDB) node or cluster,
// through the official gRPC client: appends with an expected version, stream reads, and $all
// read and followed as EduTrack's global log.
//
// How the port maps onto the server:
//   - Stream versions count events from 1, server revisions from 0: version = revision + 1.
//   - A global position is an event's commit position. The server also keeps a prepare
//     position; reads and subscriptions carry the (commit, prepare) pair internally and resume
//     from it, and a bare uint64 from a caller stands for (p, p), which is exact for events
//     appended by gRPC clients to v20+ nodes.
//   - The global log is $all without the server's own records (types or streams starting
//     with $): statistics, stream metadata, projection links.
//   - Idempotency: the server itself recognises a retried append whose expected version is
//     exact, by comparing event ids at the expected place; the adapter then reads the first
//     append's result back. For appends with eventstore.Any the server only consults a bounded
//     cache of recent ids, so the adapter checks the stream's ids itself and appends at the
//     version it saw. A wrong expected version is checked the same way before it becomes
//     eventstore.ErrConcurrency, so that a retry at an outdated version, or an append that
//     repeats only some ids (eventstore.ErrDuplicateEvent), is answered as the port says.
//   - Positions of events read from their stream come from the server; servers released before
//     mid-2022 do not report them, and those events then carry position 0.
package kurrent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/edutrack/edutrack/eventstore"
)

// Options tune the store; the zero value is the production default.
type Options struct {
	// AppendTimeout bounds one append, network and replication to a quorum included
	// (default 10s, the client's own default for unary calls). A caller's earlier deadline
	// still wins.
	AppendTimeout time.Duration
	// ReadTimeout bounds one read: a stream read, one page of the global log, or a head lookup
	// (default 30s). Reads stream their results, so this covers the whole transfer.
	ReadTimeout time.Duration
	// SubscriptionBuffer is how many events a subscription receives ahead of Next
	// (default 512). A full buffer pauses the server's stream rather than dropping anything.
	SubscriptionBuffer int
	// ResubscribeMin and ResubscribeMax bound the wait before a dropped subscription
	// resubscribes; the wait doubles after each failed attempt (defaults 100ms and 5s).
	ResubscribeMin, ResubscribeMax time.Duration
	// Logger receives the adapter's warnings (subscriptions dropped and resumed, clients
	// replaced) at Warn, and the client's own chatter at Debug: the client logs every closed
	// subscription as an error, and the adapter reports or handles everything it logs.
	// Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.AppendTimeout <= 0 {
		o.AppendTimeout = 10 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 30 * time.Second
	}
	if o.SubscriptionBuffer <= 0 {
		o.SubscriptionBuffer = 512
	}
	if o.ResubscribeMin <= 0 {
		o.ResubscribeMin = 100 * time.Millisecond
	}
	if o.ResubscribeMax < o.ResubscribeMin {
		o.ResubscribeMax = max(5*time.Second, o.ResubscribeMin)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

const (
	// readPage is the least number of $all records one read asks for: the server's projections
	// add link records after most events, which a smaller page would spend round trips on.
	readPage = 64
	// anyAttempts is how often an append with eventstore.Any retries at the version it saw before
	// it leaves the last word to the server.
	anyAttempts = 8
)

// Store is the event log on KurrentDB. It is safe for concurrent use.
type Store struct {
	cfg  kurrentdb.Configuration
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	db     *kurrentdb.Client
	closed bool

	life context.Context // ends when the store closes; subscriptions live inside it
	stop context.CancelFunc
	subs sync.WaitGroup
}

var _ eventstore.Store = (*Store)(nil)

// Open connects to the server at connString, a KurrentDB connection string such as
// "kurrentdb://localhost:2113?tls=false" or "esdb+discover://edutrack:secret@events.internal:2113"
// (the client accepts the schemes kurrentdb, kurrent, kdb and esdb, each also with +discover).
// It reads the end of $all once, so a wrong address, certificate or password fails here rather
// than at the first command; the account needs read access to $all.
func Open(ctx context.Context, connString string, opts Options) (*Store, error) {
	cfg, err := kurrentdb.ParseConnectionString(connString)
	if err != nil {
		return nil, fmt.Errorf("parse KurrentDB connection string: %w", redact(err))
	}
	opts = opts.withDefaults()
	logger := opts.Logger
	cfg.Logger = func(level kurrentdb.LogLevel, format string, args ...any) {
		if logger.Enabled(context.Background(), slog.LevelDebug) {
			logger.Debug(fmt.Sprintf(format, args...), "component", "kurrentdb client", "client_level", level)
		}
	}
	db, err := kurrentdb.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("open KurrentDB client: %w", err)
	}
	life, stop := context.WithCancel(context.Background())
	s := &Store{cfg: *cfg, opts: opts, log: logger, db: db, life: life, stop: stop}
	if _, err := s.lastRecord(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect to KurrentDB: %w", err)
	}
	return s, nil
}

// redact keeps a password in the connection string out of the error.
func redact(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return &url.Error{Op: uerr.Op, URL: "(connection string)", Err: uerr.Err}
	}
	return err
}

// Close ends every subscription, waits for them, and closes the connection. Calls after Close
// fail with eventstore.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	db := s.db
	s.mu.Unlock()
	s.stop()
	s.subs.Wait()
	return db.Close()
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Store) client() (*kurrentdb.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, eventstore.ErrClosed
	}
	return s.db, nil
}

// renew replaces old with a fresh client, unless someone already did or the store is closed.
func (s *Store) renew(old *kurrentdb.Client, cause error) {
	s.mu.Lock()
	if s.closed || s.db != old {
		s.mu.Unlock()
		return
	}
	cfg := s.cfg
	fresh, err := kurrentdb.NewClient(&cfg)
	if err != nil { // the configuration was valid at Open, so this does not happen
		s.mu.Unlock()
		s.log.Warn("cannot replace the KurrentDB client", "err", err)
		return
	}
	s.db = fresh
	s.mu.Unlock()
	// Closing the old client also closes its current gRPC connection; calls still on it fail
	// with ConnectionClosed and retry on the fresh one.
	old.Close()
	s.log.Warn("replaced the KurrentDB client after a connection failure", "err", cause)
}

// do runs op with the current client and runs it once more, on a fresh client where needed,
// when it fails in a way that a new connection can cure. Every op here may run twice: reads
// trivially, appends because a repeated append is recognised by its event ids.
func (s *Store) do(ctx context.Context, op func(*kurrentdb.Client) error) error {
	for attempt := 0; ; attempt++ {
		c, err := s.client()
		if err != nil {
			return err
		}
		err = op(c)
		if err == nil || attempt > 0 || !isRetryable(err) || ctx.Err() != nil || s.isClosed() {
			return err
		}
		if needsNewClient(err) {
			s.renew(c, err)
		}
	}
}

// fail wraps a client error for the caller, in the port's terms.
func (s *Store) fail(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, eventstore.ErrClosed) || s.isClosed():
		return fmt.Errorf("%s: %w", what, eventstore.ErrClosed)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case errors.Is(err, eventstore.ErrDuplicateEvent), errors.Is(err, eventstore.ErrConcurrency):
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, translate(err))
}
