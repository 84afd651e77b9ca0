package sqlitelog

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/eventstore"
)

const columns = `e.event_id, e.stream, e.version, e.position, e.recorded_at, e.type, e.data,
	e.correlation_id, e.causation_id, e.user_id, e.request_id, e.hash`

// ReadStream implements eventstore.Store. The indexed part comes from the streams table, the
// rest from the in-memory tail; both are cut at the same snapshot, so nothing appears twice.
func (l *Log) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	if from == 0 {
		from = 1
	}
	l.mu.RLock()
	head, known := l.heads[stream]
	indexed := l.indexed
	var tail []uint64
	for _, e := range l.tail[stream] {
		if e.version >= from && (limit <= 0 || len(tail) < limit) {
			tail = append(tail, e.position)
		}
	}
	firstTail := uint64(0)
	if t := l.tail[stream]; len(t) > 0 {
		firstTail = t[0].version
	}
	l.mu.RUnlock()
	if known && from > head {
		return nil, nil
	}
	var events []eventstore.RecordedEvent
	if firstTail == 0 || from < firstTail {
		qlimit := int64(limit)
		if limit <= 0 {
			qlimit = -1
		}
		rows, err := l.stmts.stream.QueryContext(ctx, stream, int64(from), int64(indexed), qlimit)
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		if events, err = scan(rows, 0); err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
	}
	if len(tail) > 0 && (limit <= 0 || len(events) < limit) {
		if limit > 0 {
			tail = tail[:min(len(tail), limit-len(events))]
		}
		more, err := l.readPositions(ctx, tail)
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		events = append(events, more...)
	}
	if !known && (limit <= 0 || len(events) < limit) && len(events) > 0 {
		// We read to the end of a stream this process has not written: remember where it is,
		// unless the writer learned better meanwhile.
		last := events[len(events)-1].Version
		l.mu.Lock()
		if l.heads[stream] < last {
			l.heads[stream] = last
		}
		l.mu.Unlock()
	}
	return events, nil
}

// readPositions reads the events at the given positions, in order.
func (l *Log) readPositions(ctx context.Context, positions []uint64) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	for chunk := range slices.Chunk(positions, 256) {
		// The list is padded to a power of two with its last position, which IN counts once,
		// so a few prepared statements serve every length.
		size := bits.Len(uint(len(chunk) - 1))
		args := make([]any, 1<<size)
		for i := range args {
			args[i] = int64(chunk[min(i, len(chunk)-1)])
		}
		rows, err := l.stmts.positions[size].QueryContext(ctx, args...)
		if err != nil {
			return nil, err
		}
		evs, err := scan(rows, len(chunk))
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

// ReadAll implements eventstore.Store.
func (l *Log) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.RecordedEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	head := l.head.Load()
	if after >= head {
		return nil, nil
	}
	// Committed but not yet synced events lie past head; they are not there for readers yet.
	rows, err := l.stmts.all.QueryContext(ctx, int64(after), int64(head), limit)
	if err != nil {
		return nil, fmt.Errorf("read log after %d: %w", after, err)
	}
	events, err := scan(rows, limit)
	if err != nil {
		return nil, fmt.Errorf("read log after %d: %w", after, err)
	}
	return events, nil
}

func scan(rows *sql.Rows, capacity int) ([]eventstore.RecordedEvent, error) {
	defer rows.Close()
	events := make([]eventstore.RecordedEvent, 0, capacity)
	for rows.Next() {
		var (
			e       eventstore.RecordedEvent
			id      []byte
			v, p, t int64
		)
		if err := rows.Scan(&id, &e.StreamID, &v, &p, &t, &e.Type, &e.Data,
			&e.Metadata.CorrelationID, &e.Metadata.CausationID, &e.Metadata.UserID, &e.Metadata.RequestID, &e.Hash); err != nil {
			return nil, err
		}
		var err error
		if e.ID, err = uuid.FromBytes(id); err != nil {
			return nil, fmt.Errorf("event at position %d: %w", p, err)
		}
		e.Version, e.Position, e.RecordedAt = uint64(v), uint64(p), time.Unix(0, t).UTC()
		events = append(events, e)
	}
	return events, rows.Err()
}

// Stats reports the group commits made since Open and the appends they carried.
func (l *Log) Stats() (commits, appends uint64) { return l.commits.Load(), l.appends.Load() }

// Head implements eventstore.Store.
func (l *Log) Head(context.Context) (uint64, error) { return l.head.Load(), nil }

func (l *Log) waitCh() chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return l.notify
}

// Subscribe implements eventstore.Store. Catching up and following live are one loop: read what
// follows the cursor, and when nothing does, wait for the next commit.
func (l *Log) Subscribe(_ context.Context, after uint64) (eventstore.Subscription, error) {
	return &subscription{log: l, cursor: after}, nil
}

type subscription struct {
	log    *Log
	cursor uint64
}

func (s *subscription) Next(ctx context.Context, max int) ([]eventstore.RecordedEvent, error) {
	for {
		// Take the wake-up channel before looking, so a commit in between is not missed.
		wake := s.log.waitCh()
		if s.log.head.Load() > s.cursor {
			events, err := s.log.ReadAll(ctx, s.cursor, max)
			if err != nil {
				return nil, err
			}
			if len(events) > 0 {
				s.cursor = events[len(events)-1].Position
				return events, nil
			}
		}
		select {
		case <-wake:
		case <-s.log.closing:
			return nil, eventstore.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *subscription) Close() error { return nil }
