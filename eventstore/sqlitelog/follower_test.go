package sqlitelog_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/eventstoretest"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
)

// writerAndFollower appends through the writer and reads through a follower of the same file,
// as a projector process beside the write process does.
type writerAndFollower struct {
	*sqlitelog.Follower
	w *sqlitelog.Log
}

func (s writerAndFollower) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) (eventstore.AppendResult, error) {
	return s.w.Append(ctx, stream, expected, events)
}

func (s writerAndFollower) Close() error { return errors.Join(s.Follower.Close(), s.w.Close()) }

func TestFollowerContract(t *testing.T) {
	// A tiny index batch keeps most of each stream past the index, where the follower scans.
	eventstoretest.Run(t, func(t *testing.T) eventstoretest.Opener {
		path := filepath.Join(t.TempDir(), "events.db")
		return func() (eventstore.Store, error) {
			w, err := sqlitelog.Open(path, sqlitelog.Options{IndexBatch: 3, MaxBatchEvents: 5})
			if err != nil {
				return nil, err
			}
			f, err := sqlitelog.OpenFollower(path, sqlitelog.FollowerOptions{})
			if err != nil {
				w.Close()
				return nil, err
			}
			return writerAndFollower{Follower: f, w: w}, nil
		}
	})
}

func TestFollower(t *testing.T) {
	t.Run("refuses_to_append", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "events.db")
		w, err := sqlitelog.Open(path, sqlitelog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		f, err := sqlitelog.OpenFollower(path, sqlitelog.FollowerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Append(context.Background(), "s", eventstore.Any, nil); !errors.Is(err, sqlitelog.ErrReadOnly) {
			t.Errorf("append through a follower: err = %v, want ErrReadOnly", err)
		}
	})
	t.Run("needs_the_writer_to_have_created_the_log", func(t *testing.T) {
		if _, err := sqlitelog.OpenFollower(filepath.Join(t.TempDir(), "events.db"), sqlitelog.FollowerOptions{}); err == nil {
			t.Error("a follower opened a log nobody created")
		}
	})
	t.Run("ends_its_subscriptions_on_close", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "events.db")
		w, err := sqlitelog.Open(path, sqlitelog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		f, err := sqlitelog.OpenFollower(path, sqlitelog.FollowerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sub, _ := f.Subscribe(context.Background(), 0)
		done := make(chan error, 1)
		go func() { _, err := sub.Next(context.Background(), 10); done <- err }()
		f.Close()
		if err := <-done; !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("Next after close: err = %v, want ErrClosed", err)
		}
	})
}
