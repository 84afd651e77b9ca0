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
	"io"
	"log/slog"
	"math"
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

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if stream == "" {
		return eventstore.AppendResult{}, errors.New("append: empty stream id")
	}
	if len(events) == 0 {
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: no events", stream)
	}
	data, err := toEventData(events)
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
	}
	what := fmt.Sprintf("append to %s at %s", stream, expected)
	if expected.IsAny() {
		res, err := s.appendAny(ctx, stream, events, data)
		if err != nil {
			return eventstore.AppendResult{}, s.fail(ctx, what, err)
		}
		return res, nil
	}
	res, err := s.appendAt(ctx, stream, streamState(expected), events, data)
	if isWrongVersion(err) {
		res, err = s.explainConflict(ctx, stream, expected.Version(), events, err)
	}
	if err != nil {
		return eventstore.AppendResult{}, s.fail(ctx, what, err)
	}
	return res, nil
}

// appendAt sends one append. When the server answers that the events are already there, the
// first append's result is read back from the stream.
func (s *Store) appendAt(ctx context.Context, stream string, state kurrentdb.StreamState, events []eventstore.EventData, data []kurrentdb.EventData) (eventstore.AppendResult, error) {
	deadline := s.opts.AppendTimeout
	var w *kurrentdb.WriteResult
	err := s.do(ctx, func(c *kurrentdb.Client) error {
		var err error
		w, err = c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: state, Deadline: &deadline}, data...)
		return err
	})
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if res, ok := appendResult(w); ok {
		return res, nil
	}
	// A retry: the server matched the ids ending at revision NextExpectedVersion.
	stored, err := s.readStream(ctx, stream, firstRetriedVersion(w.NextExpectedVersion, len(events)), len(events))
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if last, found, _ := eventstore.FindAppend(stored, events); found {
		return eventstore.AppendResult{Version: last.Version, Position: last.Position}, nil
	}
	// Not where the answer pointed: look through the whole stream rather than guess.
	res, found, err := s.lookFor(ctx, stream, 1, events)
	if err == nil && !found {
		err = errors.New("the server took the append for a retry, but its events are not in the stream")
	}
	return res, err
}

// explainConflict answers an append refused at expected version v. Events with these ids
// appended after v make it a retry of that append (answered with its result) or a partial
// repeat (ErrDuplicateEvent); otherwise it is a conflict.
func (s *Store) explainConflict(ctx context.Context, stream string, v uint64, events []eventstore.EventData, refused error) (eventstore.AppendResult, error) {
	res, found, err := s.lookFor(ctx, stream, v+1, events)
	switch {
	case err != nil:
		return eventstore.AppendResult{}, err
	case found:
		return res, nil
	}
	return eventstore.AppendResult{}, translate(refused)
}

// lookFor searches the stream from version from on for an earlier append of events.
func (s *Store) lookFor(ctx context.Context, stream string, from uint64, events []eventstore.EventData) (eventstore.AppendResult, bool, error) {
	stored, err := s.readStream(ctx, stream, from, 0)
	if err != nil {
		return eventstore.AppendResult{}, false, err
	}
	last, found, err := eventstore.FindAppend(stored, events)
	if !found {
		return eventstore.AppendResult{}, false, err
	}
	return eventstore.AppendResult{Version: last.Version, Position: last.Position}, true, nil
}

// appendAny appends whatever the stream's version. The server's own check for a repeated
// append with "any" consults only a bounded cache of recent event ids and lets a batch through
// whose first id it does not find, so the port's promise (a retry appends nothing, a partial
// repeat is refused) is kept here: look for the ids in the stream, then append expecting the
// version just read, and start over if the stream moved meanwhile. This costs a read of the
// whole stream per append; EduTrack's commands append at an exact version and do not pay it.
// After anyAttempts moves in a row the last attempt goes with "any", trusting the server's
// check alone, so a hot stream cannot starve the append.
func (s *Store) appendAny(ctx context.Context, stream string, events []eventstore.EventData, data []kurrentdb.EventData) (eventstore.AppendResult, error) {
	for attempt := 1; ; attempt++ {
		stored, err := s.readStream(ctx, stream, 1, 0)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		last, found, err := eventstore.FindAppend(stored, events)
		switch {
		case err != nil:
			return eventstore.AppendResult{}, err
		case found:
			return eventstore.AppendResult{Version: last.Version, Position: last.Position}, nil
		}
		state := stateAt(0)
		if len(stored) > 0 {
			state = stateAt(stored[len(stored)-1].Version)
		}
		if attempt == anyAttempts {
			state = kurrentdb.Any{}
		}
		res, err := s.appendAt(ctx, stream, state, events, data)
		switch {
		case err == nil:
			return res, nil
		case !isWrongVersion(err):
			return eventstore.AppendResult{}, err
		case attempt == anyAttempts:
			// With "any" the server refuses only a batch whose first id it knows and whose
			// other ids it does not: a partial repeat.
			return eventstore.AppendResult{}, fmt.Errorf("%w: %w", eventstore.ErrDuplicateEvent, err)
		}
	}
}

// ReadStream implements eventstore.Store. A stream that does not exist reads as empty.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	events, err := s.readStream(ctx, stream, from, limit)
	if err != nil {
		return nil, s.fail(ctx, "read stream "+stream, err)
	}
	return events, nil
}

func (s *Store) readStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	from = max(from, 1)
	count := uint64(math.MaxInt64) // the server's "all"
	if limit > 0 {
		count = uint64(limit)
	}
	deadline := s.opts.ReadTimeout
	var events []eventstore.RecordedEvent
	err := s.do(ctx, func(c *kurrentdb.Client) error {
		events = events[:0]
		rs, err := c.ReadStream(ctx, stream, kurrentdb.ReadStreamOptions{
			Direction: kurrentdb.Forwards, From: kurrentdb.Revision(from - 1), Deadline: &deadline,
		}, count)
		if err != nil {
			return err
		}
		defer rs.Close() // releases the call's context; skipping it leaks the stream
		for {
			ev, err := rs.Recv()
			switch {
			case errors.Is(err, io.EOF):
				return nil
			case isNotFound(err):
				events = events[:0]
				return nil
			case err != nil:
				return err
			}
			if e := ev.OriginalEvent(); e != nil {
				events = append(events, fromRecorded(e))
			}
		}
	})
	return events, err
}

// readAllPage reads up to count records of $all, the server's own included, from from in
// direction dir.
func (s *Store) readAllPage(ctx context.Context, from kurrentdb.AllPosition, dir kurrentdb.Direction, count uint64) ([]*kurrentdb.RecordedEvent, error) {
	deadline := s.opts.ReadTimeout
	var records []*kurrentdb.RecordedEvent
	err := s.do(ctx, func(c *kurrentdb.Client) error {
		records = records[:0]
		rs, err := c.ReadAll(ctx, kurrentdb.ReadAllOptions{Direction: dir, From: from, Deadline: &deadline}, count)
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			ev, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if e := ev.OriginalEvent(); e != nil {
				records = append(records, e)
			}
		}
	})
	return records, err
}

// ReadAll implements eventstore.Store. It reads $all from the position after, skipping the
// server's own records, until it has limit events or reaches the end; so a batch comes back
// empty only at the end of the log.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.RecordedEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	cursor := fromPosition(after)
	var events []eventstore.RecordedEvent
	for {
		page := max(limit-len(events), readPage) + 1 // +1: a read from a position includes it
		records, err := s.readAllPage(ctx, allFrom(cursor), kurrentdb.Forwards, uint64(page))
		if err != nil {
			// The server refuses to read from a position past its end; the port reads nothing.
			if len(events) == 0 && after > 0 {
				if head, herr := s.lastRecord(ctx); herr == nil && after >= head.Commit {
					return nil, nil
				}
			}
			return nil, s.fail(ctx, fmt.Sprintf("read log after %d", after), err)
		}
		moved := false
		for _, r := range records {
			if !follows(r.Position, cursor) {
				continue
			}
			cursor, moved = r.Position, true
			if isSystem(r) {
				continue
			}
			events = append(events, fromRecorded(r))
			if len(events) == limit {
				return events, nil
			}
		}
		if len(records) < page || !moved {
			return events, nil
		}
	}
}

// lastRecord returns the position of the last record in $all, the server's own included, or
// the zero position when the log is empty.
func (s *Store) lastRecord(ctx context.Context) (kurrentdb.Position, error) {
	records, err := s.readAllPage(ctx, kurrentdb.End{}, kurrentdb.Backwards, 1)
	if err != nil || len(records) == 0 {
		return kurrentdb.Position{}, err
	}
	return records[0].Position, nil
}

// Head implements eventstore.Store: the position of the last event of EduTrack's log, found by
// reading $all backwards past the server's own records.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	var from kurrentdb.AllPosition = kurrentdb.End{}
	var cursor *kurrentdb.Position
	for {
		records, err := s.readAllPage(ctx, from, kurrentdb.Backwards, readPage)
		if err != nil {
			return 0, s.fail(ctx, "read log head", err)
		}
		moved := false
		for _, r := range records {
			if cursor != nil && !follows(*cursor, r.Position) {
				continue
			}
			p := r.Position
			cursor, moved = &p, true
			if !isSystem(r) {
				return position(r.Position), nil
			}
		}
		if len(records) < readPage || !moved {
			return 0, nil
		}
		from = *cursor
	}
}
