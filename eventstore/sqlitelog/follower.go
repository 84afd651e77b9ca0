package sqlitelog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/edutrack/edutrack/eventstore"
)

// ErrReadOnly is what a Follower answers to an append: only the process that opened the log
// with Open writes it.
var ErrReadOnly = errors.New("the event log is open read-only in this process")

// Follower reads a log that another process on this machine writes: projector and read API
// processes run beside the one write process and share the file. It sees an event once the
// writer's transaction has committed, which can be a few milliseconds before the writer has
// synced it; only a power cut in that window could take back an event a follower has seen, and
// rebuilding the read models repairs that.
type Follower struct {
	db   *sql.DB
	poll time.Duration
	key  []byte
	// integrity is the verdict of the check at open; once it has passed, the latest anchor is
	// looked at again, at most every recheck (rechecked, as of checkedAt).
	integrity error
	recheck   time.Duration
	checkMu   sync.Mutex
	checkedAt time.Time
	rechecked error
	lastSeq   uint64 // the latest anchor seen

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
}

// FollowerOptions tune a follower; the zero value is a sensible default.
type FollowerOptions struct {
	// Poll is how often it looks for new events (default 10ms).
	Poll time.Duration
	// AnchorKey is the key the writer anchors the log with. With it the follower checks, as the
	// writer does at open, the last anchor and the events after it (see Integrity); without it
	// a log that has anchors fails that check, since they cannot be checked.
	AnchorKey []byte
	// Recheck is how often Integrity may look at the latest anchor again (default 1s).
	Recheck time.Duration
}

// OpenFollower opens the log at path for reading, beside its writer.
func OpenFollower(path string, opts FollowerOptions) (*Follower, error) {
	poll := opts.Poll
	if poll <= 0 {
		poll = 10 * time.Millisecond
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open event log %s: %w (the write process creates it)", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		return nil, fmt.Errorf("open event log %s for reading: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open event log %s for reading: %w", path, err)
	}
	if opts.Recheck <= 0 {
		opts.Recheck = time.Second
	}
	f := &Follower{db: db, poll: poll, key: opts.AnchorKey, recheck: opts.Recheck, closing: make(chan struct{}), checkedAt: time.Now()}
	if err := f.check(opts.AnchorKey); err != nil {
		db.Close()
		return nil, fmt.Errorf("event log %s: %w", path, err)
	}
	return f, nil
}

// check makes the writer's check at open, in one snapshot: a follower serves history too. A log
// with no anchors yet passes: its writer anchors it when it starts with the key.
func (f *Follower) check(key []byte) error {
	ctx := context.Background()
	tx, err := f.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	tc, err := checkTail(ctx, tx, key)
	if err != nil || tc.last == nil {
		return err
	}
	f.lastSeq = tc.last.Seq
	f.integrity = integrity(tc.problems, tc.unresolved, key == nil)
	return nil
}

// Integrity is the verdict of the check made at open: nil, or an *IntegrityError saying why the
// log's history must not be served as it is. A failure holds for the life of the follower. Once
// the check has passed, Integrity also looks at the latest anchor again (at most every Recheck),
// since a follower can outlive its writer: a writer that starts later and finds the log forged
// records that in its anchors, events after a shutdown anchor are forged whoever looks, and
// anchors do not go away.
func (f *Follower) Integrity() error {
	if f.integrity != nil {
		return f.integrity
	}
	f.checkMu.Lock()
	defer f.checkMu.Unlock()
	if time.Since(f.checkedAt) < f.recheck {
		return f.rechecked
	}
	f.checkedAt = time.Now()
	// A log that cannot be read now keeps the last verdict: that is no sign of tampering.
	if err, ok := f.latest(context.Background()); ok {
		f.rechecked = err
	}
	return f.rechecked
}

// latest looks at the latest anchor and the log's head; ok is false when it could not read them.
func (f *Follower) latest(ctx context.Context) (verdict error, ok bool) {
	tx, err := f.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, false
	}
	defer tx.Rollback()
	var head sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(position) FROM events`).Scan(&head); err != nil {
		return nil, false
	}
	anchored, err := hasAnchors(ctx, tx)
	if err != nil {
		return nil, false
	}
	if !anchored {
		if f.lastSeq > 0 {
			return integrity([]Problem{{Kind: Anchors, What: fmt.Sprintf("anchors 1 to %d were deleted while this process ran", f.lastSeq)}}, "", false), true
		}
		return nil, true
	}
	a, err := scanAnchor(tx.QueryRowContext(ctx, `SELECT `+anchorColumns+` FROM anchors ORDER BY seq DESC LIMIT 1`))
	if err != nil {
		return nil, false
	}
	if f.key == nil {
		return integrity(nil, "", true), true
	}
	var problems []Problem
	switch ok, why := a.verify(f.key, keyID(f.key)); {
	case !ok:
		problems = append(problems, Problem{Kind: Anchors, What: fmt.Sprintf("anchor %d (the last): %s", a.Seq, why)})
	case a.Seq < f.lastSeq:
		problems = append(problems, Problem{Kind: Anchors, What: fmt.Sprintf(
			"anchors %d to %d were deleted while this process ran", a.Seq+1, f.lastSeq)})
	case a.Kind == AnchorShutdown && uint64(head.Int64) > a.Head:
		problems = append(problems, appendedWhileStopped(&a, uint64(head.Int64), ""))
	}
	if len(problems) == 0 {
		f.lastSeq = a.Seq
		return integrity(nil, a.Unresolved, false), true
	}
	return integrity(problems, "", false), true
}

// Close closes the file; subscriptions end with eventstore.ErrClosed.
func (f *Follower) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	close(f.closing)
	return f.db.Close()
}

// Append implements eventstore.Store: a follower does not write.
func (f *Follower) Append(context.Context, string, eventstore.ExpectedVersion, []eventstore.EventData) (eventstore.AppendResult, error) {
	return eventstore.AppendResult{}, ErrReadOnly
}

// Head implements eventstore.Store.
func (f *Follower) Head(ctx context.Context) (uint64, error) {
	var last sql.NullInt64
	if err := f.db.QueryRowContext(ctx, `SELECT MAX(position) FROM events`).Scan(&last); err != nil {
		return 0, fmt.Errorf("read event log head: %w", err)
	}
	return uint64(last.Int64), nil
}

// ReadStream implements eventstore.Store. The stream index trails the log, so the events past
// the index are found by scanning the log after it, in the same snapshot.
func (f *Follower) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	if from == 0 {
		from = 1
	}
	qlimit := int64(limit)
	if limit <= 0 {
		qlimit = -1
	}
	tx, err := f.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	defer tx.Rollback()
	var indexed sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT value FROM log_state WHERE key = 'indexed'`).Scan(&indexed); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+columns+` FROM streams s JOIN events e ON e.position = s.position
		WHERE s.stream = ? AND s.version >= ? AND s.position <= ? ORDER BY s.version LIMIT ?`,
		stream, int64(from), indexed.Int64, qlimit)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	events, err := scan(rows, 0)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	if limit > 0 && len(events) >= limit {
		return events, nil
	}
	if limit > 0 {
		qlimit = int64(limit - len(events))
	}
	rows, err = tx.QueryContext(ctx, `SELECT `+columns+` FROM events e
		WHERE e.position > ? AND e.stream = ? AND e.version >= ? ORDER BY e.position LIMIT ?`,
		indexed.Int64, stream, int64(from), qlimit)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	more, err := scan(rows, 0)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	return append(events, more...), nil
}

// ReadAll implements eventstore.Store.
func (f *Follower) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.RecordedEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := f.db.QueryContext(ctx, `SELECT `+columns+` FROM events e WHERE e.position > ? ORDER BY e.position LIMIT ?`,
		int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("read log after %d: %w", after, err)
	}
	events, err := scan(rows, limit)
	if err != nil {
		return nil, fmt.Errorf("read log after %d: %w", after, err)
	}
	return events, nil
}

// Subscribe implements eventstore.Store: it reads what follows the cursor, and polls when
// nothing does.
func (f *Follower) Subscribe(_ context.Context, after uint64) (eventstore.Subscription, error) {
	return &followerSub{f: f, cursor: after}, nil
}

type followerSub struct {
	f      *Follower
	cursor uint64
}

func (s *followerSub) Next(ctx context.Context, max int) ([]eventstore.RecordedEvent, error) {
	for {
		select {
		case <-s.f.closing:
			return nil, eventstore.ErrClosed
		default:
		}
		events, err := s.f.ReadAll(ctx, s.cursor, max)
		if err != nil {
			select {
			case <-s.f.closing:
				return nil, eventstore.ErrClosed
			default:
			}
			return nil, err
		}
		if len(events) > 0 {
			s.cursor = events[len(events)-1].Position
			return events, nil
		}
		select {
		case <-time.After(s.f.poll):
		case <-s.f.closing:
			return nil, eventstore.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *followerSub) Close() error { return nil }

var _ eventstore.Store = (*Follower)(nil)
