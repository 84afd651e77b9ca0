package kurrent

import (
	"context"
	"errors"
	"fmt"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/edutrack/edutrack/eventstore"
)

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
