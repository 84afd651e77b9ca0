package kurrent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/edutrack/edutrack/eventstore"
)

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
